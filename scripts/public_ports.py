"""Public implementations of our estimators, run through the checker.

Every estimator of a public PyPI library that has a counterpart in our registry is wrapped as
a port (``port(params, noise, objective, dist=..., **options)``, see :mod:`verify.adapters`)
and checked on built-in problems:

* **sample level** (where our noise can be fed to the library): the library's numbers on our
  noise against the NumPy reference (largest difference relative to the reference's size);
* **distribution level**: the library draws its own randomness; ``R`` replicates against the
  oracle's exact moments with :func:`verify.check_samples` (false-alarm rate 1e-6).

Libraries: storchastic (score function with each baseline, ARM, DisARM, Gumbel-Softmax,
straight-through Gumbel-Softmax, ``Expect``), pyro's and numpyro's ``TraceGraph_ELBO`` on a
one-site model (gradient of ``E_q[f]``). For the estimators the README section "Public
implementations, checked" finds defective, the same outputs are also checked against what the
library computes (its formula on the same noise; the exact moments of that formula), so that
a defect is named only when the checker and an exact computation agree.

Usage::

    python scripts/public_ports.py [--R 2000] [--json OUT] [--only storchastic,pyro,numpyro]

Needs ``pip install -e ".[torch,jax]" storchastic pyro-ppl numpyro`` (install torch first).
Prints a table: library, version, estimator, ours, level, problem, verdict, detail. Exit 0
when every row is as expected (passes, or fails exactly as the README explains), else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import _cli  # the scripts folder is first on sys.path when a script runs
import numpy as np

from reference import get_estimator
from reference.distributions import sigmoid
from verify import CheckResult, Moments, Problem, check_samples, config_probabilities, exact_gradient
from verify.exact import configurations
from verify.problems import builtin_problems

#: problems (labels of verify.problems.builtin_problems) on which every estimator is checked
PROBLEMS = {
    "bernoulli": ("random table K=4", "quadratic K=4 t=0.49", "random table K=4, logits up to 30"),
    "categorical": ("random table K=2 C=3", "random table K=2 C=3, logits up to 30"),
}


def _problem(dist: str, label: str) -> Problem:
    return dict(builtin_problems(dist))[label]


# ---------------------------------------------------------------------------- the checks
def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    if out.shape != ref.shape:
        return float("inf")
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-300))


def sample_level(port: Callable, name: str, problem: Problem, *, R: int = 32, seed: int = 0,
                 **options: Any) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """Largest |port - reference| on shared noise, relative to the reference's largest entry;
    also the noise and the port's output (to test an explanation of a difference on them,
    which ``verify.check_port(port, name, problem, level="sample")`` does not hand back)."""
    est, d = get_estimator(name), problem.dist.name
    noise = est.draw_noise(np.random.default_rng(seed), d, problem.params.shape, R, **options)
    ref = est.estimate(d, problem.params, problem.objective, noise, backend="numpy", **options)
    out = port(problem.params, noise, problem.objective, dist=d, **options)
    return _rel(out, ref), noise, out


def distribution_samples(port: Callable, problem: Problem, *, R: int, seed: int,
                         **options: Any) -> np.ndarray:
    return port(problem.params, None, problem.objective, dist=problem.dist.name, R=R, seed=seed,
                **options)


def distribution_level(samples: np.ndarray, name: str | None, problem: Problem,
                       moments: Moments | None = None, **options: Any) -> CheckResult:
    """``samples`` against the exact moments of registry estimator ``name`` (or ``moments``:
    the exact moments of what a library computes, to test an explanation of a failure), the
    check that ``verify.check_port(..., level="distribution")`` applies."""
    if moments is None:
        moments = get_estimator(name).exact_moments(problem.dist.name, problem.params,
                                                    problem.objective, **options)
    return check_samples(samples, moments)


# ---------------------------------------------------------------------------- storchastic
@contextlib.contextmanager
def _torch_float64_rng(seed: int | None) -> Iterator[None]:
    """Default dtype float64 (storchastic builds its plate weights and its Logistic noise in the
    default dtype) and, for distribution-level calls, torch's global generator seeded."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def _feed_uniforms(u: Any) -> Iterator[None]:
    """Make ``torch.rand`` return our uniforms ``u`` (reshaped to the requested shape) for the
    one call the library makes to draw its noise; any other call is an error."""
    import torch

    real, calls = torch.rand, []

    def fake(*size: Any, dtype: Any = None, device: Any = None, **kw: Any) -> Any:
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        if calls or int(np.prod(shape)) != u.numel():
            raise RuntimeError(f"unexpected torch.rand{shape}: the port feeds one draw of "
                               f"{tuple(u.shape)}")
        calls.append(shape)
        return u.reshape(shape).to(dtype or torch.get_default_dtype())

    torch.rand = fake
    try:
        yield
    finally:
        torch.rand = real
    if not calls:
        raise RuntimeError("the library drew no uniforms from torch.rand")


