"""Independent implementations of the ARM paper's baselines (issue 10), written from the papers
in JAX the way public code writes them — a surrogate loss differentiated by ``jax.grad``, with
``stop_gradient`` on the learning signals — and checked against our records by
:func:`verify.check_port`:

* at ``level="distribution"`` each port draws its own noise with ``jax.random`` and, for
  REBAR/RELAX, uses the paper's (and tensorflow/models ``research/rebar``'s) convention
  ``z = logit(theta) + log u - log(1 - u)``, ``b = H(z)``, with the conditional uniform
  ``u' = (1 - theta) + v theta`` given ``b = 1`` and ``v (1 - theta)`` given ``b = 0``
  differentiated through ``theta``: a different route from the records' softplus forms in
  ``v``, compared only in distribution with the oracle's exact (NVIL, MuProp, double CV) or
  certified (REBAR, RELAX) moments;
* categorical REBAR/RELAX follow the RELAX paper's appendix B in its normalized form
  (``log theta = log_softmax(P)``, ``z~_b = -log(-log v_b)``, ``z~_i = -log(-log v_i / theta_i
  - log v_b)``), where the records use the unnormalized logits and a softplus form;
* at ``level="sample"`` the same code on our noise (our convention ``b = 1[u < theta]``, the
  mirror image ``u -> 1 - u``) must give our numbers to rounding.

No formula is shared with :mod:`reference`: the gradients come from JAX's automatic
differentiation of each paper's surrogate objective.
"""

from __future__ import annotations

import numpy as np
import pytest

import verify
from reference import random_table
from reference.estimators.rebar import QuadraticSurrogate

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install -e '.[jax]')")
jnp = jax.numpy
sg = jax.lax.stop_gradient

from verify.adapters import jax as vjax  # noqa: E402

_EVENT = {"bernoulli": 1, "categorical": 2}


def _own_u(params, noise, dist, n, R, seed, name="u", salt=0):
    """``noise[name]`` ``(*b, R, n, K)`` or fresh JAX uniforms of that shape."""
    if noise is not None:
        return noise[name]
    e = _EVENT[dist]
    batch, K = params.shape[: params.ndim - e], params.shape[params.ndim - e]
    return jax.random.uniform(jax.random.fold_in(jax.random.key(seed), salt),
                              batch + (R, n, K), dtype=params.dtype)


def _per_replicate(params, dist, R):
    """One copy of the parameters per replicate ``(*b, R, *event)``: differentiating the sum of
    per-replicate surrogates by these copies gives the estimates replicate by replicate."""
    e = _EVENT[dist]
    lead = params.shape[: params.ndim - e]
    return jnp.broadcast_to(jnp.expand_dims(params, params.ndim - e),
                            lead + (R,) + params.shape[params.ndim - e:])


def _sample(dist, params, u):
    """The inverse-CDF sample (our documented mapping): params ``(*b, *event)``, u ``(*b, R, n,
    K)`` -> int ``(*b, R, n, K)``."""
    if dist == "bernoulli":
        return (u < jax.nn.sigmoid(params[..., None, None, :])).astype(jnp.int64)
    e = jnp.exp(params - params.max(axis=-1, keepdims=True))[..., None, None, :, :]
    S = jnp.cumsum(e, axis=-1)
    return (S <= u[..., None] * S[..., -1:]).sum(axis=-1)


def _log_q(dist, P, z):
    """``log q(z; P)`` summed over ``K``: P ``(*b, R, *event)``, z ``(*b, R, n, K)`` -> ``(*b, R,
    n)``."""
    if dist == "bernoulli":
        lp = jax.nn.log_sigmoid(P)[..., None, :]
        l0 = jax.nn.log_sigmoid(-P)[..., None, :]
        return jnp.where(z == 1, lp, l0).sum(-1)
    logp = jax.nn.log_softmax(P, axis=-1)[..., None, :, :]
    return jnp.take_along_axis(logp, z[..., None], axis=-1)[..., 0].sum(-1)


