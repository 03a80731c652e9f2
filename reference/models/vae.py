"""Categorical and binary VAEs trained with any registered gradient estimator.

Models (DESIGN.md section 7)
----------------------------
* **Categorical VAE** of the coupled-estimators paper (section 4; architecture of Yin, Yue &
  Zhou 2019, ARSM, arXiv 1905.01413): ``K = 20`` latent variables with ``C`` categories,
  uniform prior; encoder ``784 -> 512 -> 256 -> K C`` logits ``alpha`` ``(K, C)``; decoder
  ``K C (one-hot) -> 256 -> 512 -> 784`` Bernoulli logits; LeakyReLU(0.2) after every hidden
  layer.
* **Binary VAE** of the ARM/DisARM papers (Yin & Zhou 2019, arXiv 1807.11143; Dong, Mnih &
  Tucker 2020, arXiv 2006.10680): ``K = 200`` Bernoulli latent variables, uniform prior;
  *linear*: encoder ``784 -> 200`` logits ``phi``, decoder ``200 -> 784``; *nonlinear*: two
  hidden layers of 200 LeakyReLU units on each side (``784 -> 200 -> 200 -> 200`` and back).

Objective and gradients
-----------------------
For one data point ``x``, ``ELBO = E_q[f(z)] + H(q)`` with ``f(z) = log p(x|z) + log p(z)``
(``log p(z) = -K log C`` is constant) and ``H`` the entropy of the factorial ``q(z|x)``. The loss
is ``-mean_b ELBO_b`` over the batch.

* Encoder: the estimator's per-replicate estimates ``g`` of ``grad_logits E_q[f]`` are averaged
  over replicates; the exact ``grad_logits H`` (:mod:`reference.models.layers`) is added; the sum,
  times ``-1/B``, is backpropagated through the encoder. The estimator is used only through the
  two-phase contract (:mod:`reference.contract`): ``est.queries`` with the data batch as the
  leading batch axis, then all queried configurations of the batch, ``(B, R, M, K)``, go through
  the decoder in ONE batched call, then ``est.combine``. Relaxed queries ``y`` (if an estimator
  asks for them) are answered by the decoder on the relaxed inputs, with ``grad_y f`` from the
  decoder's backward pass down to its input.
* Decoder: ``grad_theta E_q[f]`` is estimated by the average of ``grad_theta f(z)`` over all
  queried discrete configurations (weight ``1 / (B R M)`` each). This is unbiased when every
  queried configuration is marginally a draw of ``q`` -- true for the score-function family
  (i.i.d. samples), the ARM family (``b1`` and ``b2`` are both marginally ``q``) and the swap
  family (swapping entries of a ``Dirichlet(1_C)`` vector preserves its law). An estimator that
  queries only relaxed points trains the decoder on those points instead.

The estimator always sees float64 logits and draws its noise from the caller's generator, so
the NumPy, CPU and CUDA models take the same discrete decisions on the same seed.

Evaluation: the ELBO with analytic entropy, and the ``S``-sample importance-weighted bound
(Burda, Grosse & Salakhutdinov 2016, arXiv 1509.00519)
``log (1/S) sum_s p(x, z_s) / q(z_s | x)``, ``z_s ~ q`` sampled by the documented uniform mapping
of :mod:`reference.distributions`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from ..contract import Answers, Estimator, Queries
from ..distributions import get_distribution, log_sigmoid, log_softmax
from ..registry import get_estimator
from . import layers as L
from ._layers_cpu import categorical_entropy_and_grad as compiled_entropy
from .ops import get_ops

__all__ = ["VAESpec", "categorical_spec", "binary_spec", "init_params", "VAE"]


@dataclass(frozen=True)
class VAESpec:
    """Architecture: ``model`` ``"categorical"`` or ``"binary"``, ``K`` latent variables of ``C``
    categories (``C = 2`` for binary), ``D`` pixels, hidden widths, LeakyReLU ``slope``."""

    model: str
    K: int
    C: int
    D: int = 784
    enc_hidden: tuple[int, ...] = (512, 256)
    dec_hidden: tuple[int, ...] = (256, 512)
    slope: float = 0.2

    def __post_init__(self) -> None:
        if self.model not in ("categorical", "binary"):
            raise ValueError(f"model must be 'categorical' or 'binary', got {self.model!r}")
        if self.K < 1 or self.C < 2 or self.D < 1:
            raise ValueError(f"need K >= 1, C >= 2, D >= 1; got K={self.K}, C={self.C}, D={self.D}")
        if self.model == "binary" and self.C != 2:
            raise ValueError("the binary model has C = 2")
        if not 0.0 < self.slope < 1.0:
            raise ValueError(f"the LeakyReLU slope must lie in (0, 1), got {self.slope}")

    @property
    def dist(self) -> str:
        return "categorical" if self.model == "categorical" else "bernoulli"

    @property
    def latent_width(self) -> int:
        """Width of the encoder output and of the decoder input: ``K C`` or ``K``."""
        return self.K * self.C if self.model == "categorical" else self.K

    @property
    def log_prior(self) -> float:
        """``log p(z) = -K log C`` (uniform prior)."""
        return -self.K * math.log(self.C)

    def layer_sizes(self) -> tuple[list[int], list[int]]:
        enc = [self.D, *self.enc_hidden, self.latent_width]
        dec = [self.latent_width, *self.dec_hidden, self.D]
        return enc, dec


def categorical_spec(C: int, K: int = 20, **kw: Any) -> VAESpec:
    """The coupled-estimators paper's categorical VAE (784-512-256-KC / KC-256-512-784)."""
    return VAESpec("categorical", K, C, **kw)


