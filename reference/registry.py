"""The registry of estimators, keyed by name.

Each record (:class:`reference.contract.Estimator`) ties together the estimator's NumPy
reference, CPU kernel, CUDA kernel, noise specification and exact-moment method. Every family
subpackage of :mod:`reference.estimators` exports its records and is listed in ``_FAMILIES``;
tests and the verification report iterate over :data:`REGISTRY`, so a new estimator is tested
by adding one record.
"""

from __future__ import annotations

from .contract import Estimator
from .estimators.augment_reinforce import AR, ARM, DISARM
from .estimators.control_variates import DOUBLE_CV, MUPROP, NVIL
from .estimators.ksubset_perturbation import AIMLE_KSUBSET, IMLE_KSUBSET, SIMPLE
from .estimators.multi_sample import CARMS, REINFORCE_WOR, UNORD, VIMCO
from .estimators.rebar import REBAR, RELAX
from .estimators.relaxation import AIMLE, GUMBEL_SOFTMAX, IMLE, ST_GUMBEL_SOFTMAX, STRAIGHT_THROUGH
from .estimators.score_function import REINFORCE, REINFORCE_LOO
from .estimators.st_variants import GST, GUMBEL_RAO, REINMAX
from .estimators.swap import ARS, ARS_PLUS, ARSM, ARSM_PLUS, ARSM_PLUS_CE

_FAMILIES: tuple[tuple[Estimator, ...], ...] = (
    (REINFORCE, REINFORCE_LOO),
    (AR, ARM, DISARM),
    (ARS, ARSM, ARS_PLUS, ARSM_PLUS, ARSM_PLUS_CE),
    (STRAIGHT_THROUGH, GUMBEL_SOFTMAX, ST_GUMBEL_SOFTMAX, IMLE, AIMLE, IMLE_KSUBSET, AIMLE_KSUBSET,
     SIMPLE),
    (GUMBEL_RAO, GST, REINMAX),
    (NVIL, MUPROP, DOUBLE_CV),
    (REBAR, RELAX),
    (VIMCO, UNORD, REINFORCE_WOR, CARMS),
)

REGISTRY: dict[str, Estimator] = {e.name: e for family in _FAMILIES for e in family}


def get_estimator(name: str) -> Estimator:
    """The registry record called ``name`` (``ValueError`` lists the known names)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name, e.g. a list
        raise ValueError(f"unknown estimator {name!r}; registered: {sorted(REGISTRY)}") from None


def estimator_names() -> list[str]:
    return list(REGISTRY)