def _mean(dist, P):
    return jax.nn.sigmoid(P) if dist == "bernoulli" else jax.nn.softmax(P, axis=-1)


def _point(dist, z, C):
    return z.astype(jnp.float64) if dist == "bernoulli" else jax.nn.one_hot(z, C)


def _expand(x, dist, axes: int):
    """Insert ``axes`` new axes before the event axes of ``x`` (``(*b, *event)``)."""
    e = _EVENT[dist]
    return jnp.reshape(x, x.shape[: x.ndim - e] + (1,) * axes + x.shape[x.ndim - e:])


def _grad(surrogate, params, dist, R):
    return jax.grad(lambda P: surrogate(P).sum())(_per_replicate(params, dist, R))


def _R_of(u, params, dist):
    return u.shape[params.ndim - _EVENT[dist]]


# ------------------------------------------------------------------------------- ports
def jax_nvil(params, noise, objective, *, dist, n, baseline, c, v, R=None, seed=None):
    """NVIL (Mnih & Gregor 2014): ``(f(z) - b - c) grad log q(z) / max(1, sqrt(v))``."""
    u = _own_u(params, noise, dist, n, R, seed)
    z = _sample(dist, sg(params), u)
    signal = (objective(z) - baseline - c) / max(1.0, float(np.sqrt(v)))
    return _grad(lambda P: (sg(signal) * _log_q(dist, P, z)).mean(-1), params, dist,
                 _R_of(u, params, dist))


def jax_muprop(params, noise, objective, *, dist, n, R=None, seed=None):
    """MuProp (Gu et al. 2016): the first-order Taylor expansion of ``f`` at ``mu = E[x]`` as
    control variate, its mean added back by differentiating ``grad f(mu) . mu(P)``."""
    u = _own_u(params, noise, dist, n, R, seed)
    z = _sample(dist, sg(params), u)
    C = params.shape[-1]
    mu = _mean(dist, sg(params))
    f_mu = objective.relaxed(mu)
    df_mu = jax.grad(lambda m: objective.relaxed(m).sum())(mu)
    x = _point(dist, z, C)
    axes = (-1,) if dist == "bernoulli" else (-2, -1)
    lin = ((x - _expand(mu, dist, 2)) * _expand(df_mu, dist, 2)).sum(axes)
    signal = objective(z) - f_mu[..., None, None] - lin

    def surrogate(P):
        correction = (_expand(df_mu, dist, 1) * _mean(dist, P)).sum(axes)
        return (sg(signal) * _log_q(dist, P, z)).mean(-1) + correction

    return _grad(surrogate, params, dist, _R_of(u, params, dist))


def jax_double_cv(params, noise, objective, *, dist, n, alpha_cv, R=None, seed=None):
    """Double control variates (Titsias & Shi 2022), Bernoulli: the leave-one-out baseline on
    ``a_i = f(z_i) + alpha gbar_{-i} . (z_i - p)`` with ``gbar_{-i}`` the mean of ``grad f`` at
    the other samples, and the Taylor term's mean ``alpha grad_P <p(P), dbar>`` subtracted."""
    u = _own_u(params, noise, dist, n, R, seed)
    z = _sample(dist, sg(params), u)
    p = jax.nn.sigmoid(sg(params))[..., None, None, :]
    x = z.astype(params.dtype)
    d = jax.grad(lambda y: objective.relaxed(y).sum())(x)  # grad f at the discrete samples
    gbar = (d.sum(-2, keepdims=True) - d) / (n - 1)
    a = objective(z) + alpha_cv * (gbar * (x - p)).sum(-1)
    w = (a - a.mean(-1, keepdims=True)) / (n - 1)
    dbar = d.mean(-2)

    def surrogate(P):
        return (sg(w) * _log_q(dist, P, z)).sum(-1) \
            - alpha_cv * (sg(dbar) * jax.nn.sigmoid(P)).sum(-1)

    return _grad(surrogate, params, dist, _R_of(u, params, dist))