def binary_spec(nonlinear: bool = False, K: int = 200, **kw: Any) -> VAESpec:
    """The ARM/DisARM binary VAE: linear, or two hidden layers of 200 on each side."""
    hidden = (200, 200) if nonlinear else ()
    return VAESpec("binary", K, 2, enc_hidden=kw.pop("enc_hidden", hidden),
                   dec_hidden=kw.pop("dec_hidden", hidden), **kw)


def init_params(spec: VAESpec, rng: np.random.Generator,
                pixel_mean: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Float64 parameters: ``W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default for a
    linear layer), biases 0, and the decoder's output bias set to ``logit(pixel_mean)`` (clipped
    to ``[1e-3, 1 - 1e-3]``) when the training pixel means are given."""
    enc, dec = spec.layer_sizes()
    params = {}
    for side, sizes in (("enc", enc), ("dec", dec)):
        for i in range(len(sizes) - 1):
            bound = 1.0 / math.sqrt(sizes[i])
            params[f"{side}{i}.W"] = rng.uniform(-bound, bound, (sizes[i], sizes[i + 1]))
            params[f"{side}{i}.b"] = np.zeros(sizes[i + 1])
    if pixel_mean is not None:
        pm = np.clip(np.asarray(pixel_mean, dtype=np.float64), 1e-3, 1 - 1e-3)
        if pm.shape != (spec.D,):
            raise ValueError(f"pixel_mean must have shape ({spec.D},), got {pm.shape}")
        params[f"dec{len(dec) - 2}.b"] = np.log(pm) - np.log1p(-pm)
    return params


def _sum_blocks(parts: list[dict]) -> dict:
    """The first block's gradients with the other blocks' added to them, in block order."""
    total = parts[0]
    for more in parts[1:]:
        for k in total:
            total[k] += more[k]
    return total


class VAE:
    """A VAE on one backend (``"numpy"`` float64 reference, ``"cpu"``, ``"cuda"``) with Adam state.

    ``params`` are host arrays (copied to the backend). ``step(x, estimator, rng)`` runs one
    training step; ``gradients`` returns the gradients without updating; ``elbo``, ``iwae`` and
    ``grad_variance`` evaluate. ``state()``/``load_state()`` give host copies for checkpoints.
    ``threads`` (CPU backend only): the blocks of data points run side by side
    (:class:`reference.models.ops.CpuOps`); default Numba's thread count, capped by BLAS's.
    With an estimator whose CPU kernels have serial twins (``Backend.serial_twins``) and no
    learned control, each block also runs the estimator's two phases and the entropy of its
    own data points (:meth:`_gradients_in_blocks`); otherwise they run once between the
    blocks. The numbers are the same either way.
    """

    def __init__(self, spec: VAESpec, params: Mapping[str, np.ndarray], backend: str = "cpu",
                 dtype: type | None = None, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, threads: int | None = None) -> None:
        self.spec, self.backend = spec, backend
        self.ops = get_ops(backend, dtype, threads)
        self.dtype = self.ops.dtype
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        enc, dec = spec.layer_sizes()
        self.n_enc, self.n_dec = len(enc) - 1, len(dec) - 1
        expected = init_params(spec, np.random.default_rng(0))
        if set(params) != set(expected):
            raise ValueError(f"params must have keys {sorted(expected)}, got {sorted(params)}")
        for k, v in expected.items():
            if np.shape(params[k]) != v.shape:
                raise ValueError(f"params[{k!r}] must have shape {v.shape}, got {np.shape(params[k])}")
            if not np.all(np.isfinite(params[k])):
                raise ValueError(f"params[{k!r}] has non-finite entries")
        self.names = list(expected)
        #: learned parts of the estimator (:mod:`reference.models.controls`), or None
        self.control: Any = None
        self.p = {k: self.ops.asarray(params[k]) for k in self.names}
        self.m = {k: self.ops.zeros(expected[k].shape) for k in self.names}
        self.v = {k: self.ops.zeros(expected[k].shape) for k in self.names}
        self.t = 0

    # ------------------------------------------------------------------------ networks
    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.spec.D:
            raise ValueError(f"x must have shape (B, {self.spec.D}), got {x.shape}")
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("x must be binary (0/1 pixels)")
        return x

    def encoder_forward(self, xb):
        """Layer inputs and the output: ``[x, h1, ..., logits]`` on the backend."""
        hs = [xb]
        for i in range(self.n_enc):  # the input is binarized images, mostly 0: a sparse hint
            hs.append(self.ops.linear(hs[-1], self.p[f"enc{i}.W"], self.p[f"enc{i}.b"],
                                      i < self.n_enc - 1, self.spec.slope, sparse_input=i == 0))
        return hs

    def encoder_backward(self, hs, dlogits) -> dict:
        grads, dy = {}, dlogits
        for i in range(self.n_enc - 1, -1, -1):
            if i < self.n_enc - 1:
                dy = self.ops.act_backward(hs[i + 1], dy, self.spec.slope)
            dx, grads[f"enc{i}.W"], grads[f"enc{i}.b"] = self.ops.linear_backward(
                hs[i], self.p[f"enc{i}.W"], dy, i > 0, sparse_input=i == 0)
            dy = dx
        return grads

    def decoder_forward(self, inp, discrete: bool):
        """``[input, h1, ..., logits]``; ``inp`` is int ``z`` ``(N, K)`` when ``discrete`` (one-hot
        layer for the categorical model, 0/1 floats for the binary one), else floats ``(N, width)``."""
        ops, s = self.ops, self.spec
        act0 = self.n_dec > 1
        if discrete and s.model == "categorical":
            h = ops.onehot_linear(inp, self.p["dec0.W"], self.p["dec0.b"], s.C, act0, s.slope)
        else:
            h = ops.linear(inp, self.p["dec0.W"], self.p["dec0.b"], act0, s.slope)
        hs = [inp, h]
        for i in range(1, self.n_dec):
            hs.append(ops.linear(hs[-1], self.p[f"dec{i}.W"], self.p[f"dec{i}.b"],
                                 i < self.n_dec - 1, s.slope))
        return hs

    def decoder_backward(self, hs, dlogits, discrete: bool, need_dinput: bool):
        ops, s = self.ops, self.spec
        grads, dy = {}, dlogits
        for i in range(self.n_dec - 1, -1, -1):
            if i < self.n_dec - 1:
                dy = ops.act_backward(hs[i + 1], dy, s.slope)
            if i == 0 and discrete and s.model == "categorical":
                grads["dec0.W"], grads["dec0.b"] = ops.onehot_linear_backward(hs[0], dy, s.C)
                dy = None
            else:
                dx, grads[f"dec{i}.W"], grads[f"dec{i}.b"] = ops.linear_backward(
                    hs[i], self.p[f"dec{i}.W"], dy, i > 0 or need_dinput)
                dy = dx
        return grads, dy

    def encoder_logits(self, x: np.ndarray) -> np.ndarray:
        """Host float64 logits ``(B, K, C)`` (categorical) or ``(B, K)`` (binary)."""
        x = self._check_x(x)
        hs = self.encoder_forward(self.ops.asarray(x))
        return self._logits_host(hs[-1], x.shape[0])

    def _logits_host(self, out, B: int) -> np.ndarray:
        lg = self.ops.to_host(out).astype(np.float64)
        return lg.reshape(B, self.spec.K, self.spec.C) if self.spec.model == "categorical" else lg

    # -------------------------------------------------------------- answering queries
    def _decoder_grads(self, inp, xb, G: int, scale: float) -> tuple[np.ndarray, dict]:
        """``f`` (host float64 ``(N,)``) of the discrete decoder inputs ``inp`` (``G`` rows per
        data point of ``xb``) and the gradients of ``scale * sum_n f_n`` with respect to the
        decoder's parameters. The data points are cut into the backend's blocks
        (``ops.blocks``), each block's rows go through the decoder and back on their own
        (``ops.run``: side by side where the backend has the threads), and the blocks'
        gradients are summed in block order."""

        def block(lo: int, hi: int) -> tuple[np.ndarray, dict]:
            hs = self.decoder_forward(inp[lo * G: hi * G], True)
            f, dl = self.ops.loglik_grad(hs[-1], xb[lo:hi], G, scale)
            return f, self.decoder_backward(hs, dl, True, False)[0]

        parts = self.ops.run([partial(block, lo, hi) for lo, hi in self.ops.blocks(xb.shape[0])])
        f = parts[0][0] if len(parts) == 1 else np.concatenate([part[0] for part in parts])
        return f, _sum_blocks([part[1] for part in parts])

    def _decoder_input(self, z: np.ndarray):
        if self.spec.model == "categorical":
            return self.ops.asarray(z.astype(np.int64))
        return self.ops.asarray(z.astype(self.dtype))

    def answer(self, queries: Queries, xb, B: int, want_grads: bool, total: int | None = None
               ) -> tuple[Answers, dict | None, np.ndarray]:
        """Answer ``queries`` for the batch ``xb`` in one decoder call per kind of query.

        Returns the answers (``f = log p(x|.) + log p(z)``, float64), the decoder-parameter
        gradients of ``-mean_b E_q[f]`` (when ``want_grads``) and the per-data-point mean of
        ``f`` over the configurations used for them (for the training ELBO). ``total``: the
        number of data points the mean is over (default ``B``; more where ``xb`` is one block
        of a larger batch, whose blocks' gradients are summed)."""
        s = self.spec
        total = B if total is None else total
        z = np.asarray(queries.z)
        _, R, M, _ = z.shape
        grads, fmean = None, None
        f_z = np.zeros((B, R, M))
        if M > 0:
            inp = self._decoder_input(z.reshape(B * R * M, s.K))
            if want_grads:
                f, grads = self._decoder_grads(inp, xb, R * M, -1.0 / (total * R * M))
            else:
                f = self.ops.loglik(self.decoder_forward(inp, True)[-1], xb, R * M)
            f_z = f.reshape(B, R, M) + s.log_prior
            fmean = f_z.mean(axis=(1, 2))
        f_y = grad_y = None
        if queries.y is not None:
            y = np.asarray(queries.y)
            M2 = y.shape[2]
            hs = self.decoder_forward(self.ops.asarray(y.reshape(B * R * M2, s.latent_width)), False)
            f, dl = self.ops.loglik_grad(hs[-1], xb, R * M2, 1.0)
            g_y, dinp = self.decoder_backward(hs, dl, False, True)
            f_y = f.reshape(B, R, M2) + s.log_prior
            grad_y = self.ops.to_host(dinp).astype(np.float64).reshape(y.shape)
            if M == 0:
                fmean = f_y.mean(axis=(1, 2))
                if want_grads:
                    for v in g_y.values():
                        self.ops.scale_(v, -1.0 / (total * R * M2))
                    grads = g_y
        if fmean is None:
            raise ValueError("the estimator queried no configurations and no relaxed points")
        return Answers(f_z, f_y, grad_y), grads, fmean

    # ------------------------------------------------------------------------ training
    def _entropy(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.spec.model == "categorical":
            if self.backend == "numpy":
                return L.categorical_entropy_and_grad(logits)
            return compiled_entropy(logits)  # host float64, compiled
        return L.bernoulli_entropy(logits), L.bernoulli_entropy_grad(logits)

    def _estimator(self, estimator: str | Estimator, options: Mapping[str, Any]) -> Estimator:
        est = get_estimator(estimator) if isinstance(estimator, str) else estimator
        if self.spec.dist not in est.distributions:
            raise ValueError(f"estimator {est.name!r} supports {est.distributions}; the "
                             f"{self.spec.model} VAE needs {self.spec.dist!r}")
        est.options(**options)  # unknown or bad options raise here
        return est

    def _estimate(self, est: Estimator, logits: np.ndarray, noise: Mapping[str, np.ndarray],
                  options: Mapping[str, Any], xb, want_grads: bool, x: np.ndarray | None = None,
                  learn: bool = False, total: int | None = None):
        B = logits.shape[0]
        ctl = self.control
        if ctl is not None:  # learned baseline / eta / surrogate: options in, state updated
            options = ctl.options(self, x, xb, logits, options)
        q = est.queries(self.spec.dist, logits, noise, backend=self.backend, **options)
        answers, dec_grads, fmean = self.answer(q, xb, B, want_grads, total)
        if ctl is None:
            g = est.combine(self.spec.dist, logits, q, answers, backend=self.backend, **options)
        else:
            g = ctl.combine(self, est, logits, q, answers, options, learn)
        return g, dec_grads, fmean

    def gradients(self, x: np.ndarray, estimator: str | Estimator, rng: np.random.Generator,
                  options: Mapping[str, Any] | None = None, replicates: int = 1,
                  noise: Mapping[str, np.ndarray] | None = None, learn: bool = False
                  ) -> tuple[dict, dict]:
        """Gradients of ``-mean_b ELBO_b`` for the batch ``x`` ``(B, D)`` (0/1), on the backend.

        ``noise`` defaults to ``estimator.draw_noise(rng, ...)`` with ``replicates`` replicates
        per data point. Returns ``(grads, stats)``, ``stats`` holding the batch's ``elbo``
        estimate (mean of ``f`` over the decoder's configurations plus the exact entropy) and
        ``dlogits`` (host, the gradient of the loss with respect to the encoder logits).
        With a learned control (``self.control``), ``learn=True`` also updates its state once
        (a training step); otherwise the control's current state is used unchanged."""
        options = dict(options or {})
        est = self._estimator(estimator, options)
        x = self._check_x(x)
        with self.ops.session():
            return self._gradients(x, est, rng, options, replicates, noise, learn)

    def _gradients(self, x, est, rng, options, replicates, noise, learn) -> tuple[dict, dict]:
        B = x.shape[0]
        xb = self.ops.asarray(x)
        blocks = self.ops.blocks(B)
        if len(blocks) > 1 and self.control is None and est.backend(self.backend).serial_twins:
            return self._gradients_in_blocks(xb, est, rng, options, replicates, noise, blocks)
        # the encoder on the backend's blocks of data points (one block but on the CPU backend
        # with several threads), forward here and backward below
        enc = self.ops.run([partial(self.encoder_forward, xb[lo:hi]) for lo, hi in blocks])
        logits = np.concatenate([self._logits_host(hs[-1], hi - lo)
                                 for hs, (lo, hi) in zip(enc, blocks, strict=True)])
        if noise is None:
            noise = est.draw_noise(rng, self.spec.dist, logits.shape, replicates, **options)
        g, grads, fmean = self._estimate(est, logits, noise, options, xb, True, x, learn)
        H, dH = self._entropy(logits)
        if self.control is not None:  # NVIL's normalization applies to the whole signal
            dH = dH * self.control.entropy_scale()
        dlogits = -(g.mean(axis=1) + dH) / B
        dl = self.ops.asarray(dlogits.reshape(B, self.spec.latent_width))
        grads.update(_sum_blocks(self.ops.run([partial(self.encoder_backward, hs, dl[lo:hi])
                                               for hs, (lo, hi) in zip(enc, blocks, strict=True)])))
        return grads, {"elbo": float(np.mean(fmean + H)), "dlogits": dlogits}

    def _gradients_in_blocks(self, xb, est, rng, options, replicates, noise, blocks
                             ) -> tuple[dict, dict]:
        """:meth:`_gradients` with everything per data point done in each block, side by side:
        the encoder, the entropy, the estimator's two phases (its CPU kernels have serial twins,
        ``Backend.serial_twins``), the decoder and the encoder's backward pass. The same numbers
        as the estimator called once between the blocks: its phases treat every data point on
        its own, the noise is drawn for the whole batch first and cut into the blocks, and
        the decoder of each block is one block of work there too (nested blocks are one,
        :meth:`reference.models.ops.CpuOps.blocks`). Left serial: drawing the noise, the sum
        of the blocks' gradients (in block order)."""
        B = xb.shape[0]
        shape = (B, self.spec.K, self.spec.C) if self.spec.model == "categorical" else (B, self.spec.K)
        if noise is None:
            noise = est.draw_noise(rng, self.spec.dist, shape, replicates, **options)

        def block(lo: int, hi: int):
            hs = self.encoder_forward(xb[lo:hi])
            logits = self._logits_host(hs[-1], hi - lo)
            H, dH = self._entropy(logits)
            part = {k: np.asarray(v)[lo:hi] for k, v in noise.items()}
            g, grads, fmean = self._estimate(est, logits, part, options, xb[lo:hi], True, total=B)
            dlogits = -(g.mean(axis=1) + dH) / B
            grads.update(self.encoder_backward(
                hs, self.ops.asarray(dlogits.reshape(hi - lo, self.spec.latent_width))))
            return grads, dlogits, fmean + H

        parts = self.ops.run([partial(block, lo, hi) for lo, hi in blocks])
        grads = _sum_blocks([p[0] for p in parts])
        return grads, {"elbo": float(np.mean(np.concatenate([p[2] for p in parts]))),
                       "dlogits": np.concatenate([p[1] for p in parts])}

    def apply(self, grads: Mapping[str, Any]) -> None:
        """One Adam step with ``grads`` (descent on the loss)."""
        self.t += 1
        b1, b2 = self.betas

        def update(names: list[str]) -> None:
            for k in names:
                self.ops.adam(self.p[k], grads[k], self.m[k], self.v[k], self.t, self.lr, b1, b2,
                              self.eps)

        # the parameters in groups of near-equal size, one per worker of the backend
        groups: list[list[str]] = [[] for _ in range(self.ops.workers)]
        sizes = [0] * len(groups)
        for k in sorted(self.names, key=lambda k: -self.p[k].size):
            i = sizes.index(min(sizes))
            groups[i].append(k)
            sizes[i] += self.p[k].size
        with self.ops.session():
            self.ops.run([partial(update, g) for g in groups if g])

    def step(self, x: np.ndarray, estimator: str | Estimator, rng: np.random.Generator,
             options: Mapping[str, Any] | None = None) -> float:
        """One training step; returns the batch's ELBO estimate (before the update)."""
        grads, stats = self.gradients(x, estimator, rng, options, learn=True)
        self.apply(grads)
        return stats["elbo"]

    # ---------------------------------------------------------------------- evaluation
    def grad_variance(self, x: np.ndarray, estimator: str | Estimator, rng: np.random.Generator,
                      options: Mapping[str, Any] | None = None, replicates: int = 20,
                      max_rows: int = 20000) -> float:
        """Variance of the encoder-parameter gradient across ``replicates`` independent draws
        of the estimator on the fixed batch ``x``, averaged over all encoder parameters
        (unbiased sample variance per parameter, then the mean)."""
        if replicates < 2:
            raise ValueError("grad_variance needs at least 2 replicates")
        options = dict(options or {})
        est = self._estimator(estimator, options)
        x = self._check_x(x)
        B = x.shape[0]
        xb = self.ops.asarray(x)
        hs = self.encoder_forward(xb)
        logits = self._logits_host(hs[-1], B)
        _, dH = self._entropy(logits)
        if self.control is not None:  # its state is not updated here
            dH = dH * self.control.entropy_scale()
        per = max(1, est.cost(self.spec.K, self.spec.C, **options).evals)
        chunk = int(max(1, min(replicates, max_rows // max(1, B * per))))
        total = sq = None
        done = 0
        while done < replicates:
            r = min(chunk, replicates - done)
            noise = est.draw_noise(rng, self.spec.dist, logits.shape, r, **options)
            g, _, _ = self._estimate(est, logits, noise, options, xb, False, x)
            for j in range(r):
                dl = -(g[:, j] + dH) / B
                grads = self.encoder_backward(hs, self.ops.asarray(dl.reshape(B, self.spec.latent_width)))
                flat = np.concatenate([self.ops.to_host(grads[k]).astype(np.float64).ravel()
                                       for k in self.names if k.startswith("enc")])
                total = flat.copy() if total is None else total + flat
                sq = flat * flat if sq is None else sq + flat * flat
            done += r
        mean = total / replicates
        var = (sq - replicates * mean * mean) / (replicates - 1)
        return float(np.mean(np.maximum(var, 0.0)))

    def _sample_q(self, logits: np.ndarray, u: np.ndarray) -> np.ndarray:
        dist = get_distribution(self.spec.dist)
        if self.backend == "numpy":
            return dist.sample(logits, u)
        from .. import _cpu

        return _cpu.sample(self.spec.dist, np.ascontiguousarray(logits), np.ascontiguousarray(u))

    def _log_q(self, logits: np.ndarray, z: np.ndarray) -> np.ndarray:
        # logits (B, K[, C]), z (B, S, K) -> log q(z | x) (B, S)
        if self.spec.model == "categorical":
            table = log_softmax(logits)[:, None]  # (B, 1, K, C)
            table = np.broadcast_to(table, z.shape + (self.spec.C,))
            return np.take_along_axis(table, z[..., None], axis=-1)[..., 0].sum(axis=-1)
        phi = logits[:, None, :]
        return (z * log_sigmoid(phi) + (1 - z) * log_sigmoid(-phi)).sum(axis=-1)

    def _log_joint(self, x: np.ndarray, S: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        B = x.shape[0]
        xb = self.ops.asarray(x)
        logits = self._logits_host(self.encoder_forward(xb)[-1], B)
        u = rng.random((B, S, self.spec.K))
        z = self._sample_q(logits, u)
        hs = self.decoder_forward(self._decoder_input(z.reshape(B * S, self.spec.K)), True)
        f = self.ops.loglik(hs[-1], xb, S).reshape(B, S) + self.spec.log_prior
        return f, self._log_q(logits, z), logits

    def elbo(self, x: np.ndarray, rng: np.random.Generator, samples: int = 1,
             chunk: int = 1000) -> float:
        """Mean over ``x`` of ``mean_s f(z_s) + H(q)`` with ``samples`` draws per point."""
        x = self._check_x(x)
        total = 0.0
        for lo in range(0, x.shape[0], chunk):
            f, _, logits = self._log_joint(x[lo: lo + chunk], samples, rng)
            total += float(np.sum(f.mean(axis=1) + self._entropy(logits)[0]))
        return total / x.shape[0]

    def iwae(self, x: np.ndarray, rng: np.random.Generator, samples: int = 100,
             chunk: int = 100) -> float:
        """Mean over ``x`` of ``log (1/S) sum_s exp(f(z_s) - log q(z_s|x))``, ``z_s ~ q``."""
        x = self._check_x(x)
        total = 0.0
        for lo in range(0, x.shape[0], chunk):
            f, logq, _ = self._log_joint(x[lo: lo + chunk], samples, rng)
            w = f - logq
            m = w.max(axis=1, keepdims=True)
            total += float(np.sum(m[:, 0] + np.log(np.exp(w - m).mean(axis=1))))
        return total / x.shape[0]

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, np.ndarray]:
        """Host copies of parameters (``p:``), Adam moments (``m:``, ``v:``) and the step count."""
        out = {"t": np.array(self.t), "spec": np.array(repr(asdict(self.spec)))}
        for k in self.names:
            out[f"p:{k}"] = self.ops.to_host(self.p[k])
            out[f"m:{k}"] = self.ops.to_host(self.m[k])
            out[f"v:{k}"] = self.ops.to_host(self.v[k])
        if self.control is not None:
            out.update(self.control.state())
        return out

    def params_host(self) -> dict[str, np.ndarray]:
        return {k: self.ops.to_host(self.p[k]).astype(np.float64) for k in self.names}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        if str(state["spec"]) != repr(asdict(self.spec)):
            raise ValueError(f"checkpoint is for {state['spec']}, this model is {asdict(self.spec)}")
        for k in self.names:
            self.p[k] = self.ops.asarray(state[f"p:{k}"])
            self.m[k] = self.ops.asarray(state[f"m:{k}"])
            self.v[k] = self.ops.asarray(state[f"v:{k}"])
        self.t = int(state["t"])
        if self.control is not None:
            self.control.load_state(state)