def _patched_disarm() -> type:
    """storchastic's ``DisARM`` with the fix proposed in the README: the control variate
    wrapped in ``(1 - magic_box(.))`` as every other storchastic score-function method does,
    and the ``plate_weighting`` it defines actually registered (as ``ARM`` does), built in
    floating point (its own version builds the weights with ``new_zeros`` on the *boolean*
    sample, so ``1/n`` is stored as ``True``)."""
    import storch
    import torch
    from storch.util import magic_box

    class PatchedDisARM(storch.method.DisARM):
        def __init__(self, plate_name: str, sampling_method: Any = None, n_samples: int = 1):
            super().__init__(plate_name, sampling_method, n_samples)
            self.sampling_method.set_mc_weighting_function(self.float_plate_weighting)

        def float_plate_weighting(self, tensor: Any, plate: Any) -> Any:
            n = tensor.n // 2
            weighting = torch.zeros(tensor.n, dtype=torch.get_default_dtype())
            weighting[:n] = 1.0 / n
            return weighting

        def estimator(self, tensor: Any, cost: Any) -> Any:
            log_prob, baseline = super().estimator(tensor, cost)
            return log_prob, (1.0 - magic_box(log_prob)) * baseline

    return PatchedDisARM


def storch_port(method_name: str, *, batched: bool = True, **method_kwargs: Any) -> Callable:
    """A storchastic estimator as a port: ``storch.backward()`` on the cost ``f``, the gradient
    read from the logits. The sample count is our ``n`` (the library's ``n_samples``; for
    ARM/DisARM the number of antithetic pairs).

    ``batched``: all replicates (and batch elements) in one call, as the rows of the logits
    declared independent with ``storch.denote_independent`` (a plate of size ``B R`` with
    weights ``1/(B R)``, hence the factor ``B R`` on the gradient); the sample-level check is
    what proves this is the per-replicate estimator. Otherwise one fresh method object per
    replicate (the moving-average baseline then starts from its initial state, and its
    average is not taken across replicates)."""
    import storch
    import torch
    from torch.distributions import Bernoulli, Categorical, OneHotCategorical

    from reference.distributions import get_distribution
    from verify.adapters import torch as vtorch  # the submodule: torch is optional

    relaxed = method_name == "GumbelSoftmax"
    patched = method_kwargs.pop("patched", False)

    def one(logits: torch.Tensor, u: torch.Tensor | None, objective: Any, dist: str, n: int,
            tau: float) -> torch.Tensor:
        """``logits (M, K[, C])`` of ``M`` independent replicates; ``u (n, M, ...)`` or None."""
        cls = _patched_disarm() if patched else getattr(storch.method, method_name)
        kwargs = dict(method_kwargs)
        if method_name != "Expect":
            kwargs["n_samples"] = n
        if relaxed:
            kwargs["initial_temperature"] = tau
        method = cls("z", **kwargs)
        M = logits.shape[0]
        leaf = logits.detach().clone().requires_grad_(True)
        lg = storch.denote_independent(leaf, 0, "r") if M > 1 else leaf[0]
        if dist == "bernoulli":
            d = Bernoulli(logits=lg)
        else:
            d = OneHotCategorical(logits=lg) if relaxed else Categorical(logits=lg)
        feed: Any = contextlib.nullcontext()
        if u is not None and method_name == "ScoreFunction":
            # the library samples with torch.bernoulli / torch.multinomial: give it our samples
            # through its own hook for the sampling function (its estimator is untouched)
            z = get_distribution(dist).sample(leaf.detach().numpy(), u.transpose(0, 1).numpy())
            zt = torch.as_tensor(z.swapaxes(0, 1), dtype=torch.get_default_dtype() if dist == "bernoulli"
                                 else torch.long)
            method.sampling_method.set_mc_sample(lambda *a: zt if M > 1 else zt[:, 0])
        elif u is not None:
            if relaxed and dist == "bernoulli":
                # our binary Concrete noise is two Gumbels per variable, L = G1 - G0; the
                # library draws one uniform per variable and uses its logit: feed sigmoid(L)
                g = -torch.log(-torch.log(torch.clamp(u, min=np.finfo(np.float64).tiny)))
                u = torch.sigmoid(g[..., 1] - g[..., 0])
            feed = _feed_uniforms(u)
        with feed:
            z = method(d)

        @storch.deterministic
        def cost(z: torch.Tensor) -> torch.Tensor:
            if relaxed:
                return objective.relaxed(z).to(torch.get_default_dtype())
            return objective(z.long())

        storch.add_cost(cost(z), "f")
        storch.backward()
        return leaf.grad.detach().clone() * M  # the plate's weights are 1/M

    def fn(params: torch.Tensor, noise: dict | None, objective: Any, *, dist: str, n: int = 1,
           tau: float = 1.0, R: int | None = None, seed: int | None = None,
           **options: Any) -> torch.Tensor:
        event = 1 if dist == "bernoulli" else 2
        batch = params.shape[: params.ndim - event]
        flat = params.reshape((-1,) + params.shape[params.ndim - event:])
        B = flat.shape[0]
        u = None
        if noise is not None:
            u = noise["u"].reshape((B, -1) + noise["u"].shape[len(batch) + 1:])
        reps = R if u is None else u.shape[1]
        logits = flat[:, None].expand((B, reps) + flat.shape[1:]).reshape((B * reps,) + flat.shape[1:])
        if u is not None:  # (B, R, n, ...) -> (n, B R, ...): the library's sample axis first
            u = u.reshape((B * reps,) + u.shape[2:]).transpose(0, 1)
        with _torch_float64_rng(seed):
            if batched:
                out = one(logits, u, objective, dist, n, tau)
            else:
                out = torch.stack([one(logits[i:i + 1], None if u is None else u[:, i:i + 1],
                                       objective, dist, n, tau)
                                   for i in range(B * reps)])
        return out.reshape(batch + (reps,) + flat.shape[1:])

    return vtorch.make_port(fn, name=f"storchastic_{method_name}")