def _conditional_z(P, b, v, paper: bool):
    """The logistic relaxation given ``b`` from the conditional uniform, differentiable in
    ``P`` through ``theta = sigmoid(P)``. Paper convention (``b = 1[u > 1 - theta]``,
    ``z = P + log u - log(1 - u)``): ``u' = (1 - theta) + v theta`` given ``b = 1``, ``v (1 -
    theta)`` given ``b = 0``. Ours (``b = 1[u < theta]``, ``z = P + log(1 - u) - log u``):
    ``u' = v theta`` given ``b = 1``, ``theta + v (1 - theta)`` given ``b = 0``."""
    th = jax.nn.sigmoid(P)
    if paper:
        up = jnp.where(b == 1, (1 - th) + v * th, v * (1 - th))
        return P + jnp.log(up) - jnp.log1p(-up)
    up = jnp.where(b == 1, v * th, th + v * (1 - th))
    return P + jnp.log1p(-up) - jnp.log(up)


def _relaxed_c(objective, surrogate):
    """The control variate's function of relaxed points: the objective's relaxation, or the
    quadratic surrogate ``scale * sum (y - t)^2`` over the event axes."""
    if surrogate is None:
        return objective.relaxed
    scale, t = surrogate.scale, surrogate.t
    return lambda y, axes: scale * ((y - t) ** 2).sum(axes)


def _rebar_port_categorical(params, noise, objective, *, n, eta, tau, surrogate, R, seed,
                            wrong_max=False):
    """Categorical REBAR/RELAX from the RELAX paper's appendix B (eq. (17) of its LaTeX source),
    in the paper's normalized form: ``log theta = log_softmax(P)``, ``z = log theta - log(-log
    u)``, ``b = argmax z``; given ``b``, ``z~_b = -log(-log v_b)`` and ``z~_i = -log(-log v_i /
    theta_i - log v_b)``, differentiated through ``theta`` by ``jax.grad`` with ``b`` and ``v``
    held fixed. ``wrong_max``: the maximum at ``log theta_b - log(-log v_b)``, as the RELAX
    authors' RL code (``make_samples``) writes it."""
    if noise is None:
        shape = params.shape[:-2] + (R, n) + params.shape[-2:]
        key = jax.random.key(seed)
        u = jax.random.uniform(jax.random.fold_in(key, 0), shape, dtype=params.dtype)
        v = jax.random.uniform(jax.random.fold_in(key, 1), shape, dtype=params.dtype)
    else:
        u, v = noise["u"], noise["v"]
    tiny = jnp.finfo(jnp.float64).tiny
    Eu, Ev = -jnp.log(jnp.maximum(u, tiny)), -jnp.log(jnp.maximum(v, tiny))
    C = params.shape[-1]
    b = jnp.argmax(jax.nn.log_softmax(sg(params), -1)[..., None, None, :, :] - jnp.log(Eu), -1)
    top = jax.nn.one_hot(b, C, dtype=bool)
    Eb = jnp.take_along_axis(Ev, b[..., None], -1)
    fn = _relaxed_c(objective, surrogate)
    c = (lambda y: fn(y)) if surrogate is None else (lambda y: fn(y, (-2, -1)))

    def surrogate_loss(P):
        logth = jax.nn.log_softmax(P, -1)[..., None, :, :]
        z = logth - jnp.log(Eu)
        zb = -jnp.log(Eb) + (jnp.take_along_axis(logth + 0 * Ev, b[..., None], -1)
                             if wrong_max else 0.0)
        zt = jnp.where(top, zb, -jnp.log(Ev / jnp.exp(logth) + jnp.exp(-zb)))
        c_z = c(jax.nn.softmax(z / tau, -1))
        c_zt = c(jax.nn.softmax(zt / tau, -1))
        signal = objective(b) - eta * c_zt
        return (sg(signal) * _log_q("categorical", P, b) + eta * c_z - eta * c_zt).mean(-1)

    return _grad(surrogate_loss, params, "categorical", u.shape[params.ndim - 2])


