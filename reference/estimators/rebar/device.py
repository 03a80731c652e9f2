"""Device functions of the REBAR family (REBAR, RELAX), for Numba CPU and CUDA.

``build(jit, base)`` compiles the plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)`` on top of ``base`` (``reference._cpu.CORE`` or
``reference._cuda.CORE``: ``sigmoid``, ``softmax_stats``, and for the score term ``b - theta``
or ``onehot(b) - p`` ``score_bernoulli`` and ``softmax_complement``, accurate relative to
themselves at saturated logits) and the relaxation family's
``gs_row_categorical`` (:mod:`reference.estimators.relaxation.device`: the categorical sample
and its softmax relaxation), so both fast backends do the same arithmetic. The
formulas mirror :mod:`reference.estimators.rebar.numpy_reference`; nothing here validates or
allocates. Accumulations are float64 even for float32 inputs.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from ..relaxation.device import build as build_relaxation

#: smallest positive normal float64 (the guard of log(u) at u = 0)
TINY = 2.2250738585072014e-308


def build(jit, base: SimpleNamespace) -> SimpleNamespace:
    """Compile the REBAR family's device functions with ``jit``."""
    sigmoid = base.sigmoid
    softmax_stats = base.softmax_stats
    softmax_rest = base.softmax_rest
    score_bernoulli = base.score_bernoulli
    softmax_complement = base.softmax_complement
    gs_row_categorical = build_relaxation(jit, base).gs_row_categorical
    exp, log, log1p = base.exp, base.log, base.log1p

    @jit
    def rebar_row(phi, u, v, tau, b, y, yt, dzt):
        # phi, u, v (K,) -> b (K,) = 1[u < theta], y = sigmoid(z/tau), yt = sigmoid(z~/tau),
        # dzt = dz~/dphi (b fixed); z = phi + log(1 - u) - log(u), z~ from v given b:
        #   b = 1: z~ = softplus(phi + log(1 - v)) - log(v), dz~/dphi = sigmoid(phi + log(1 - v))
        #   b = 0: z~ = log(1 - v) - softplus(log(v) - phi), dz~/dphi = sigmoid(log(v) - phi)
        # (log at TINY for u, v = 0). One loop with the base's log, log1p and exp and selects
        # for b, not branches on the noise, so that the CPU runs it packed (with libm's calls
        # and a branch on b it stayed scalar); softplus(a) written out as max(a, 0) +
        # log1p(exp(-|a|)), the value of both of its branches
        for k in range(phi.shape[0]):
            p = phi[k]
            bk = 1 if u[k] < sigmoid(p) else 0
            xu = u[k] if u[k] > TINY else TINY
            y[k] = sigmoid((p + log1p(-u[k]) - log(xu)) / tau)
            xv = v[k] if v[k] > TINY else TINY
            lv = log(xv)
            l1v = log1p(-v[k])
            a = (p + l1v) if bk == 1 else (lv - p)
            sp = (a if a > 0.0 else 0.0) + log1p(exp(-abs(a)))
            zt = (sp - lv) if bk == 1 else (l1v - sp)
            dzt[k] = sigmoid(a)
            yt[k] = sigmoid(zt / tau)
            b[k] = bk

    @jit
    def rebar_combine(phi, b, f, cvals, dc, points, dzt, eta, tau, out):
        # phi (K,), b (n, K), f (n,), cvals (2n,), dc, points (2n, K), dzt (n, K) -> out (K,)
        # mean_i [(f_i - eta c(y~_i)) (b_i - theta) + eta dc(y_i) y_i (1 - y_i) / tau
        #         - eta dc(y~_i) y~_i (1 - y~_i) / tau dz~_i/dphi]
        n, K = b.shape[0], b.shape[1]
        for k in range(K):
            out[k] = 0.0
        for i in range(n):
            w = f[i] - eta * cvals[n + i]
            for k in range(K):
                y = points[i, k]
                yt = points[n + i, k]
                out[k] += w * score_bernoulli(phi[k], b[i, k]) + eta * dc[i, k] * y * (1.0 - y) / tau \
                    - eta * dc[n + i, k] * yt * (1.0 - yt) / tau * dzt[i, k]
        for k in range(K):
            out[k] = out[k] / n

    @jit
    def loglog(v):
        # log(-log(max(v, TINY))): minus the standard Gumbel of v
        x = v if v > TINY else TINY
        return log(-log(x))

    @jit
    def rebar_row_categorical(alpha, u, v, tau, b, y, yt, wt):
        # alpha, u, v (K, C) -> b (K,) = argmax(alpha + G(u)), y = softmax((alpha + G(u))/tau),
        # yt = softmax(z~/tau), wt = exp(z~ - z~_b); z~_b = lse(alpha) - loglog(v_b),
        # z~_c = z~_b - softplus(loglog(v_c) + z~_b - alpha_c) for c != b
        # b and y: the Gumbel-Softmax family's point (alpha + G(u) is alpha - loglog(u) bit
        # for bit: a + (-x) and a - x round alike)
        # the softplus terms, written out as max(s, 0) + log1p(exp(-|s|)) (softplus' value,
        # both branches), and the exps are a loop of their own, with no call and no running
        # sum in it (a device function there is not inlined): the CPU runs it packed
        gs_row_categorical(alpha, u, tau, y, b)
        K, C = alpha.shape[0], alpha.shape[1]
        for k in range(K):
            best = b[k]
            am, at = softmax_stats(alpha, k)
            zb = (am + log(at)) - loglog(v[k, best])
            for c in range(C):
                x = v[k, c] if v[k, c] > TINY else TINY
                s = log(-log(x)) + zb - alpha[k, c]
                sp = (s if s > 0.0 else 0.0) + log1p(exp(-abs(s)))
                sp = 0.0 if c == best else sp
                wt[k, c] = exp(-sp)
                yt[k, c] = exp(-sp / tau)
            tt = 0.0
            for c in range(C):
                tt += yt[k, c]
            for c in range(C):
                yt[k, c] = yt[k, c] / tt

    @jit
    def rebar_combine_categorical(alpha, b, f, cvals, dc, points, wt, eta, tau, out):
        # alpha (K, C), b (n, K), f (n,), cvals (2n,), dc, points (2n, K, C), wt (n, K, C)
        # -> out (K, C) = mean_i [w_i (onehot(b_i) - p) + eta y (dc_y - <y, dc_y>) / tau
        #                         - eta ((1 - wt) h + p <wt, h>)], h = y~ (dc_y~ - <y~, dc_y~>) / tau
        n, K, C = b.shape[0], alpha.shape[0], alpha.shape[1]
        for k in range(K):
            for c in range(C):
                out[k, c] = 0.0
        for i in range(n):
            w = f[i] - eta * cvals[n + i]
            for k in range(K):
                m, total, rest, cmax = softmax_rest(alpha, k)
                sy = 0.0
                st = 0.0
                for c in range(C):
                    sy += points[i, k, c] * dc[i, k, c]
                    st += points[n + i, k, c] * dc[n + i, k, c]
                sw = 0.0
                for c in range(C):
                    sw += wt[i, k, c] * (points[n + i, k, c] * (dc[n + i, k, c] - st) / tau)
                for c in range(C):
                    e = math.exp(alpha[k, c] - m)
                    p = e / total
                    y = points[i, k, c]
                    h = points[n + i, k, c] * (dc[n + i, k, c] - st) / tau
                    s = softmax_complement(e, total, rest, c, cmax) if b[i, k] == c else -p
                    out[k, c] += w * s + eta * (y * (dc[i, k, c] - sy) / tau) \
                        - eta * ((1.0 - wt[i, k, c]) * h + p * sw)
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] / n

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