# ---------------------------------------------------------------------------- pyro, numpyro
def pyro_port() -> Callable:
    """pyro's ``TraceGraph_ELBO`` on a one-site model, set up so that its surrogate's gradient
    estimates ``grad E_q[f]``: guide ``z ~ q_P``; model ``z ~ p0`` with ``p0`` the same logits
    *detached* (a constant equal to ``P``) and ``factor("f", f(z))``. The ELBO is then
    ``E_q[f] - KL(q_P || p0)``, whose gradient at ``P = p0`` is ``grad E_q[f]``; per sample the
    surrogate's gradient is ``(f(z) + log p0(z) - log q(z)) grad log q(z) = f(z) grad log q(z)``
    (pyro leaves the zero-mean ``-grad log q`` entropy term out for non-reparameterizable
    sites), i.e. our ``reinforce`` with ``n = 1`` and baseline 0. ``R`` replicates are the
    elements of a ``pyro.plate`` over ``R`` copies of the parameters (the ELBO sums over the
    plate, so the gradient of copy ``r`` is replicate ``r``'s estimate)."""
    import pyro
    import pyro.distributions as pdist
    import torch
    from pyro.infer import TraceGraph_ELBO

    from verify.adapters import torch as vtorch  # the submodule: torch is optional

    def fn(params: torch.Tensor, noise: dict | None, objective: Any, *, dist: str, R: int,
           seed: int, n: int = 1, baseline: float = 0.0) -> torch.Tensor:
        if noise is not None:
            raise NotImplementedError("pyro draws its own samples (distribution level only)")
        P = params.detach().expand((R,) + params.shape).clone().requires_grad_(True)

        def site(logits: torch.Tensor) -> Any:
            d = pdist.Bernoulli(logits=logits) if dist == "bernoulli" else \
                pdist.Categorical(logits=logits)
            return d.to_event(1)

        def model() -> None:
            with pyro.plate("r", R):
                z = pyro.sample("z", site(P.detach()))
                pyro.factor("f", objective(z.long()))

        def guide() -> None:
            with pyro.plate("r", R):
                pyro.sample("z", site(P))

        with _torch_float64_rng(None):
            pyro.set_rng_seed(seed)
            pyro.clear_param_store()
            TraceGraph_ELBO().loss_and_grads(model, guide)
        return -P.grad  # pyro differentiates the loss, -ELBO

    return vtorch.make_port(fn, name="pyro_TraceGraph_ELBO")


