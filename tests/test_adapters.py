"""The framework adapters: ports written in JAX (and PyTorch, when installed) pass the checks
against the oracle, and the adapters' differentiable objectives give the objective's own
gradients to the frameworks' automatic differentiation.

The checks go through :func:`verify.check_port` at ``level="sample"`` (the reference on shared
noise) and ``level="distribution"`` (the port's own noise against the exact moments).
"""

from __future__ import annotations

import numpy as np
import pytest

import verify
from reference import random_table
from reference.distributions import sigmoid, softmax
from reference.objectives import binary_quadratic

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install -e '.[jax]')")
jnp = jax.numpy

from verify.adapters import jax as vjax  # noqa: E402


# ------------------------------------------------------------------ checks against the oracle
def _sample_level(port, name: str, problem: verify.Problem, *, R: int = 64, seed: int = 0,
                  **options) -> verify.PortReport:
    """Shared noise against the NumPy reference (two batch elements, tolerance from the
    port's output dtype), through the port protocol."""
    return verify.check_port(port, name, problem, level="sample", R_shared=R, seed=seed,
                             **options)


def _distribution_level(port, name: str, problem: verify.Problem, *, R: int = 2000,
                        seed: int = 1, **options) -> verify.PortReport:
    """The port's own noise against the exact moments, through the port protocol."""
    return verify.check_port(port, name, problem, level="distribution", R=R, seed=seed,
                             **options)


# ------------------------------------------------------------------ JAX ports
def _jax_sample(dist: str, params, u):
    """Our documented inverse-CDF mapping, in JAX ops: params ``(*b, K[, C])``, u ``(*b, R, n,
    K)`` -> z ``(*b, R, n, K)``."""
    if dist == "bernoulli":
        return (u < jax.nn.sigmoid(params[..., None, None, :])).astype(jnp.int64)
    e = jnp.exp(params - params.max(axis=-1, keepdims=True))[..., None, None, :, :]
    S = jnp.cumsum(e, axis=-1)
    return (S <= u[..., None] * S[..., -1:]).sum(axis=-1)


def _jax_score(dist: str, params, z):
    if dist == "bernoulli":
        return z - jax.nn.sigmoid(params[..., None, None, :])
    p = jax.nn.softmax(params, axis=-1)[..., None, None, :, :]
    return jax.nn.one_hot(z, params.shape[-1], dtype=params.dtype) - p


def _uniforms(params, noise, dist, n, R, seed):
    if noise is not None:
        return noise["u"]
    event = 1 if dist == "bernoulli" else 2
    shape = params.shape[: params.ndim - event] + (R, n, params.shape[params.ndim - event])
    return jax.random.uniform(jax.random.key(seed), shape, dtype=params.dtype)


def jax_loo(params, noise, objective, *, dist, n, R=None, seed=None, divisor=None):
    """REINFORCE-LOO written with JAX ops; ``divisor`` replaces ``n - 1`` (a deliberate bug)."""
    z = _jax_sample(dist, params, _uniforms(params, noise, dist, n, R, seed))
    f = objective(z)  # (*b, R, n)
    w = (f - f.mean(axis=-1, keepdims=True)) / (n - 1 if divisor is None else divisor)
    s = _jax_score(dist, params, z)
    w = w.reshape(w.shape + (1,) * (s.ndim - w.ndim))
    return (w * s).sum(axis=-1 - (s.ndim - f.ndim))


def jax_straight_through(params, noise, objective, *, dist, n, R=None, seed=None):
    """Straight-through through the adapter's differentiable objective: the forward value is
    the one-hot sample, the backward pass sees ``softmax(alpha)`` (``sigmoid(phi)``)."""
    u = _uniforms(params, noise, dist, n, R, seed)
    event = 1 if dist == "bernoulli" else 2
    reps = u.shape[params.ndim - event]
    # one copy of the parameters per replicate, so the gradient comes out per replicate
    P = jnp.broadcast_to(jnp.expand_dims(params, params.ndim - event),
                         params.shape[: params.ndim - event] + (reps,) + params.shape[params.ndim - event:])

    def surrogate(P):
        z = _jax_sample(dist, jax.lax.stop_gradient(params), u)
        if dist == "bernoulli":
            p = jax.nn.sigmoid(P)[..., None, :]
            hard = z.astype(P.dtype)
        else:
            p = jax.nn.softmax(P, axis=-1)[..., None, :, :]
            hard = jax.nn.one_hot(z, P.shape[-1], dtype=P.dtype)
        y = hard + p - jax.lax.stop_gradient(p)
        return objective.relaxed(y).mean(axis=-1).sum()

    return jax.grad(surrogate)(P)


PROBLEMS = [
    ("categorical", verify.make_problem("categorical", np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]]),
                                        random_table(2, 3, seed=3))),
    ("bernoulli", verify.make_problem("bernoulli", np.array([0.4, -1.2, 2.0]),
                                      random_table(3, 2, seed=4))),
]