def _rebar_port(params, noise, objective, *, dist, n, eta, tau, surrogate, R, seed,
                wrong_side=False):
    if dist == "categorical":
        return _rebar_port_categorical(params, noise, objective, n=n, eta=eta, tau=tau,
                                       surrogate=surrogate, R=R, seed=seed)
    paper = noise is None  # own noise: the paper's convention; ours on shared noise
    u = _own_u(params, noise, dist, n, R, seed, "u", 0)
    v = _own_u(params, noise, dist, n, R, seed, "v", 1)
    th = jax.nn.sigmoid(sg(params))[..., None, None, :]
    b = (u > 1 - th if paper else u < th).astype(jnp.int64)

    if surrogate is None:
        def c(y):
            return objective.relaxed(y)
    else:
        scale, t = surrogate.scale, surrogate.t

        def c(y):
            return scale * ((y - t) ** 2).sum(-1)

    def relax_z(P):
        Pn = P[..., None, :]
        return Pn + (jnp.log(u) - jnp.log1p(-u) if paper else jnp.log1p(-u) - jnp.log(u))

    def surrogate_loss(P):
        # wrong_side: a deliberate slip for the negative test (the other side's conditional)
        zt = _conditional_z(P[..., None, :], 1 - b if wrong_side else b, v, paper)
        c_z = c(jax.nn.sigmoid(relax_z(P) / tau))
        c_zt = c(jax.nn.sigmoid(zt / tau))
        signal = objective(b) - eta * c_zt
        return (sg(signal) * _log_q(dist, P, b) + eta * c_z - eta * c_zt).mean(-1)

    return _grad(surrogate_loss, params, dist, _R_of(u, params, dist))


def jax_rebar(params, noise, objective, *, dist, n, eta, tau, R=None, seed=None):
    """REBAR (Tucker et al. 2017): ``[f(b) - eta f(s(z~))] grad log q(b) + eta grad f(s(z)) -
    eta grad f(s(z~))`` by differentiating the surrogate loss, ``s(.) = sigmoid(. / tau)``."""
    return _rebar_port(params, noise, objective, dist=dist, n=n, eta=eta, tau=tau,
                       surrogate=None, R=R, seed=seed)


def jax_relax(params, noise, objective, *, dist, n, eta, tau, surrogate, R=None, seed=None):
    """RELAX (Grathwohl et al. 2018) with the surrogate ``c = eta s``; ``s = f`` when
    ``surrogate`` is None (REBAR)."""
    return _rebar_port(params, noise, objective, dist=dist, n=n, eta=eta, tau=tau,
                       surrogate=surrogate, R=R, seed=seed)


# ------------------------------------------------------------------------------- tests
_BERN = verify.make_problem("bernoulli", np.array([0.4, -1.2, 2.0]), random_table(3, 2, seed=4))
_CAT = verify.make_problem("categorical", np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]]),
                           random_table(2, 3, seed=3))

