"""Framework-free reference implementations of gradient estimators for discrete latent variables.

Every estimator is a registry record (``get_estimator(name)``) with a NumPy reference, a Numba
CPU kernel and a Numba CUDA kernel that take explicit noise and agree number for number.
"""

from . import objectives
from .contract import BACKENDS, Answers, Cost, Estimator, NoiseSpec, Queries, evaluate
from .distributions import BERNOULLI, CATEGORICAL, Distribution, get_distribution
from .objectives import (
    BinaryQuadratic,
    JitObjective,
    TableObjective,
    binary_quadratic,
    categorical_toy,
    random_table,
)
from .registry import REGISTRY, estimator_names, get_estimator

__all__ = [
    "BACKENDS",
    "BERNOULLI",
    "CATEGORICAL",
    "REGISTRY",
    "Answers",
    "BinaryQuadratic",
    "Cost",
    "Distribution",
    "Estimator",
    "JitObjective",
    "NoiseSpec",
    "Queries",
    "TableObjective",
    "binary_quadratic",
    "categorical_toy",
    "estimator_names",
    "evaluate",
    "get_distribution",
    "get_estimator",
    "objectives",
    "random_table",
]