@pytest.mark.parametrize("dist,problem", PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_jax_loo_port_passes_both_levels(dist, problem):
    port = vjax.make_port(jax_loo)
    rep = _sample_level(port, "reinforce_loo", problem, n=3)
    assert rep.passed, rep.message
    res = _distribution_level(port, "reinforce_loo", problem, n=3)
    assert res.passed, res.message


def test_jax_loo_port_with_a_wrong_normalisation_fails():
    # dividing by n instead of n - 1 scales the estimator by 2/3 at n = 3: different numbers
    # on shared noise, and (with enough replicates to see a 2/3 scale) the wrong distribution
    _, problem = PROBLEMS[0]
    port = vjax.make_port(lambda *a, **k: jax_loo(*a, divisor=3, **k))
    assert not _sample_level(port, "reinforce_loo", problem, n=3).passed
    assert not _distribution_level(port, "reinforce_loo", problem, R=10000, n=3).passed


@pytest.mark.parametrize("dist,problem", PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_jax_straight_through_matches_reference_on_shared_noise(dist, problem):
    port = vjax.make_port(jax_straight_through)
    rep = _sample_level(port, "straight_through", problem, n=2)
    assert rep.passed, rep.message


def test_jax_relaxed_objective_gives_the_objective_gradient():
    # categorical multilinear table and the binary quadratic: jax.grad equals objective.relaxed
    rng = np.random.default_rng(5)
    for obj, shape in ((random_table(2, 3, seed=6), (4, 2, 3)), (binary_quadratic(3, 0.3), (4, 3))):
        y = rng.random(shape)
        v, g = obj.relaxed(y)
        jo = vjax.JaxObjective(obj)
        with jax.enable_x64(True):
            jy = jnp.asarray(y)
            val = np.asarray(jax.jit(jo.relaxed)(jy))
            grad = np.asarray(jax.grad(lambda a, jo=jo: jo.relaxed(a).sum())(jy))
            # under vmap the callback sees the batch and answers it in one call
            vmapped = np.asarray(jax.vmap(jo.relaxed)(jy))
        np.testing.assert_array_equal(val, v)
        np.testing.assert_array_equal(grad, g)
        np.testing.assert_array_equal(vmapped, v)


def test_jax_port_validates_its_calls():
    port = vjax.make_port(jax_loo)
    _, problem = PROBLEMS[0]
    with pytest.raises(ValueError, match="dist"):
        port(problem.params, None, problem.objective, dist="poisson", R=2, seed=0, n=3)
    with pytest.raises(ValueError, match="R"):
        port(problem.params, None, problem.objective, dist="categorical", seed=0, n=3)
    with pytest.raises(ValueError, match="finite"):
        port(problem.params * np.nan, None, problem.objective, dist="categorical", R=2, seed=0, n=3)
    with pytest.raises(ValueError, match="float64 or float32"):
        vjax.make_port(jax_loo, dtype=np.int32)


def test_jax_float32_port_is_float32_accurate():
    _, problem = PROBLEMS[0]
    port = vjax.make_port(jax_loo, dtype=np.float32)
    rep = _sample_level(port, "reinforce_loo", problem, n=3)
    # computed and returned in float32: not exact, but within the float32 tolerance that
    # check_port takes from the output's dtype
    assert rep.passed and rep.max_abs_diff > 0, rep.message
    assert rep.tolerance > 1e-9  # a float32 tolerance, not float64's


# ------------------------------------------------------------------ PyTorch
def test_torch_straight_through_and_relaxed_gradient():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[torch]')")
    from verify.adapters import torch as vtorch

    def torch_st(params, noise, objective, *, dist, n):
        # categorical straight-through with the adapter's autograd objective, per replicate
        u = noise["u"]  # (*b, R, n, K)
        P = params.detach()[..., None, :, :].expand(*u.shape[:-2], *params.shape[-2:]).clone()
        P.requires_grad_(True)
        e = torch.exp(params.detach() - params.detach().max(-1, keepdim=True).values)
        S = torch.cumsum(e, -1)[..., None, None, :, :]
        z = (S <= u[..., None] * S[..., -1:]).sum(-1)
        p = torch.softmax(P, -1)[..., None, :, :]
        y = torch.nn.functional.one_hot(z, params.shape[-1]).to(P.dtype) + p - p.detach()
        (grad,) = torch.autograd.grad(objective.relaxed(y).mean(-1).sum(), P)
        return grad

    _, problem = PROBLEMS[0]
    port = vtorch.make_port(torch_st)
    rep = _sample_level(port, "straight_through", problem, n=2)
    assert rep.passed, rep.message

    obj, y = random_table(2, 3, seed=6), np.random.default_rng(7).random((4, 2, 3))
    v, g = obj.relaxed(y)
    ty = torch.tensor(y, requires_grad=True)
    vtorch.TorchObjective(obj).relaxed(ty).sum().backward()
    np.testing.assert_array_equal(ty.grad.numpy(), g)
    np.testing.assert_array_equal(vtorch.TorchObjective(obj)(torch.tensor([[0, 2]])).numpy(),
                                  obj(np.array([[0, 2]])))


def test_adapters_package_imports_no_framework():
    import subprocess
    import sys

    code = ("import sys, verify.adapters; "
            "print(sorted(m for m in ('jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_softmax_sigmoid_agree_with_reference_helpers():
    # the ports above use jax.nn's softmax/sigmoid; the reference uses its own stable forms
    x = np.array([[-30.0, 0.0, 30.0], [0.1, -0.2, 0.3]])
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(jax.nn.softmax(jnp.asarray(x), axis=-1)), softmax(x),
                                   rtol=1e-15, atol=0)
        np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(jnp.asarray(x))), sigmoid(x),
                                   rtol=1e-15, atol=0)