def numpyro_port() -> Callable:
    """numpyro's ``TraceGraph_ELBO``, set up as :func:`pyro_port` (the logits enter through
    ``param_map``, the model's copy through ``stop_gradient``; the gradient is ``jax.grad`` of
    the loss)."""
    import jax
    import numpyro
    import numpyro.distributions as ndist
    from numpyro.infer import TraceGraph_ELBO

    from verify.adapters import jax as vjax  # the submodule: jax is optional

    def fn(params: Any, noise: dict | None, objective: Any, *, dist: str, R: int, seed: int,
           n: int = 1, baseline: float = 0.0) -> Any:
        if noise is not None:
            raise NotImplementedError("numpyro draws its own samples (distribution level only)")

        def site(logits: Any) -> Any:
            d = ndist.Bernoulli(logits=logits) if dist == "bernoulli" else \
                ndist.Categorical(logits=logits)
            return d.to_event(1)

        def model() -> None:
            P = numpyro.param("P", None)
            with numpyro.plate("r", R):
                z = numpyro.sample("z", site(jax.lax.stop_gradient(P)))
                numpyro.factor("f", objective(z.astype(jax.numpy.int32)))

        def guide() -> None:
            P = numpyro.param("P", None)
            with numpyro.plate("r", R):
                numpyro.sample("z", site(P))

        P0 = jax.numpy.broadcast_to(params, (R,) + params.shape)
        elbo = TraceGraph_ELBO()
        g = jax.grad(lambda pm: elbo.loss(jax.random.key(seed), pm, model, guide))({"P": P0})
        return -g["P"]

    return vjax.make_port(fn, name="numpyro_TraceGraph_ELBO")


# ---------------------------------------------------------------------------- what the
# libraries compute, exactly (used only to explain a failure; see the README section)
def _cells(phi: np.ndarray) -> list[list[tuple[float, int, int, float]]]:
    """Per variable, the (at most three) intervals of ``u`` on which ``b1 = 1[u > sigmoid(-phi)]``
    and ``b2 = 1[u < sigmoid(phi)]`` are constant: (length, b1, b2, midpoint)."""
    out = []
    for p in phi:
        cuts = sorted({0.0, float(sigmoid(np.array(-p))), float(sigmoid(np.array(p))), 1.0})
        cells = []
        for lo, hi in itertools.pairwise(cuts):
            if hi > lo:
                m = 0.5 * (lo + hi)
                cells.append((hi - lo, int(m > sigmoid(np.array(-p))), int(m < sigmoid(np.array(p))), m))
        out.append(cells)
    return out


