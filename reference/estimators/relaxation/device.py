"""Device functions of the relaxation and perturbation family, for Numba CPU and CUDA.

``build(jit, base)`` compiles the same plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)``; ``base`` is the compiled namespace of
:func:`reference._core.build` (``sigmoid``, ``row_argmax``, ``exp``, ``log``). The formulas
mirror the NumPy reference in :mod:`reference.estimators.relaxation.numpy_reference`; nothing
here validates or allocates. The k-subset family builds on ``gumbel`` and ``perturb_lambda``
from here (:mod:`reference.estimators.ksubset_perturbation.device`).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

#: smallest positive normal float64 (the Gumbel transform's guard for u = 0)
TINY = 2.2250738585072014e-308


def build(jit, base) -> SimpleNamespace:
    """Compile the device functions with ``jit``; ``base`` from ``reference._core.build``."""
    sigmoid = base.sigmoid
    sigmoid_prime = base.sigmoid_prime
    row_argmax = base.row_argmax
    log, exp = base.log, base.exp

    @jit
    def gumbel(u):
        # G = -log(-log(max(u, TINY))); log is the base's (the CPU's vectorizes)
        x = u if u > TINY else TINY
        return -log(-log(x))

    @jit
    def perturb_logits(alpha, u, pert):
        # pert (K, C) = alpha + G(u): a loop of its own, with no other work in it, so that the
        # CPU's logs run packed (the two logs of a Gumbel are the kernels' main cost). gumbel's
        # body is written out: called through gumbel, the two logs are not inlined and the loop
        # stays scalar
        for k in range(alpha.shape[0]):
            for c in range(alpha.shape[1]):
                x = u[k, c] if u[k, c] > TINY else TINY
                pert[k, c] = alpha[k, c] - log(-log(x))

    @jit
    def softmax_jvp_acc(y, dy, scale, out):
        # out (C,) += scale * y * (dy - <y, dy>)
        s = 0.0
        for c in range(y.shape[0]):
            s += y[c] * dy[c]
        for c in range(y.shape[0]):
            out[c] += scale * (y[c] * (dy[c] - s))

    # ------------------------------------------------------------ straight-through
    @jit
    def st_categorical(alpha, dy, out):
        # alpha (K, C), dy (n, K, C) -> out (K, C) = mean_i p * (dy_i - <p, dy_i>)
        # p is the same for every i, so this is p * (D - <p, D>) / n with D = sum_i dy_i: p
        # is computed once per row, kept in out (its exps in a loop of their own, where the
        # CPU's run packed), and no other row of values is needed. For n = 1 these are the
        # operations of the per-i form
        K, C = alpha.shape[0], alpha.shape[1]
        n = dy.shape[0]
        for k in range(K):
            m, _ = row_argmax(alpha, k)
            for c in range(C):
                out[k, c] = exp(alpha[k, c] - m)
            total = 0.0
            for c in range(C):
                total += out[k, c]
            s = 0.0
            for c in range(C):
                out[k, c] = out[k, c] / total
                d = 0.0
                for i in range(n):
                    d += dy[i, k, c]
                s += out[k, c] * d
            for c in range(C):
                d = 0.0
                for i in range(n):
                    d += dy[i, k, c]
                out[k, c] = out[k, c] * (d - s) / n

    @jit
    def st_bernoulli(phi, dy, out):
        # phi (K,), dy (n, K) -> out (K,) = mean_i p (1 - p) dy_i, p (1 - p) as
        # sigmoid(phi) sigmoid(-phi) (sigmoid_prime: 1 - p is 0 at phi = 50)
        n = dy.shape[0]
        for k in range(phi.shape[0]):
            sp = sigmoid_prime(phi[k])
            acc = 0.0
            for i in range(n):
                acc += sp * dy[i, k]
            out[k] = acc / n

    # ------------------------------------------------------------- Gumbel-Softmax
    @jit
    def gs_row_categorical(alpha, u, tau, y, z):
        # alpha (K, C), u (K, C) -> y (K, C) = softmax((alpha + G)/tau), z (K,) = argmax(alpha + G)
        # the perturbed logits are kept in y between the passes, so each Gumbel is taken once
        K, C = alpha.shape[0], alpha.shape[1]
        perturb_logits(alpha, u, y)
        for k in range(K):
            best = 0
            bx = y[k, 0]
            m = bx / tau
            for c in range(1, C):
                xc = y[k, c]
                if xc > bx:
                    bx = xc
                    best = c
                if xc / tau > m:
                    m = xc / tau
            z[k] = best
            # the exps (the base's: the CPU's is inlined) before the running sum, in the same
            # order: the sum stays sequential, the exps need not wait for it
            for c in range(C):
                y[k, c] = exp(y[k, c] / tau - m)
            total = 0.0
            for c in range(C):
                total += y[k, c]
            for c in range(C):
                y[k, c] = y[k, c] / total

    @jit
    def gs_row_bernoulli(phi, u, tau, y, z):
        # phi (K,), u (K, 2) -> y (K,) = sigmoid((phi + G1 - G0)/tau), z (K,) = 1[phi + G1 - G0 > 0]
        # the Gumbels written out, as in perturb_logits, one per loop (through gumbel, or with
        # four logs in one loop, the logs are not all inlined and the loop stays scalar), the
        # perturbed logit kept in y between the loops: the same operations, the same numbers
        K = phi.shape[0]
        for k in range(K):
            x1 = u[k, 1] if u[k, 1] > TINY else TINY
            y[k] = -log(-log(x1))
        for k in range(K):
            x0 = u[k, 0] if u[k, 0] > TINY else TINY
            y[k] = phi[k] + (y[k] - (-log(-log(x0))))
        for k in range(K):
            x = y[k]
            y[k] = sigmoid(x / tau)
            z[k] = 1 if x > 0 else 0

    @jit
    def jvp_categorical(y, dy, tau, out):
        # y, dy (n, K, C) -> out (K, C) = mean_i (1/tau) J(y_i)^T dy_i
        n, K, C = y.shape[0], y.shape[1], y.shape[2]
        for k in range(K):
            for c in range(C):
                out[k, c] = 0.0
        for i in range(n):
            for k in range(K):
                s = 0.0
                for c in range(C):
                    s += y[i, k, c] * dy[i, k, c]
                for c in range(C):
                    out[k, c] += y[i, k, c] * (dy[i, k, c] - s) / tau
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] / n

    @jit
    def jvp_bernoulli(y, dy, tau, out):
        # y, dy (n, K) -> out (K,) = mean_i (1/tau) y (1 - y) dy
        n = y.shape[0]
        for k in range(y.shape[1]):
            acc = 0.0
            for i in range(n):
                acc += y[i, k] * (1.0 - y[i, k]) * dy[i, k] / tau
            out[k] = acc / n

    # ------------------------------------------------------------- I-MLE / AIMLE
    @jit
    def perturb_row_categorical(alpha, u, pert, z):
        # pert (K, C) = alpha + G; z (K,) = argmax(pert), ties to the lowest index
        K, C = alpha.shape[0], alpha.shape[1]
        perturb_logits(alpha, u, pert)
        for k in range(K):
            best = 0
            for c in range(1, C):
                if pert[k, c] > pert[k, best]:
                    best = c
            z[k] = best

    @jit
    def perturb_lambda(theta_sq, nd, lambda_, adaptive, beta):
        # lambda_ or beta ||theta|| / ||dy|| (0 when dy = 0); theta_sq, nd: squared norms
        if not adaptive:
            return lambda_
        if nd > 0.0:
            return beta * math.sqrt(theta_sq) / math.sqrt(nd)
        return 0.0

    @jit
    def shifted_argmax(pert, dy, k, lam, sign):
        # argmax_c pert[k, c] - lam dy[k, c] (sign -1) or + lam dy[k, c] (sign +1)
        best = 0
        bv = pert[k, 0] + lam * dy[k, 0] if sign > 0 else pert[k, 0] - lam * dy[k, 0]
        for c in range(1, pert.shape[1]):
            v = pert[k, c] + lam * dy[k, c] if sign > 0 else pert[k, c] - lam * dy[k, c]
            if v > bv:
                bv = v
                best = c
        return best

    @jit
    def imle_categorical(alpha, pert, z, dy, lambda_, adaptive, beta, two_sided, divide, out):
        # alpha (K, C), pert (S, K, C), z (S, K), dy (S, K, C) -> out (K, C), mean over S
        S, K, C = pert.shape[0], pert.shape[1], pert.shape[2]
        theta_sq = 0.0
        for k in range(K):
            for c in range(C):
                theta_sq += alpha[k, c] * alpha[k, c]
                out[k, c] = 0.0
        for s in range(S):
            nd = 0.0
            for k in range(K):
                for c in range(C):
                    nd += dy[s, k, c] * dy[s, k, c]
            lam = perturb_lambda(theta_sq, nd, lambda_, adaptive, beta)
            if lam <= 0.0:
                continue
            width = 2.0 * lam if two_sided else lam
            w = 1.0 / width if divide else 1.0
            for k in range(K):
                minus = shifted_argmax(pert[s], dy[s], k, lam, -1)
                plus = shifted_argmax(pert[s], dy[s], k, lam, 1) if two_sided else z[s, k]
                if plus != minus:
                    out[k, plus] += w
                    out[k, minus] -= w
        for k in range(K):
            for c in range(C):
                out[k, c] = out[k, c] / S

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