CASES = [
    ("nvil", jax_nvil, _BERN, {"n": 2, "baseline": 0.3, "c": -0.1, "v": 2.5}),
    ("nvil", jax_nvil, _CAT, {"n": 2, "baseline": 0.3, "c": -0.1, "v": 0.5}),
    ("muprop", jax_muprop, _BERN, {"n": 2}),
    ("muprop", jax_muprop, _CAT, {"n": 2}),
    ("double_cv", jax_double_cv, _BERN, {"n": 3, "alpha_cv": 0.7}),
    ("rebar", jax_rebar, _BERN, {"n": 1, "eta": 0.8, "tau": 0.5}),
    ("relax", jax_relax, _BERN, {"n": 1, "eta": 1.0, "tau": 0.3, "surrogate": None}),
    ("relax", jax_relax, _BERN, {"n": 2, "eta": 0.6, "tau": 1.0,
                                  "surrogate": QuadraticSurrogate(1.5, 0.3)}),
    ("rebar", jax_rebar, _CAT, {"n": 1, "eta": 0.8, "tau": 0.5}),
    ("relax", jax_relax, _CAT, {"n": 2, "eta": 0.6, "tau": 1.0,
                                 "surrogate": QuadraticSurrogate(1.5, 0.3)}),
]
IDS = [f"{c[0]}-{c[2].dist.name}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("name,fn,problem,opts", CASES, ids=IDS)
def test_independent_port_matches_the_record_on_shared_noise(name, fn, problem, opts):
    rep = verify.check_port(vjax.make_port(fn), name, problem, level="sample", R_shared=32,
                            **opts)
    assert rep.passed, rep.message


@pytest.mark.slow  # about 5-12 s per case (JAX callbacks, the REBAR oracle's RQMC)
@pytest.mark.parametrize("name,fn,problem,opts", CASES, ids=IDS)
def test_independent_port_agrees_with_the_oracle_in_distribution(name, fn, problem, opts):
    # own noise, the paper's convention for REBAR/RELAX; R = 4000 replicates against the
    # exact (certified for REBAR/RELAX) moments at false-alarm rate 1e-6
    rep = verify.check_port(vjax.make_port(fn), name, problem, level="distribution", R=4000,
                            seed=11, **opts)
    assert rep.passed and rep.informative, rep.message


def test_a_port_with_the_conditional_relaxation_of_the_wrong_side_fails():
    # a classic REBAR slip: z~ from the conditional uniform of the other side of the
    # threshold; its reparameterization terms no longer cancel in the mean
    def wrong(params, noise, objective, *, dist, n, eta, tau, R=None, seed=None):
        return _rebar_port(params, noise, objective, dist=dist, n=n, eta=eta, tau=tau,
                           surrogate=None, R=R, seed=seed, wrong_side=True)

    opts = {"n": 1, "eta": 1.0, "tau": 0.5}
    port = vjax.make_port(wrong)
    assert not verify.check_port(port, "rebar", _BERN, level="sample", R_shared=32,
                                 **opts).passed
    assert not verify.check_port(port, "rebar", _BERN, level="distribution", R=4000, seed=11,
                                 **opts).passed


def test_a_categorical_port_with_the_maximum_of_the_rl_code_fails_on_shared_noise():
    # the RELAX authors' categorical RL code (wgrathwohl/BackpropThroughTheVoidRL,
    # baselines/a2c/policies.py, make_samples) puts the conditional maximum at log theta_b +
    # G(v_b), where its law is G(v_b) whatever b. On shared noise the port checker flags it.
    # Its bias is a few percent of the per-sample spread (measured with 2e6 NumPy samples of
    # both versions on this problem at eta = 2, tau = 0.3: about 0.07 against a spread of 1.5,
    # 73 standard errors; the correct version within 1 standard error): a distribution-level
    # check needs R ~ 40000, where the JAX adapter's callbacks failed with a float32/float64
    # mismatch in our runs (verify.adapters.jax; not investigated), so it is not run here.
    def wrong(params, noise, objective, *, dist, n, eta, tau, R=None, seed=None):
        return _rebar_port_categorical(params, noise, objective, n=n, eta=eta, tau=tau,
                                       surrogate=None, R=R, seed=seed, wrong_max=True)

    opts = {"n": 1, "eta": 2.0, "tau": 0.3}
    rep = verify.check_port(vjax.make_port(wrong), "rebar", _CAT, level="sample", R_shared=32,
                            **opts)
    assert not rep.passed
    assert verify.check_port(vjax.make_port(jax_rebar), "rebar", _CAT, level="sample",
                             R_shared=32, **opts).passed