def pair_cell_moments(problem: Problem, n: int, value: Callable[..., np.ndarray],
                      label: str) -> Moments:
    """Exact mean and covariance of the mean over ``n`` iid antithetic pairs of
    ``value(f(b), f(b~), w)``, with ``b = 1[u > sigmoid(-phi)]``, ``b~ = 1[u < sigmoid(phi)]``
    and ``w_k = (-1)^{b~_k} 1[b_k != b~_k] sigmoid(|phi_k|)``: the value is constant on the
    cells of ``u`` (``_cells``), so the moments are exact sums over the product of cells.
    (With ``value = 0.5 (f(b) - f(b~)) w`` this is DisARM; the tests check it against our
    oracle.) ``range_bound`` is the largest ``|g - mean|`` over the cells: the check's variance
    test needs it where the outcomes that carry the variance are too rare to be sampled."""
    phi, f = problem.params, problem.objective
    combos = list(itertools.product(*_cells(phi)))
    probs = np.array([np.prod([c[0] for c in combo]) for combo in combos])
    b = np.array([[c[1] for c in combo] for combo in combos])
    bt = np.array([[c[2] for c in combo] for combo in combos])
    w = (-1.0) ** bt * (b != bt) * sigmoid(np.abs(phi))
    g = value(f(b)[:, None], f(bt)[:, None], w)
    mean = probs @ g
    centred = g - mean
    cov = (centred.T * probs) @ centred / n
    return Moments(mean, cov, label, range_bound=np.abs(centred).max(axis=0))


def storch_disarm_moments(problem: Problem, n: int) -> Moments:
    """Exact moments of storchastic 0.3.7's ``DisARM`` as it computes: per pair
    ``(1/4) (f(b) + f(b~)) w`` (its control variate ``f(b~)`` enters the surrogate with a plus
    sign, and its plate weights are ``1/(2n)`` over the ``2n`` samples), mean over ``n``
    pairs."""
    return pair_cell_moments(problem, n, lambda fb, fbt, w: 0.25 * (fb + fbt) * w,
                             "storchastic DisARM as computed, exact over u-cells")


def storch_disarm_values(problem: Problem, noise: dict[str, np.ndarray]) -> np.ndarray:
    """What storchastic 0.3.7's ``DisARM`` computes on our noise ``u (R, n, K)``: the mean over
    pairs of ``(1/4) (f(b) + f(b~)) w`` (see :func:`storch_disarm_moments`)."""
    phi, u = problem.params, noise["u"]
    b = (u > sigmoid(-phi)).astype(np.int64)
    bt = (u < sigmoid(phi)).astype(np.int64)
    w = (-1.0) ** bt * (b != bt) * sigmoid(np.abs(phi))
    return (0.25 * (problem.objective(b) + problem.objective(bt))[..., None] * w).mean(axis=-2)


def numpyro_bernoulli_moments(problem: Problem) -> Moments:
    """Exact moments of numpyro 0.22.0's one-site ``TraceGraph_ELBO`` gradient on Bernoulli
    logits as it computes: ``f(z) s(z)`` with ``s_k = z_k - sigmoid(phi_k)``, except at
    ``phi_k = 0`` exactly, where its ``Bernoulli(logits).log_prob`` differentiates to ``z_k``
    (``binary_cross_entropy_with_logits`` is ``clip(x, 0) + log1p(exp(-|x|)) - x y``, and
    JAX's derivatives at the kink, 1/2 for ``clip`` and 1 for ``|x|``, do not add up to the
    softplus's 1/2). By enumeration of the ``2^K`` configurations."""
    phi, f = problem.params, problem.objective
    z = configurations(problem)
    q = config_probabilities(problem).ravel()
    s = z - sigmoid(phi) + 0.5 * (phi == 0.0)
    g = f(z)[:, None] * s
    mean = q @ g
    centred = g - mean
    return Moments(mean, (centred.T * q) @ centred, "numpyro TraceGraph_ELBO as computed, exact",
                   range_bound=np.abs(centred).max(axis=0))


