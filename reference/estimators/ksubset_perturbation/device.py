"""Device functions of the k-subset perturbation family (I-MLE/AIMLE on k-subsets, SIMPLE),
for Numba CPU and CUDA.

``build(jit, relax)`` compiles the same plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)``; ``relax`` is the compiled namespace of
:func:`reference.estimators.relaxation.device.build` (``perturb_lambda``). The formulas mirror
the NumPy references in :mod:`reference.estimators.ksubset_perturbation.numpy_reference` and
:mod:`reference.ksubset` (the log-space DP and the exact sampler); nothing here validates or
allocates (scratch tables are passed in).
"""

from __future__ import annotations

import math
from types import SimpleNamespace


def build(jit, relax) -> SimpleNamespace:
    """Compile the device functions with ``jit``; ``relax`` from the relaxation family's build."""
    perturb_lambda = relax.perturb_lambda

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
                              if k not in ("jit", "relax", "names") and callable(v)})
