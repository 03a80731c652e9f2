"""Every oracle method estimates its memory and time before any work and refuses, clearly
and at once, past the configurable limits (issue 16): ``verify.exact.MAX_MEMORY_BYTES``,
``MAX_SECONDS`` (at ``OPERATIONS_PER_SECOND``), ``MAX_CONFIGURATIONS`` and the families' own
``MAX_*`` constants. Each refusal is a ``ValueError`` (``NotImplementedError`` for the swap
family's ``C`` limits) whose message names the limit to raise."""

from __future__ import annotations

import importlib
import time

import numpy as np
import pytest

import reference
import verify
from reference.objectives import Objective, SubsetQuadratic
from verify import exact


class _RowSum(Objective):
    """``f(z) = sum_k w[k, z_k]`` on categorical ``z``, extension ``<w, y>``: no table, so a
    problem of any size can be posed (and must then be refused by the oracle, not built)."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = np.asarray(w, dtype=np.float64)
        self.K, self.C = self.w.shape
        self.domain = "categorical"

    def __call__(self, z):
        z = self._check_z(z)
        return np.take_along_axis(np.broadcast_to(self.w, z.shape + (self.C,)), z[..., None],
                                  -1)[..., 0].sum(-1)

    def relaxed(self, y):
        y = self._check_y(y)
        return (y * self.w).sum(axis=(-2, -1)), np.broadcast_to(self.w, y.shape)


def _oversized(dist: str):
    rng = np.random.default_rng(0)
    if dist == "bernoulli":
        K = 50_000
        return rng.normal(size=K), reference.binary_quadratic(K, 0.45), {}
    if dist == "categorical":
        K, C = 20_000, 3
        return rng.normal(size=(K, C)), _RowSum(rng.normal(size=(K, C))), {}
    n = 50_000
    return rng.normal(size=n), SubsetQuadratic(rng.random(n)), {"k": 2}


_CASES = [(name, dist) for name, est in reference.REGISTRY.items() for dist in est.distributions]


@pytest.mark.parametrize("name,dist", _CASES)
def test_every_oracle_refuses_an_oversized_problem_at_once(name, dist):
    est = reference.REGISTRY[name]
    params, objective, extra = _oversized(dist)
    opts = {**next((e for e in est.examples if dist != "ksubset" or "k" in e), {}), **extra}
    opts = {k: v for k, v in opts.items() if k in est.option_defaults}
    importlib.import_module(est.exact_moments_path.partition(":")[0])  # time the refusal only
    start = time.perf_counter()
    with pytest.raises((ValueError, NotImplementedError), match=r"MAX_[A-Z_]+|C <= \d"):
        est.exact_moments(dist, params, objective, **opts)
    assert time.perf_counter() - start < 1.0


class _Opaque(Objective):
    """A binary objective the oracle cannot see into (no table, not recognised as separable)."""

    def __init__(self, K: int) -> None:
        self.inner = reference.binary_quadratic(K, 0.45)
        self.K, self.C, self.domain = K, 2, "binary"

    def __call__(self, z):
        return self.inner(z)

    def relaxed(self, y):
        return self.inner.relaxed(y)


#: records whose method enumerates (configurations, or samples b for REBAR/RELAX): at
#: ``2**25`` binary or ``3**15`` categorical configurations, inside MAX_CONFIGURATIONS, their
#: own memory or time estimates must refuse. (The RQMC-only methods legitimately run there in
#: seconds.)
_ENUMERATING = [
    ("reinforce", "bernoulli"), ("reinforce", "categorical"), ("reinforce_loo", "bernoulli"),
    ("ar", "bernoulli"), ("arm", "bernoulli"), ("disarm", "bernoulli"),
    ("straight_through", "bernoulli"), ("straight_through", "categorical"),
    ("imle", "categorical"), ("aimle", "categorical"), ("simple", "ksubset"),
    ("gumbel_rao", "categorical"), ("gst", "categorical"), ("reinmax", "categorical"),
    ("nvil", "bernoulli"), ("muprop", "bernoulli"), ("muprop", "categorical"),
    ("double_cv", "bernoulli"), ("rebar", "bernoulli"), ("relax", "bernoulli"),
    ("rebar", "categorical"), ("relax", "categorical"),
    ("ars", "categorical"), ("arsm", "categorical"), ("ars_plus", "categorical"),
    ("arsm_plus", "categorical"), ("arsm_plus_ce", "categorical"),
]


@pytest.mark.parametrize("name,dist", _ENUMERATING)
def test_enumerating_oracles_refuse_on_their_own_estimates(name, dist):
    est = reference.REGISTRY[name]
    rng = np.random.default_rng(1)
    if dist == "bernoulli":
        params, objective = rng.normal(size=25), _Opaque(25)
    elif dist == "categorical":
        params, objective = rng.normal(size=(15, 3)), _RowSum(rng.normal(size=(15, 3)))
    else:
        params, objective = rng.normal(size=40), SubsetQuadratic(rng.random(40))
    opts = {"k": 8} if dist == "ksubset" else {}
    importlib.import_module(est.exact_moments_path.partition(":")[0])
    start = time.perf_counter()
    with pytest.raises(ValueError, match="MAX_MEMORY_BYTES|MAX_SECONDS|MAX_GENERAL_K|"
                                         "MAX_KERNEL_ENTRIES"):
        est.exact_moments(dist, params, objective, **opts)
    assert time.perf_counter() - start < 1.0


def test_enumeration_of_34_binary_variables_refuses_in_every_enumerating_method():
    f = reference.binary_quadratic(34, 0.45)
    phi = np.zeros(34)
    for name in ("reinforce", "reinforce_loo", "straight_through", "muprop", "nvil"):
        start = time.perf_counter()
        with pytest.raises(ValueError, match="MAX_CONFIGURATIONS"):
            reference.get_estimator(name).exact_moments("bernoulli", phi, f)
        assert time.perf_counter() - start < 1.0


def test_limits_are_configurable(monkeypatch):
    """A problem well inside the defaults is refused once the limit is lowered below its
    estimate, and computed again once it is raised: the limits are live, not decorative."""
    pr = verify.make_problem("bernoulli", np.array([0.3, -0.2, 1.0]),
                             reference.random_table(3, 2, 0))
    est = reference.get_estimator("reinforce")
    est.exact_moments("bernoulli", pr.params, pr.objective)
    monkeypatch.setattr(exact, "MAX_MEMORY_BYTES", 16)
    with pytest.raises(ValueError, match="MAX_MEMORY_BYTES"):
        est.exact_moments("bernoulli", pr.params, pr.objective)
    monkeypatch.setattr(exact, "MAX_MEMORY_BYTES", 2**30)
    monkeypatch.setattr(exact, "MAX_SECONDS", 1e-9)
    with pytest.raises(ValueError, match="MAX_SECONDS"):
        est.exact_moments("bernoulli", pr.params, pr.objective)
    monkeypatch.setattr(exact, "MAX_SECONDS", 1e4)
    assert est.exact_moments("bernoulli", pr.params, pr.objective).mean.shape == (3,)


def test_budget_rejects_invalid_estimates():
    with pytest.raises(ValueError, match="invalid cost estimate"):
        exact.check_budget("x", memory_bytes=float("nan"), operations=1.0)
