"""Learned parts of the control-variate estimators, trained alongside a VAE.

The records ``nvil``, ``rebar`` and ``relax`` (:mod:`reference.estimators.control_variates`,
:mod:`reference.estimators.rebar`) take their baseline, running statistics, ``eta`` and
surrogate as *given* options: they are pure functions of the noise. In their papers these are
learned during training. A :class:`Control` holds that learned state for one training run and
sits between the two phases of the contract inside :class:`~reference.models.vae.VAE`:
``options`` gives the options of the queries phase, ``combine`` calls the record's combine
(never a formula of its own for the estimate) and, in a training step, updates the state.
Every estimate is therefore the record's estimate for the state in force at that step.

* :class:`NVILControl` (Mnih & Gregor 2014, arXiv 1402.0030, Algorithm 1): an input-dependent
  baseline ``C_psi(x) = w2 . tanh(x W1 + b1) + b2`` (one hidden layer of ``hidden`` tanh units,
  100 by default: the paper's size as we recall it, its text was not available to us), and
  NVIL's running mean ``c`` and variance ``v`` of the signal ``l = f(z) - C_psi(x)``
  (:func:`~reference.estimators.control_variates.nvil_update`, decay 0.8), updated on the
  current mini-batch *before* the signal is used, as in the paper. The first training step
  sets ``(c, v)`` to that batch's mean and variance, so that the normalization does not jump
  from ``v = 1`` to ``v ~ Var f`` under Adam's running moments. Then ``psi`` takes one Adam
  step on ``(1/2) mean_{b,s} (f(z_bs) - c - C_psi(x_b))^2``.
  NVIL's normalization divides the paper's whole learning signal, which contains
  ``-log q(z | x)``; here the entropy's gradient is exact and separate, so the model divides it
  by the same factor (:meth:`NVILControl.entropy_scale`).
  The record's ``baseline`` option is one float for the whole batch (an array is refused), so
  the per-data-point baseline enters through the answers: the record's combine is called with
  ``f_z - C_psi(x_b)`` in place of ``f_z`` and ``baseline = 0``. As the record's weight is
  ``f - baseline - c``, this is exactly the record's formula with baseline ``C_psi(x_b)`` for
  data point ``b``.
* :class:`REBARControl` (Tucker et al. 2017, arXiv 1703.07370): learns the scalar ``eta``. The
  record's estimate is affine in ``eta`` (the queries depend only on the temperature), so
  ``g(eta) = g(0) + eta (g(1) - g(0))`` with two calls of the record's combine on the same
  answers; ``eta`` takes one Adam step on the single-sample estimate of
  ``d/d eta sum_b ||g_b||^2 / B`` (``g_b`` the estimate of ``grad_logits E_q[f]`` for data
  point ``b``). As ``E[g_b]`` does not depend on ``eta``, this descends the sum of the
  estimates' variances. The temperature stays fixed (its gradient would need second
  derivatives of the decoder, which the models do not provide): the paper learns both.
* :class:`RELAXControl` (Grathwohl et al. 2018, arXiv 1711.00123): a learned surrogate
  ``c(y; x) = eta f(y) + a0 + u . x + w . y`` at the relaxed points ``y`` (``f`` the
  decoder's relaxed objective, evaluated by the surrogate itself through the model),
  passed to the record as its ``surrogate`` option with the record's ``eta = 1``. Its
  parameters ``(eta, a0, u, w)`` take one Adam step on the same variance objective as above,
  whose gradient is exact and in closed form because the estimate is affine in them (the
  derivation is in :meth:`RELAXControl.variance_grad`; a test checks it against finite
  differences of the record's own combine). All start at 0 except ``eta`` (1: the surrogate
  starts as REBAR's). The paper's surrogate (as we recall it; its text was not available to us) adds a
  neural network ``r_rho(z)`` to the relaxed objective; ours adds an input-dependent constant
  and a linear term: a simpler surrogate, not the paper's.

Variance objective: the papers minimize the variance of the gradient with respect to the
encoder's *parameters*; here it is the variance of the per-data-point gradient with respect to
the encoder's *logits* (the estimator's own output), which needs no Jacobian of the encoder.

State (``state()``/``load_state()``) is saved with the model's checkpoint, so a resumed run
continues exactly. Cost per step, beyond the record's: NVIL a 784-100-1 network forward and
backward; REBAR a second call of combine; RELAX ``O(B R n K)`` for the gradient of the
surrogate, plus the record's surrogate evaluations (``2n`` relaxed decoder evaluations with
gradients per replicate, which the record's ``Cost(n, 0)`` does not count: RELAX here costs
``3n`` evaluations and ``2n`` gradients, as REBAR).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..contract import Answers, Estimator, Queries
from ..distributions import sigmoid
from ..estimators.control_variates import NVILState, nvil_update
from ..estimators.control_variates.numpy_reference import nvil_scale

__all__ = ["Adam", "Control", "LEARNED", "NVILControl", "REBARControl", "RELAXControl",
           "VAESurrogate", "make_control", "variance_objective"]

#: estimators with a learned part, and what is learned
LEARNED = {
    "nvil": "baseline network C_psi(x) (784-100-1, tanh) and running (c, v)",
    "rebar": "eta (the temperature stays fixed)",
    "relax": "surrogate eta f(y) + a0 + u.x + w.y",
}


class Adam:
    """Adam on a dict of float64 host arrays (the same update as the models' Adam)."""

    def __init__(self, params: Mapping[str, np.ndarray], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.b1, self.b2, self.eps = float(lr), betas[0], betas[1], float(eps)
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            step = self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
            params[k] = np.array(params[k] - step)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}adam_t": np.array(self.t)}
        for k in self.m:
            out[f"{prefix}m:{k}"] = self.m[k]
            out[f"{prefix}v:{k}"] = self.v[k]
        return out

    def load_state(self, state: Mapping[str, np.ndarray], prefix: str) -> None:
        self.t = int(state[f"{prefix}adam_t"])
        for k in self.m:
            self.m[k] = np.array(state[f"{prefix}m:{k}"], dtype=np.float64)
            self.v[k] = np.array(state[f"{prefix}v:{k}"], dtype=np.float64)


class Control:
    """Base class: no learned state; ``options`` and ``combine`` pass through to the record."""

    name = "none"
    estimator: str = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.adam: Adam | None = None

    def entropy_scale(self) -> float:
        """The factor on the exact entropy gradient (1; NVIL: its normalization, see NVILControl)."""
        return 1.0

    def options(self, model: Any, x: np.ndarray, xb: Any, logits: np.ndarray,
                options: Mapping[str, Any]) -> dict[str, Any]:
        """The record's options for this batch (``x`` host 0/1 ``(B, D)``, ``xb`` on the backend)."""
        return dict(options)

    def combine(self, model: Any, est: Estimator, logits: np.ndarray, queries: Queries,
                answers: Answers, options: Mapping[str, Any], learn: bool) -> np.ndarray:
        """The record's estimate ``(B, R, *event)``; when ``learn``, then one update of the state."""
        return est.combine(model.spec.dist, logits, queries, answers, backend=model.backend, **options)

    # checkpoints
    def state(self) -> dict[str, np.ndarray]:
        out = {f"ctl:p:{k}": v for k, v in self.params.items()}
        out["ctl:name"] = np.array(self.name)
        if self.adam is not None:
            out.update(self.adam.state("ctl:"))
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        if "ctl:name" not in state or str(state["ctl:name"]) != self.name:
            found = str(state["ctl:name"]) if "ctl:name" in state else "none"
            raise ValueError(f"the checkpoint's learned control is {found!r}, this run's is {self.name!r}")
        for k in self.params:
            self.params[k] = np.array(state[f"ctl:p:{k}"], dtype=np.float64)
        if self.adam is not None:
            self.adam.load_state(state, "ctl:")


def _check_learned_options(name: str, options: Mapping[str, Any], learned: tuple[str, ...]) -> None:
    given = [k for k in learned if k in options]
    if given:
        raise ValueError(f"{name} with a learned control learns {', '.join(learned)}: do not also "
                         f"give the option(s) {', '.join(given)}")


# ----------------------------------------------------------------------------------- NVIL
class NVILControl(Control):
    """NVIL's learned baseline and running statistics (module docstring).

    ``D`` input pixels, ``hidden`` tanh units, ``lr`` Adam's step, ``decay`` the running
    statistics' decay, ``rng`` for the initialization (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    weights, zero biases)."""

    name = "nvil"
    estimator = "nvil"

    def __init__(self, D: int, rng: np.random.Generator, lr: float = 1e-3, hidden: int = 100,
                 decay: float = 0.8) -> None:
        super().__init__()
        if D < 1 or hidden < 1:
            raise ValueError(f"D and hidden must be >= 1, got D={D}, hidden={hidden}")
        self.decay = float(decay)
        self.params = {
            "W1": rng.uniform(-1 / math.sqrt(D), 1 / math.sqrt(D), (D, hidden)),
            "b1": np.zeros(hidden),
            "w2": rng.uniform(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden), hidden),
            "b2": np.zeros(()),
            "c": np.zeros(()), "v": np.ones(()),  # NVILState, not trained by Adam
            "started": np.zeros(()),  # 1 after the first training step
        }
        self.adam = Adam({k: self.params[k] for k in ("W1", "b1", "w2", "b2")}, lr)
        self._x: np.ndarray | None = None
        self._h: np.ndarray | None = None
        self._b: np.ndarray | None = None

    def baseline(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``C_psi(x)`` ``(B,)`` and the hidden activations ``(B, hidden)``."""
        h = np.tanh(np.asarray(x, dtype=np.float64) @ self.params["W1"] + self.params["b1"])
        return h @ self.params["w2"] + self.params["b2"], h

    def baseline_grad(self, x: np.ndarray, h: np.ndarray, dout: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``sum_b dout_b C_psi(x_b)`` with respect to ``W1, b1, w2, b2``."""
        da = np.outer(dout, self.params["w2"]) * (1.0 - h * h)
        return {"W1": np.asarray(x, dtype=np.float64).T @ da, "b1": da.sum(axis=0),
                "w2": h.T @ dout, "b2": np.array(dout.sum())}

    def loss(self, x: np.ndarray, f: np.ndarray, c: float) -> float:
        """``(1/2) mean_{b,s} (f_bs - c - C_psi(x_b))^2``, ``f`` ``(B, ...)``."""
        b, _ = self.baseline(x)
        r = f.reshape(f.shape[0], -1) - c - b[:, None]
        return 0.5 * float(np.mean(r * r))

    def loss_grad(self, x: np.ndarray, f: np.ndarray, c: float) -> dict[str, np.ndarray]:
        b, h = self.baseline(x)
        f2 = f.reshape(f.shape[0], -1)
        r = f2 - c - b[:, None]
        dout = -r.sum(axis=1) / r.size
        return self.baseline_grad(x, h, dout)

    def entropy_scale(self) -> float:
        """``1 / max(1, sqrt(v))`` with the ``v`` in force: NVIL divides its whole learning
        signal ``log p(x, z) - log q(z | x)`` by it; here the entropy's gradient is exact and
        added separately, so it is divided by the same factor and the encoder receives the
        (unbiased) gradient rescaled, as in the paper, rather than the ``f`` part shrunk
        against the entropy's."""
        return nvil_scale(float(self.params["v"]))

    @property
    def state_cv(self) -> NVILState:
        return NVILState(float(self.params["c"]), float(self.params["v"]))

    def options(self, model: Any, x: np.ndarray, xb: Any, logits: np.ndarray,
                options: Mapping[str, Any]) -> dict[str, Any]:
        _check_learned_options("nvil", options, ("baseline", "c", "v"))
        self._x = x
        self._b, self._h = self.baseline(x)
        st = self.state_cv
        return {**options, "baseline": 0.0, "c": st.c, "v": st.v}

    def combine(self, model: Any, est: Estimator, logits: np.ndarray, queries: Queries,
                answers: Answers, options: Mapping[str, Any], learn: bool) -> np.ndarray:
        assert self._b is not None and self._x is not None
        signal = answers.f_z - self._b[:, None, None]  # l = f - C_psi(x), (B, R, n)
        opts = dict(options)
        if learn:  # Algorithm 1: the statistics see this batch before it is used
            first = not float(self.params["started"])
            st = nvil_update(self.state_cv, signal, 0.0 if first else self.decay)
            self.params["started"] = np.ones(())
            self.params["c"], self.params["v"] = np.array(st.c), np.array(st.v)
            opts.update(c=st.c, v=st.v)
        g = est.combine(model.spec.dist, logits, queries,
                        Answers(signal, answers.f_y, answers.grad_y),
                        backend=model.backend, **opts)
        if learn:
            grads = self.loss_grad(self._x, answers.f_z, float(self.params["c"]))
            trained = {k: self.params[k] for k in ("W1", "b1", "w2", "b2")}
            assert self.adam is not None
            self.adam.step(trained, grads)
            self.params.update(trained)
        return g


# ---------------------------------------------------------------------------------- REBAR
def variance_objective(g: np.ndarray) -> float:
    """``sum_b ||mean_r g_br||^2 / B`` for estimates ``g`` ``(B, R, K)``."""
    gm = g.mean(axis=1)
    return float(np.sum(gm * gm) / g.shape[0])


class REBARControl(Control):
    """REBAR with a learned scalar ``eta`` (initial value ``eta``), Adam step ``lr``."""

    name = "rebar"
    estimator = "rebar"

    def __init__(self, eta: float = 1.0, lr: float = 1e-3) -> None:
        super().__init__()
        self.params = {"eta": np.array(float(eta))}
        self.adam = Adam(self.params, lr)

    def options(self, model: Any, x: np.ndarray, xb: Any, logits: np.ndarray,
                options: Mapping[str, Any]) -> dict[str, Any]:
        return {**options, "eta": float(self.params["eta"])}

    def combine(self, model: Any, est: Estimator, logits: np.ndarray, queries: Queries,
                answers: Answers, options: Mapping[str, Any], learn: bool) -> np.ndarray:
        dist = model.spec.dist
        g0 = est.combine(dist, logits, queries, answers, backend=model.backend, **{**options, "eta": 0.0})
        g1 = est.combine(dist, logits, queries, answers, backend=model.backend, **{**options, "eta": 1.0})
        eta = float(self.params["eta"])
        g = g0 + eta * (g1 - g0)
        if learn:
            self.adam.step(self.params, {"eta": np.array(self.eta_grad(g, g1 - g0))})  # type: ignore[union-attr]
        return g

    @staticmethod
    def eta_grad(g: np.ndarray, dg: np.ndarray) -> float:
        """``d/d eta`` of :func:`variance_objective` at ``g = g(0) + eta dg``."""
        return float(2.0 * np.sum(g.mean(axis=1) * dg.mean(axis=1)) / g.shape[0])


# ---------------------------------------------------------------------------------- RELAX
class VAESurrogate:
    """``c(y; x_b) = eta f_b(y) + a0 + u . x_b + w . y`` for the batch set by :meth:`set_batch`,
    with the protocol of the ``relax`` record's ``surrogate`` option (``relaxed(y)`` for ``y``
    ``(B, ..., K)``); ``f_b`` is the decoder's relaxed objective for data point ``b``.
    The last call's decoder answers are kept in ``last`` for :class:`RELAXControl`."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = params
        self.model: Any = None
        self.x: np.ndarray | None = None
        self.xb: Any = None
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def set_batch(self, model: Any, x: np.ndarray, xb: Any) -> None:
        self.model, self.x, self.xb = model, np.asarray(x, dtype=np.float64), xb

    def offset(self) -> np.ndarray:
        """``a0 + u . x_b`` ``(B,)``."""
        assert self.x is not None
        return self.params["a0"] + self.x @ self.params["u"]

    def relaxed(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64)
        B, K = y.shape[0], y.shape[-1]
        flat = y.reshape(B, 1, -1, K)
        q = Queries(np.zeros((B, 1, 0, K), dtype=np.int64), {}, flat)
        ans, _, _ = self.model.answer(q, self.xb, B, False)
        f = ans.f_y.reshape(y.shape[:-1])
        df = ans.grad_y.reshape(y.shape)
        self.last = (y, f, df)
        eta, w = float(self.params["eta"]), self.params["w"]
        off = self.offset().reshape((B,) + (1,) * (y.ndim - 2))
        return eta * f + off + y @ w, eta * df + w


class RELAXControl(Control):
    """RELAX with the learned surrogate of the module docstring, Adam step ``lr``; ``D``
    pixels, ``K`` latent variables, ``eta`` the initial scale of ``f``."""

    name = "relax"
    estimator = "relax"

    def __init__(self, D: int, K: int, eta: float = 1.0, lr: float = 1e-3) -> None:
        super().__init__()
        self.params = {"eta": np.array(float(eta)), "a0": np.zeros(()), "u": np.zeros(D),
                       "w": np.zeros(K), "started": np.zeros(())}
        self.adam = Adam({k: self.params[k] for k in ("eta", "a0", "u", "w")}, lr)
        self.surrogate = VAESurrogate(self.params)

    def options(self, model: Any, x: np.ndarray, xb: Any, logits: np.ndarray,
                options: Mapping[str, Any]) -> dict[str, Any]:
        if options.get("surrogate") is not None:
            raise ValueError("relax with a learned control brings its own surrogate: do not "
                             "also give the option surrogate")
        self.surrogate.set_batch(model, x, xb)
        return {**options, "eta": 1.0, "surrogate": self.surrogate}

    def combine(self, model: Any, est: Estimator, logits: np.ndarray, queries: Queries,
                answers: Answers, options: Mapping[str, Any], learn: bool) -> np.ndarray:
        g = est.combine(model.spec.dist, logits, queries, answers, backend=model.backend, **options)
        if learn:
            grads = self.variance_grad(g, logits, queries, float(est.options(**options)["tau"]))
            trained = {k: self.params[k] for k in ("eta", "a0", "u", "w")}
            assert self.adam is not None
            self.adam.step(trained, grads)
            self.params.update(trained)
        return g

    def variance_grad(self, g: np.ndarray, logits: np.ndarray, queries: Queries,
                      tau: float) -> dict[str, np.ndarray]:
        """Gradient of :func:`variance_objective` of ``g`` (the record's estimate with the current
        surrogate, ``(B, R, K)``) with respect to ``eta, a0, u, w``.

        Per sample ``s = (r, i)`` of data point ``b``, with ``e = b_s - theta``, ``y``, ``y~``
        the relaxed points and ``J = y (1 - y) / tau``, ``J~ = y~ (1 - y~) / tau * dz~/dphi``,
        the record's estimate is ``mean_s [(f(b_s) - c(y~)) e + dc(y) J - dc(y~) J~]``
        (``mean_s`` over the ``n`` samples, then the replicates), affine in the parameters:
        ``d g_b / d eta = mean_s [-f(y~) e + df(y) J - df(y~) J~]``,
        ``d g_b / d a_b = -mean_s e`` (``a_b = a0 + u . x_b``),
        ``d g_bk / d w_j = mean_s [-y~_j e_k + 1[j = k] (J_k - J~_k)]``. With
        ``S = sum_b ||gbar_b||^2 / B`` (``gbar_b`` the mean over replicates):
        ``dS/dtheta = (2/B) sum_b <gbar_b, d gbar_b / d theta>``.
        """
        surrogate = self.surrogate
        assert surrogate.last is not None and surrogate.x is not None
        pts, fy, dfy = surrogate.last  # (B, R, 2n, K), (B, R, 2n), (B, R, 2n, K)
        b = np.asarray(queries.z, dtype=np.float64)
        B, R, n, _ = b.shape
        theta = sigmoid(logits)[:, None, None]
        e = b - theta
        y, yt = pts[:, :, :n], pts[:, :, n:]
        J = y * (1.0 - y) / tau
        Jt = yt * (1.0 - yt) / tau * np.asarray(queries.aux["dzt"], dtype=np.float64)
        gm = g.mean(axis=1)  # (B, K)
        m = R * n
        d_eta = (-fy[:, :, n:, None] * e + dfy[:, :, :n] * J - dfy[:, :, n:] * Jt).sum(axis=(1, 2)) / m
        d_a = -e.sum(axis=(1, 2)) / m  # (B, K)
        ge = np.einsum("bk,brik->bri", gm, e)  # <gbar_b, e_s>
        d_w = (-np.einsum("bri,brij->j", ge, yt) + np.einsum("bk,brik->k", gm, J - Jt)) / m
        dS_da = 2.0 * np.sum(gm * d_a, axis=1) / B  # (B,)
        return {"eta": np.array(2.0 * np.sum(gm * d_eta) / B), "a0": np.array(dS_da.sum()),
                "u": surrogate.x.T @ dS_da, "w": 2.0 * d_w / B}


def make_control(estimator: str, model: Any, rng: np.random.Generator, lr: float,
                 options: Mapping[str, Any]) -> Control:
    """The learned control of ``estimator`` (one of :data:`LEARNED`) for ``model``; ``options``
    are the run's estimator options (``eta`` gives REBAR's and RELAX's initial ``eta``)."""
    if estimator not in LEARNED:
        raise ValueError(f"estimator {estimator!r} has no learned control; those that do: "
                         f"{sorted(LEARNED)}")
    spec = model.spec
    if estimator == "nvil":
        _check_learned_options("nvil", options, ("baseline", "c", "v"))
        return NVILControl(spec.D, rng, lr=lr)
    if spec.model != "binary":
        raise ValueError(f"{estimator} is Bernoulli only: the learned control needs the binary VAE")
    eta = float(options.get("eta", 1.0))
    if estimator == "rebar":
        return REBARControl(eta, lr=lr)
    if options.get("surrogate") is not None:
        raise ValueError("relax with a learned control brings its own surrogate")
    return RELAXControl(spec.D, spec.K, eta, lr=lr)