def scaled_moments(m: Moments, scale: float, label: str) -> Moments:
    rb = None if m.range_bound is None else abs(scale) * m.range_bound
    me = None if m.mean_error is None else abs(scale) * m.mean_error
    ce = None if m.cov_error is None else scale * scale * m.cov_error
    return Moments(scale * m.mean, scale * scale * m.cov, label, m.error_bound * abs(scale), rb,
                   me, ce)


# ---------------------------------------------------------------------------- the cases
@dataclass
class Case:
    library: str
    estimator: str  # the library's name and settings
    ours: str  # registry name
    dist: str
    options: dict[str, Any]
    port: Callable[[], Callable]
    sample_level: bool = True
    #: for a known failure: (why, exact moments of what the library computes)
    explain: Callable[[Problem], Moments] | None = None
    #: ... and what it computes on our noise: (problem, noise) -> per-replicate values
    explain_sample: Callable[[Problem, dict], np.ndarray] | None = None
    why: str = ""
    moments: Callable[[Problem], Moments] | None = None  # instead of the registry's
    #: replicates, where not --R: the per-replicate loops are slow, and Expect is deterministic
    R: int | None = None


def cases() -> list[Case]:
    loo = get_estimator("reinforce")

    def ma_explain(p: Problem) -> Moments:
        m = loo.exact_moments(p.dist.name, p.params, p.objective, n=1)
        return scaled_moments(m, 0.95, "0.95 x REINFORCE (baseline 0), exact")

    def ma_sample(p: Problem, noise: dict) -> np.ndarray:
        return 0.95 * loo.estimate(p.dist.name, p.params, p.objective, noise, n=1)

    def expect_moments(p: Problem) -> Moments:
        return Moments(exact_gradient(p), np.zeros((p.params.size,) * 2), "exact gradient")

    out = []
    for dist in ("bernoulli", "categorical"):
        out += [
            Case("storchastic", "ScoreFunction(n_samples=1, baseline none)", "reinforce", dist,
                 {"n": 1}, lambda: storch_port("ScoreFunction", baseline_factory="none")),
            Case("storchastic", "ScoreFunction(n_samples=4, baseline none)", "reinforce", dist,
                 {"n": 4}, lambda: storch_port("ScoreFunction", baseline_factory="none")),
            Case("storchastic", "ScoreFunction(n_samples=4, batch_average)", "reinforce_loo",
                 dist, {"n": 4}, lambda: storch_port("ScoreFunction",
                                                     baseline_factory="batch_average")),
            Case("storchastic", "ScoreFunction(n_samples=1, moving_average), first step",
                 "reinforce", dist, {"n": 1},
                 lambda: storch_port("ScoreFunction", batched=False,
                                     baseline_factory="moving_average"), R=500,
                 explain=ma_explain, explain_sample=ma_sample,
                 why="the moving average is updated with the current cost before it is used: "
                     "g = 0.95 (f(z) - b_prev) grad log q, mean 0.95 x gradient"),
            Case("storchastic", "Expect", "exact gradient", dist, {},
                 lambda: storch_port("Expect", batched=False), sample_level=False,
                 moments=expect_moments, R=10),
            Case("storchastic", "GumbelSoftmax(temperature=0.5)", "gumbel_softmax", dist,
                 {"tau": 0.5}, lambda: storch_port("GumbelSoftmax")),
            Case("storchastic", "GumbelSoftmax(straight_through=True)", "st_gumbel_softmax", dist,
                 {"tau": 1.0}, lambda: storch_port("GumbelSoftmax", straight_through=True)),
            Case("pyro", "TraceGraph_ELBO, one site", "reinforce", dist, {"n": 1}, pyro_port,
                 sample_level=False),
            Case("numpyro", "TraceGraph_ELBO, one site", "reinforce", dist, {"n": 1},
                 numpyro_port, sample_level=False,
                 explain=numpyro_bernoulli_moments if dist == "bernoulli" else None,
                 why="d/dphi log Bernoulli(logits=phi).log_prob(z) is z, not z - 1/2, at phi = 0 "
                     "exactly: mean gradient + E[f]/2 on those coordinates"),
        ]
    out += [
        Case("storchastic", "ARM(n_samples=1)", "arm", "bernoulli", {"n": 1},
             lambda: storch_port("ARM")),
        Case("storchastic", "ARM(n_samples=2)", "arm", "bernoulli", {"n": 2},
             lambda: storch_port("ARM")),
        Case("storchastic", "DisARM(n_samples=1)", "disarm", "bernoulli", {"n": 1},
             lambda: storch_port("DisARM"),
             explain=lambda p: storch_disarm_moments(p, 1), explain_sample=storch_disarm_values,
             why="control variate f(b~) added instead of subtracted, plate weight 1/(2n): "
                 "(1/4)(f(b)+f(b~)) w instead of (1/2)(f(b)-f(b~)) w"),
        Case("storchastic", "DisARM(n_samples=2)", "disarm", "bernoulli", {"n": 2},
             lambda: storch_port("DisARM"),
             explain=lambda p: storch_disarm_moments(p, 2), explain_sample=storch_disarm_values,
             why="as for n_samples=1"),
        Case("storchastic (patched)", "DisARM with the README's fix", "disarm",
             "bernoulli", {"n": 2}, lambda: storch_port("DisARM", patched=True)),
    ]
    return out


