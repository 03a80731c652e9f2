"""Device functions of the relaxation and perturbation family, for Numba CPU and CUDA.

``build(jit, base)`` compiles the same plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)``; ``base`` is the compiled namespace of
:func:`reference._core.build` (``sigmoid``, ``softmax_stats``). The formulas mirror the NumPy
references in :mod:`reference.perturbation`, :mod:`reference.perturbation_ksubset` and
:mod:`reference.ksubset`; nothing here validates or allocates (scratch tables are passed in).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

#: smallest positive normal float64 (the Gumbel transform's guard for u = 0)
TINY = 2.2250738585072014e-308


def build(jit, base) -> SimpleNamespace:
    """Compile the device functions with ``jit``; ``base`` from ``reference._core.build``."""
    sigmoid = base.sigmoid
    softmax_stats = base.softmax_stats

    @jit
    def gumbel(u):
        # G = -log(-log(max(u, TINY)))
        x = u if u > TINY else TINY
        return -math.log(-math.log(x))

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
        K, C = alpha.shape[0], alpha.shape[1]
        n = dy.shape[0]
        for k in range(K):
            m, total = softmax_stats(alpha, k)
            for c in range(C):
                out[k, c] = 0.0
            for i in range(n):
                s = 0.0
                for c in range(C):
                    s += (math.exp(alpha[k, c] - m) / total) * dy[i, k, c]
                for c in range(C):
                    p = math.exp(alpha[k, c] - m) / total
                    out[k, c] += p * (dy[i, k, c] - s)
            for c in range(C):
                out[k, c] = out[k, c] / n

    @jit
    def st_bernoulli(phi, dy, out):
        # phi (K,), dy (n, K) -> out (K,) = mean_i p (1 - p) dy_i
        n = dy.shape[0]
        for k in range(phi.shape[0]):
            p = sigmoid(phi[k])
            acc = 0.0
            for i in range(n):
                acc += p * (1.0 - p) * dy[i, k]
            out[k] = acc / n

    # ------------------------------------------------------------- Gumbel-Softmax
    @jit
    def gs_row_categorical(alpha, u, tau, y, z):
        # alpha (K, C), u (K, C) -> y (K, C) = softmax((alpha + G)/tau), z (K,) = argmax(alpha + G)
        K, C = alpha.shape[0], alpha.shape[1]
        for k in range(K):
            best = 0
            bx = alpha[k, 0] + gumbel(u[k, 0])
            m = bx / tau
            for c in range(1, C):
                xc = alpha[k, c] + gumbel(u[k, c])
                if xc > bx:
                    bx = xc
                    best = c
                if xc / tau > m:
                    m = xc / tau
            z[k] = best
            total = 0.0
            for c in range(C):
                e = math.exp((alpha[k, c] + gumbel(u[k, c])) / tau - m)
                y[k, c] = e
                total += e
            for c in range(C):
                y[k, c] = y[k, c] / total

    @jit
    def gs_row_bernoulli(phi, u, tau, y, z):
        # phi (K,), u (K, 2) -> y (K,) = sigmoid((phi + G1 - G0)/tau), z (K,) = 1[phi + G1 - G0 > 0]
        for k in range(phi.shape[0]):
            x = phi[k] + (gumbel(u[k, 1]) - gumbel(u[k, 0]))
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
        for k in range(K):
            best = 0
            for c in range(C):
                pert[k, c] = alpha[k, c] + gumbel(u[k, c])
                if c > 0 and pert[k, c] > pert[k, best]:
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

    # ---------------------------------------------------------------- k-subset
    @jit
    def top_k_row(x, kk, z):
        # z_i = 1[#{j : x_j > x_i or (x_j == x_i and j < i)} < k]
        n = x.shape[0]
        for i in range(n):
            rank = 0
            for j in range(n):
                if x[j] > x[i] or (x[j] == x[i] and j < i):
                    rank += 1
            z[i] = 1 if rank < kk else 0

    @jit
    def shifted_in_top_k(pert, dy, lam, sign, kk, i):
        # is item i among the top k of pert + sign lam dy (ties to the lower index)?
        xi = pert[i] + lam * dy[i] if sign > 0 else pert[i] - lam * dy[i]
        rank = 0
        for j in range(pert.shape[0]):
            xj = pert[j] + lam * dy[j] if sign > 0 else pert[j] - lam * dy[j]
            if xj > xi or (xj == xi and j < i):
                rank += 1
        return 1 if rank < kk else 0

    @jit
    def imle_ksubset(theta, pert, z, dy, kk, lambda_, adaptive, beta, two_sided, divide, out):
        # theta (n,), pert (S, n), z (S, n), dy (S, n) -> out (n,), mean over S
        S, n = pert.shape[0], pert.shape[1]
        theta_sq = 0.0
        for i in range(n):
            theta_sq += theta[i] * theta[i]
            out[i] = 0.0
        for s in range(S):
            nd = 0.0
            for i in range(n):
                nd += dy[s, i] * dy[s, i]
            lam = perturb_lambda(theta_sq, nd, lambda_, adaptive, beta)
            if lam <= 0.0:
                continue
            width = 2.0 * lam if two_sided else lam
            for i in range(n):
                minus = shifted_in_top_k(pert[s], dy[s], lam, -1, kk, i)
                plus = shifted_in_top_k(pert[s], dy[s], lam, 1, kk, i) if two_sided else z[s, i]
                d = plus - minus
                if d != 0:
                    out[i] += d / width if divide else d * 1.0
        for i in range(n):
            out[i] = out[i] / S

    @jit
    def lae(a, b):
        # log(exp(a) + exp(b)) = max + log1p(exp(min - max)); -inf when both are
        m = a if a > b else b
        if m == -math.inf:
            return -math.inf
        lo = b if a > b else a
        return m + math.log1p(math.exp(lo - m))

    @jit
    def ksubset_forward(theta, kk, skip, L):
        # L (n+1, >= kk+1): L[j, m] over items 0..j-1 (item `skip` left out)
        n = theta.shape[0]
        for m in range(kk + 1):
            L[0, m] = -math.inf
        L[0, 0] = 0.0
        for j in range(1, n + 1):
            for m in range(kk + 1):
                if j - 1 == skip or m == 0:
                    L[j, m] = L[j - 1, m]
                else:
                    L[j, m] = lae(L[j - 1, m], L[j - 1, m - 1] + theta[j - 1])

    @jit
    def ksubset_backward(theta, kk, skip, Bk):
        # Bk (n+1, >= kk+1): Bk[j, m] over items j..n-1 (item `skip` left out)
        n = theta.shape[0]
        for m in range(kk + 1):
            Bk[n, m] = -math.inf
        Bk[n, 0] = 0.0
        for j in range(n - 1, -1, -1):
            for m in range(kk + 1):
                if j == skip or m == 0:
                    Bk[j, m] = Bk[j + 1, m]
                else:
                    Bk[j, m] = lae(Bk[j + 1, m], Bk[j + 1, m - 1] + theta[j])

    @jit
    def ksubset_marginals(theta, kk, skip, L, Bk, mu):
        # mu (n,) marginals of the kk-subset distribution on the items other than `skip`
        n = theta.shape[0]
        for i in range(n):
            mu[i] = 0.0
        if kk == 0:
            return
        ksubset_forward(theta, kk, skip, L)
        ksubset_backward(theta, kk, skip, Bk)
        logz = L[n, kk]
        for i in range(n):
            if i == skip:
                continue
            acc = 0.0
            for m in range(kk):
                acc += math.exp(L[i, m] + theta[i] + Bk[i + 1, kk - 1 - m] - logz)
            mu[i] = acc

    @jit
    def ksubset_covariance(theta, kk, L, Bk, mu, cond, cov):
        # cov (n, n): Cov_ii = mu_i (1 - mu_i), Cov_ij = mu_i (mu^(i)_j - mu_j)
        n = theta.shape[0]
        ksubset_marginals(theta, kk, -1, L, Bk, mu)
        for i in range(n):
            ksubset_marginals(theta, kk - 1, i, L, Bk, cond)
            for j in range(n):
                if j == i:
                    cov[i, j] = mu[i] * (1.0 - mu[i])
                else:
                    cov[i, j] = mu[i] * (cond[j] - mu[j])

    @jit
    def ksubset_sample_row(theta, L, kk, u, z):
        # sequential conditional sampling (reference.ksubset), items n-1 down to 0
        n = theta.shape[0]
        r = kk
        for j in range(n - 1, -1, -1):
            z[j] = 0
            if r > 0:
                p = math.exp(theta[j] + L[j, r - 1] - L[j + 1, r])
                if u[j] < p:
                    z[j] = 1
                    r -= 1

    @jit
    def simple_row(cov, dy, out):
        # out (n,) = mean_s Cov dy_s; dy (S, n)
        S, n = dy.shape[0], dy.shape[1]
        for i in range(n):
            acc = 0.0
            for s in range(S):
                t = 0.0
                for j in range(n):
                    t += cov[i, j] * dy[s, j]
                acc += t
            out[i] = acc / S

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
