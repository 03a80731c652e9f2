"""Device functions of the straight-through variants, for Numba CPU and CUDA.

``build(jit, base)`` compiles the same plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)``; ``base`` is the compiled namespace of
:func:`reference._core.build` (``softmax_stats``). The formulas mirror the NumPy reference in
:mod:`reference.estimators.st_variants.numpy_reference`; nothing here validates or allocates,
so the softmax values are recomputed where they are needed instead of stored.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

#: smallest positive normal float64 (the exponential transform's guard for u = 0)
TINY = 2.2250738585072014e-308


def build(jit, base) -> SimpleNamespace:
    """Compile the device functions with ``jit``; ``base`` from ``reference._core.build``."""
    softmax_stats = base.softmax_stats
    exp, log, log1p = base.exp, base.log, base.log1p

    @jit
    def row_max(x, k, scale):
        # max_c x[k, c] * scale
        mx = x[k, 0] * scale
        for c in range(1, x.shape[1]):
            if x[k, c] * scale > mx:
                mx = x[k, c] * scale
        return mx

    @jit
    def scaled_softmax_dot(x, k, scale, dy):
        # softmax(scale * x[k]) stats: (max, total, <softmax, dy>)
        mx = row_max(x, k, scale)
        total = 0.0
        dot = 0.0
        for c in range(x.shape[1]):
            e = math.exp(x[k, c] * scale - mx)
            total += e
            dot += e * dy[k, c]
        return mx, total, dot / total

    # ----------------------------------------------------------------- Gumbel-Rao
    @jit
    def gr_perturb_row(alpha, z, u, x):
        # alpha (K, C), z (K,), u (K, C) -> x (K, C): alpha + G, G | argmax = z
        # the truncated values -logaddexp(a, -M) = -(max(a, -M) + log1p(exp(-|a + M|))) (the
        # branch NumPy's logaddexp takes) written out in the loop over c, the sample's entry
        # overwritten after it: with no call in the loop (a device function there is not
        # inlined), the CPU runs it packed
        K, C = alpha.shape[0], alpha.shape[1]
        for k in range(K):
            m, total = softmax_stats(alpha, k)
            lse = m + log(total)
            i = z[k]
            ui = u[k, i] if u[k, i] > TINY else TINY
            big = -log(-log(ui)) + lse  # M = -log E_i + lse
            for c in range(C):
                uc = u[k, c] if u[k, c] > TINY else TINY
                a = log(-log(uc)) - alpha[k, c]
                hi = a if a > -big else -big
                x[k, c] = -(hi + log1p(exp(-abs(a + big))))
            x[k, i] = big

    @jit
    def gr_categorical(alpha, x, dy, tau, detach, out):
        # alpha (K, C), x (n, m, K, C), dy (n, K, C) -> out (K, C), mean over n and m
        n, mm, K, C = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        inv = 1.0 / tau
        for k in range(K):
            for c in range(C):
                out[k, c] = 0.0
        for i in range(n):
            for j in range(mm):
                xs = x[i, j]
                for k in range(K):
                    mx, total, s = scaled_softmax_dot(xs, k, inv, dy[i])
                    if detach:
                        for c in range(C):
                            y = math.exp(xs[k, c] * inv - mx) / total
                            out[k, c] += y * (dy[i, k, c] - s) * inv
                    else:
                        xmax = row_max(xs, k, 1.0)
                        bv = 0.0
                        for c in range(C):
                            y = math.exp(xs[k, c] * inv - mx) / total
                            bv += math.exp(xs[k, c] - xmax) * (y * (dy[i, k, c] - s) * inv)
                        pm, ptot = softmax_stats(alpha, k)
                        for c in range(C):
                            y = math.exp(xs[k, c] * inv - mx) / total
                            v = y * (dy[i, k, c] - s) * inv
                            b = math.exp(xs[k, c] - xmax)
                            p = math.exp(alpha[k, c] - pm) / ptot
                            out[k, c] += (1.0 - b) * v + p * bv
        w = 1.0 / (n * mm)
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] * w

    # ------------------------------------------------------------------------ GST
    @jit
    def gst_logit(alpha, k, c, i, amax, width):
        # alpha'_kc: amax at the sample i, else min(alpha_kc, amax - width)
        if c == i:
            return amax
        lo = amax - width
        return alpha[k, c] if alpha[k, c] < lo else lo

    @jit
    def gst_categorical(alpha, z, dy, tau, gap, adaptive, out):
        # alpha (K, C), z (n, K), dy (n, K, C) -> out (K, C), mean over n
        n, K, C = dy.shape[0], dy.shape[1], dy.shape[2]
        inv = 1.0 / tau
        for k in range(K):
            for c in range(C):
                out[k, c] = 0.0
        for s_ in range(n):
            for k in range(K):
                i = z[s_, k]
                amax, total = softmax_stats(alpha, k)
                width = gap
                if adaptive:
                    rest = 0.0
                    for c in range(C):
                        if c != i:
                            rest += math.exp(alpha[k, c] - amax)
                    p_i = math.exp(alpha[k, i] - amax) / total
                    width = -math.log(rest / total) / p_i
                mx = gst_logit(alpha, k, 0, i, amax, width) * inv
                for c in range(1, C):
                    v = gst_logit(alpha, k, c, i, amax, width) * inv
                    if v > mx:
                        mx = v
                ytot = 0.0
                dot = 0.0
                for c in range(C):
                    e = math.exp(gst_logit(alpha, k, c, i, amax, width) * inv - mx)
                    ytot += e
                    dot += e * dy[s_, k, c]
                dot = dot / ytot
                for c in range(C):
                    y = math.exp(gst_logit(alpha, k, c, i, amax, width) * inv - mx) / ytot
                    out[k, c] += y * (dy[s_, k, c] - dot) * inv
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] / n

    # -------------------------------------------------------------------- ReinMax
    @jit
    def reinmax_categorical(alpha, z, dy, tau, out):
        # alpha (K, C), z (n, K), dy (n, K, C) -> out (K, C) = mean over n of
        # 2 J(pi_1) dy - J(pi_0) dy / 2, pi_1 = (softmax(alpha/tau) + e_z) / 2, pi_0 = softmax(alpha)
        n, K, C = dy.shape[0], dy.shape[1], dy.shape[2]
        inv = 1.0 / tau
        for k in range(K):
            for c in range(C):
                out[k, c] = 0.0
        for s_ in range(n):
            for k in range(K):
                i = z[s_, k]
                m0, t0 = softmax_stats(alpha, k)
                mt = row_max(alpha, k, inv)
                tt = 0.0
                for c in range(C):
                    tt += math.exp(alpha[k, c] * inv - mt)
                d0 = 0.0
                d1 = 0.0
                for c in range(C):
                    p0 = math.exp(alpha[k, c] - m0) / t0
                    p1 = 0.5 * (math.exp(alpha[k, c] * inv - mt) / tt + (1.0 if c == i else 0.0))
                    d0 += p0 * dy[s_, k, c]
                    d1 += p1 * dy[s_, k, c]
                for c in range(C):
                    p0 = math.exp(alpha[k, c] - m0) / t0
                    p1 = 0.5 * (math.exp(alpha[k, c] * inv - mt) / tt + (1.0 if c == i else 0.0))
                    out[k, c] += 2.0 * p1 * (dy[s_, k, c] - d1) - 0.5 * p0 * (dy[s_, k, c] - d0)
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] / n

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
