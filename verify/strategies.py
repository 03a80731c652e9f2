"""Hypothesis strategies for small discrete problems, for use in any test suite.

Every strategy takes plain values or strategies for its size arguments, so a suite can pin
``K`` and let ``C`` vary, say. Logits mix ordinary values with extreme ones (up to
``max_abs``) and exact zeros, because that is where implementations break.

>>> from hypothesis import given
>>> from verify import strategies as vst
>>> @given(vst.problems(dist="categorical", K=vst.st.integers(1, 3), C=3))
... def test_something(problem): ...
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import numpy as np
from hypothesis.extra import numpy as hnp

from reference.objectives import BinaryQuadratic, TableObjective

from .exact import Problem, make_problem

__all__ = ["st", "logit_values", "logits", "objective_tables", "quadratic_objectives", "problems",
           "sample_sizes"]


_SMALL_K = st.integers(1, 3)
_SMALL_C = st.integers(2, 4)
_DISTS = st.sampled_from(["bernoulli", "categorical"])


def _draw(draw: Any, value: Any) -> Any:
    return draw(value) if isinstance(value, st.SearchStrategy) else value


def _check_size(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, st.SearchStrategy) and (not isinstance(value, int) or value < minimum):
        raise ValueError(f"{name} must be an int >= {minimum} or a strategy, got {value!r}")


def logit_values(max_abs: float = 50.0) -> st.SearchStrategy[float]:
    """Finite logits in ``[-max_abs, max_abs]``: ordinary values, exact 0 and the extremes."""
    if not max_abs > 0:
        raise ValueError("max_abs must be positive")
    return st.one_of(
        st.floats(-3.0, 3.0, allow_nan=False),
        st.floats(-max_abs, max_abs, allow_nan=False),
        st.sampled_from([0.0, max_abs, -max_abs, max_abs / 2, -max_abs / 2]),
    )


@st.composite
def logits(draw: Any, dist: str = "categorical", K: int | st.SearchStrategy[int] = _SMALL_K,
           C: int | st.SearchStrategy[int] = _SMALL_C, max_abs: float = 50.0) -> np.ndarray:
    """float64 logits: ``phi`` of shape ``(K,)`` (Bernoulli) or ``alpha`` ``(K, C)`` (categorical)."""
    _check_size("K", K, 1)
    _check_size("C", C, 2)
    k = _draw(draw, K)
    shape: tuple[int, ...]
    if dist == "bernoulli":
        shape = (k,)
    elif dist == "categorical":
        shape = (k, _draw(draw, C))
    else:
        raise ValueError(f"dist must be 'bernoulli' or 'categorical', got {dist!r}")
    return draw(hnp.arrays(np.float64, shape, elements=logit_values(max_abs)))


@st.composite
def objective_tables(draw: Any, K: int, C: int, domain: str = "categorical",
                     max_abs: float = 10.0) -> TableObjective:
    """A table objective over ``C**K`` configurations with values in ``[-max_abs, max_abs]``."""
    values = draw(hnp.arrays(np.float64, (C,) * K,
                             elements=st.floats(-max_abs, max_abs, allow_nan=False)))
    return TableObjective(values, domain)


@st.composite
def quadratic_objectives(draw: Any, K: int) -> BinaryQuadratic:
    """The binary toy ``sum_k (z_k - t)^2`` with ``t`` near 0.5 or anywhere in [0, 1]."""
    t = draw(st.one_of(st.sampled_from([0.45, 0.49, 0.499, 0.501]), st.floats(0.0, 1.0)))
    return BinaryQuadratic(K, t)


@st.composite
def problems(draw: Any, dist: str | st.SearchStrategy[str] = _DISTS,
             K: int | st.SearchStrategy[int] = _SMALL_K,
             C: int | st.SearchStrategy[int] = _SMALL_C, max_abs: float = 50.0) -> Problem:
    """A :class:`verify.Problem`: logits, and a table (or, for Bernoulli, sometimes the toy)."""
    d = _draw(draw, dist)
    params = draw(logits(d, K, C, max_abs))
    k = params.shape[0]
    if d == "bernoulli":
        obj = draw(st.one_of(objective_tables(k, 2, "binary"), quadratic_objectives(k)))
    else:
        obj = draw(objective_tables(k, params.shape[1], "categorical"))
    return make_problem(d, params, obj)


def sample_sizes(min_n: int = 1, max_n: int = 6) -> st.SearchStrategy[int]:
    """Inner sample counts ``n`` (use ``min_n=2`` for leave-one-out)."""
    if min_n < 1 or max_n < min_n:
        raise ValueError("need 1 <= min_n <= max_n")
    return st.integers(min_n, max_n)