def _version(lib: str) -> str:
    lib = lib.split(" ")[0]
    dist = {"storchastic": "storchastic", "pyro": "pyro-ppl", "numpyro": "numpyro"}[lib]
    return importlib.metadata.version(dist)


def moving_average_later_step(problem: Problem, R: int = 32, seed: int = 0) -> float:
    """The moving-average baseline after a first step: one storchastic ``ScoreFunction``
    per replicate takes a first step on a sample of its own (which sets its average ``b_1``),
    then a second step on our noise. Returns the largest relative deviation of the second
    estimate from ``0.95 x`` our REINFORCE with the constant baseline ``b_1`` read from the
    method (what the README's relation predicts)."""
    import storch
    import torch
    from torch.distributions import Bernoulli, Categorical

    from reference.distributions import get_distribution

    d = problem.dist.name
    est = get_estimator("reinforce")
    noise = est.draw_noise(np.random.default_rng(seed), d, problem.params.shape, R, n=1)
    obj = _torch_objective(problem.objective)
    worst = 0.0
    with _torch_float64_rng(seed):
        for r in range(R):
            method = storch.method.ScoreFunction("z", n_samples=1,
                                                 baseline_factory="moving_average")
            grads = []
            for step in range(2):
                logits = torch.tensor(problem.params, requires_grad=True)
                dist = Bernoulli(logits=logits) if d == "bernoulli" else Categorical(logits=logits)
                if step == 1:  # our sample, through the library's sampling hook
                    z = get_distribution(d).sample(problem.params, noise["u"][r])  # (1, K)
                    zt = torch.as_tensor(z, dtype=torch.float64 if d == "bernoulli" else torch.long)
                    method.sampling_method.set_mc_sample(lambda *a, zt=zt: zt)
                    b1 = float(method._b_z_f.moving_average)
                zs = method(dist)
                storch.add_cost(storch.deterministic(lambda z: obj(z.long()))(zs), "f")
                storch.backward()
                grads.append(logits.grad.numpy().copy())
            ref = est.estimate(d, problem.params, problem.objective,
                               {"u": noise["u"][r:r + 1]}, n=1, baseline=b1)[0]
            worst = max(worst, float(np.abs(grads[1] - 0.95 * ref).max() / np.abs(ref).max()))
    return worst


