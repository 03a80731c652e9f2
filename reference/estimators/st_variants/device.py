"""Device functions of the straight-through variants, for Numba CPU and CUDA.

``build(jit, base)`` compiles the same plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)``; ``base`` is the compiled namespace of
:func:`reference._core.build` (``softmax_stats``, ``exp``, ``log``, ``log1p``). The formulas
mirror the NumPy reference in :mod:`reference.estimators.st_variants.numpy_reference`; nothing
here validates or allocates: the combines keep a row's softmax values in a scratch ``w`` of a
few rows of ``C`` float64 that the kernel passes (each exp is taken once, in a loop of its own
where the CPU's run packed).
"""

from __future__ import annotations

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
    def scaled_exps(x, k, scale, e):
        # e (C,) = exp(x[k, c] * scale - max_c x[k, c] * scale), in a loop of their own (the
        # CPU's exps run packed); returns the max and their left-to-right sum
        mx = row_max(x, k, scale)
        C = x.shape[1]
        for c in range(C):
            e[c] = exp(x[k, c] * scale - mx)
        total = 0.0
        for c in range(C):
            total += e[c]
        return mx, total

    @jit
    def gr_categorical(alpha, x, dy, tau, detach, w, out):
        # alpha (K, C), x (n, m, K, C), dy (n, K, C), w (3, C) scratch -> out (K, C), mean
        # over n and m. Per row: w[0] the exps of softmax(x / tau), w[1] b = exp(x - max x),
        # w[2] the exps of softmax(alpha); each exp taken once
        n, mm, K, C = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        inv = 1.0 / tau
        for k in range(K):
            for c in range(C):
                out[k, c] = 0.0
        for i in range(n):
            for j in range(mm):
                xs = x[i, j]
                for k in range(K):
                    _, total = scaled_exps(xs, k, inv, w[0])
                    dot = 0.0
                    for c in range(C):
                        dot += w[0, c] * dy[i, k, c]
                    s = dot / total
                    if detach:
                        for c in range(C):
                            y = w[0, c] / total
                            out[k, c] += y * (dy[i, k, c] - s) * inv
                    else:
                        scaled_exps(xs, k, 1.0, w[1])
                        bv = 0.0
                        for c in range(C):
                            y = w[0, c] / total
                            bv += w[1, c] * (y * (dy[i, k, c] - s) * inv)
                        _, ptot = scaled_exps(alpha, k, 1.0, w[2])
                        for c in range(C):
                            y = w[0, c] / total
                            v = y * (dy[i, k, c] - s) * inv
                            p = w[2, c] / ptot
                            out[k, c] += (1.0 - w[1, c]) * v + p * bv
        scale = 1.0 / (n * mm)
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] * scale

    # ------------------------------------------------------------------------ GST
    @jit
    def gst_categorical(alpha, z, dy, tau, gap, adaptive, w, out):
        # alpha (K, C), z (n, K), dy (n, K, C), w (2, C) scratch -> out (K, C), mean over n.
        # Rows outer, samples inner (each out[k, c] still adds its samples in order): w[0]
        # the exps of softmax(alpha_k), once per row; w[1] the perturbed logits alpha' / tau,
        # then their exps, once per sample. alpha'_kc is amax at the sample i, else
        # min(alpha_kc, amax - width)
        n, K, C = dy.shape[0], dy.shape[1], dy.shape[2]
        inv = 1.0 / tau
        for k in range(K):
            amax, total = scaled_exps(alpha, k, 1.0, w[0])
            for c in range(C):
                out[k, c] = 0.0
            for s_ in range(n):
                i = z[s_, k]
                width = gap
                if adaptive:
                    rest = 0.0
                    for c in range(C):
                        if c != i:
                            rest += w[0, c]
                    width = -log(rest / total) / (w[0, i] / total)
                lo = amax - width
                for c in range(C):
                    a = alpha[k, c] if alpha[k, c] < lo else lo
                    w[1, c] = (amax if c == i else a) * inv
                _, ytot = scaled_exps(w, 1, 1.0, w[1])  # in place: each read before written
                dot = 0.0
                for c in range(C):
                    dot += w[1, c] * dy[s_, k, c]
                dot = dot / ytot
                for c in range(C):
                    y = w[1, c] / ytot
                    out[k, c] += y * (dy[s_, k, c] - dot) * inv
            for c in range(C):
                out[k, c] = out[k, c] / n

    # -------------------------------------------------------------------- ReinMax
    @jit
    def reinmax_categorical(alpha, z, dy, tau, w, out):
        # alpha (K, C), z (n, K), dy (n, K, C), w (2, C) scratch -> out (K, C) = mean over n
        # of 2 J(pi_1) dy - J(pi_0) dy / 2, pi_1 = (softmax(alpha/tau) + e_z) / 2,
        # pi_0 = softmax(alpha). Rows outer, samples inner (each out[k, c] still adds its
        # samples in order): pi_0 in w[0] and softmax(alpha / tau) in w[1], once per row
        n, K, C = dy.shape[0], dy.shape[1], dy.shape[2]
        inv = 1.0 / tau
        for k in range(K):
            _, t0 = scaled_exps(alpha, k, 1.0, w[0])
            _, tt = scaled_exps(alpha, k, inv, w[1])
            for c in range(C):
                w[0, c] = w[0, c] / t0
                w[1, c] = w[1, c] / tt
                out[k, c] = 0.0
            for s_ in range(n):
                i = z[s_, k]
                d0 = 0.0
                d1 = 0.0
                for c in range(C):
                    p1 = 0.5 * (w[1, c] + (1.0 if c == i else 0.0))
                    d0 += w[0, c] * dy[s_, k, c]
                    d1 += p1 * dy[s_, k, c]
                for c in range(C):
                    p1 = 0.5 * (w[1, c] + (1.0 if c == i else 0.0))
                    out[k, c] += 2.0 * p1 * (dy[s_, k, c] - d1) - 0.5 * w[0, c] * (dy[s_, k, c] - d0)
            for c in range(C):
                out[k, c] = out[k, c] / n

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