def _torch_objective(objective: Any) -> Any:
    from verify.adapters import torch as vtorch

    return vtorch.TorchObjective(objective)


def run(R: int, only: set[str], seed: int = 1) -> list[dict[str, Any]]:
    rows = []
    if "storchastic" in only:
        for dist in ("bernoulli", "categorical"):
            label = PROBLEMS[dist][0]
            t0 = time.perf_counter()
            err = moving_average_later_step(_problem(dist, label))
            rows.append({"library": "storchastic", "version": _version("storchastic"),
                         "estimator": "ScoreFunction(n_samples=1, moving_average), second step",
                         "ours": "reinforce", "options": {"n": 1, "baseline": "b_1"},
                         "dist": dist, "problem": label, "level": "sample", "passed": False,
                         "explained": bool(err <= 1e-9), "why": "0.95 (f(z) - b_1) grad log q",
                         "detail": f"vs 0.95 x reinforce with baseline b_1: {err:.1e}",
                         "seconds": time.perf_counter() - t0})
            print(_fmt(rows[-1]), flush=True)
    for case in cases():
        if case.library.split(" ")[0] not in only:
            continue
        port = case.port()
        for label in PROBLEMS[case.dist]:
            problem = _problem(case.dist, label)
            base = {"library": case.library, "version": _version(case.library),
                    "estimator": case.estimator, "ours": case.ours, "options": case.options,
                    "dist": case.dist, "problem": label}
            if case.sample_level:
                t0 = time.perf_counter()
                err, noise, out = sample_level(port, case.ours, problem, **case.options)
                row = base | {"level": "sample", "passed": bool(err <= 1e-9),
                              "detail": f"max rel diff {err:.1e}"}
                if case.explain_sample is not None:
                    alt_err = _rel(out, case.explain_sample(problem, noise))
                    row["explained"] = bool(alt_err <= 1e-9)
                    row["why"] = case.why
                    row["detail"] += f"; vs the library's formula: {alt_err:.1e}"
                rows.append(row | {"seconds": time.perf_counter() - t0})
                print(_fmt(rows[-1]), flush=True)
            t0 = time.perf_counter()
            samples = distribution_samples(port, problem, R=case.R or R, seed=seed, **case.options)
            m = case.moments(problem) if case.moments else None
            res = distribution_level(samples, case.ours, problem, m, **case.options)
            row = base | {"level": "distribution", "passed": bool(res.passed),
                          "detail": f"mean ratio {res.mean_worst_ratio:.2f}, "
                                    f"var ratio {res.variance_worst_ratio:.2f}"}
            if case.explain is not None:
                alt = check_samples(samples, case.explain(problem))
                row["explained"] = bool(alt.passed)
                row["why"] = case.why
                row["detail"] += f"; vs the library's exact moments: {'pass' if alt.passed else 'FAIL'}"
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


def _fmt(row: dict[str, Any]) -> str:
    verdict = "ok" if row["passed"] else ("FAIL (explained)" if row.get("explained") else "FAIL")
    return (f"| {row['library']} | {row['version']} | {row['estimator']} | {row['ours']} "
            f"{row['options'] or ''} | {row['level']} | {row['problem']} | {verdict} | "
            f"{row['detail']} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--R", type=int, default=2000, help="replicates per distribution-level check")
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("--only", default="storchastic,pyro,numpyro",
                    help="comma-separated libraries to check")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if not only <= {"storchastic", "pyro", "numpyro"}:
        ap.error(f"--only takes storchastic, pyro, numpyro; got {args.only!r}")
    _cli.at_least(ap, "--R", args.R, 2)
    if args.json:  # checked before any work, so a bad path costs nothing
        _cli.writable_dir(ap, "--json's folder", os.path.dirname(os.path.abspath(args.json)))
    print("| library | version | estimator | ours | level | problem | verdict | detail |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = run(args.R, only)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    bad = [r for r in rows if not r["passed"] and not r.get("explained")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
