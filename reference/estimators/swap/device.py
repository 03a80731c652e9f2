"""Device functions of the categorical swap family (ARS, ARSM, ARS+, ARSM+, ARSM+CE).

``build(jit, base)`` compiles the plain-Python bodies with ``numba.njit`` (CPU) or
``numba.cuda.jit(device=True)`` (CUDA) on top of ``base`` (``reference._cpu.CORE`` or
``reference._cuda.CORE``), so both fast backends do the same arithmetic. The bodies mirror the
NumPy reference in :mod:`reference.estimators.swap.numpy_reference` (formulas and noise
mapping there); they never validate and never allocate: scratch rows (``pi``, ``w``) are
preallocated by the host.
Accumulations are float64 even for float32 inputs.
"""

from __future__ import annotations

import math
from types import SimpleNamespace


def build(jit, base: SimpleNamespace) -> SimpleNamespace:
    """Compile the swap family's device functions with ``jit``."""

    @jit
    def dirichlet_row(u, pi):
        # u (C,) -> pi (C,): E = -log1p(-u), pi = E / S, S summed left to right
        C = u.shape[0]
        total = 0.0
        for c in range(C):
            e = -math.log1p(-float(u[c]))
            pi[c] = e
            total += e
        for c in range(C):
            pi[c] = pi[c] / total

    @jit
    def row_weights(alpha_row, w):
        # alpha_row (C,) -> w (C,): w_c = exp(max(alpha) - alpha_c)
        C = alpha_row.shape[0]
        m = float(alpha_row[0])
        for c in range(1, C):
            if alpha_row[c] > m:
                m = float(alpha_row[c])
        for c in range(C):
            w[c] = math.exp(m - float(alpha_row[c]))

    @jit
    def reference_index(u, C):
        # j = min(floor(u C), C - 1)
        j = int(math.floor(float(u) * C))
        return j if j < C - 1 else C - 1

    @jit
    def other_index(u, j, C):
        # the min(floor(u (C-1)), C-2)-th element of {0..C-1} minus {j}
        i = int(math.floor(float(u) * (C - 1)))
        if i > C - 2:
            i = C - 2
        return i if i < j else i + 1

    @jit
    def source(i, m, j):
        # position i of the swap (m, j) holds pi[source]
        if i == m:
            return j
        if i == j:
            return m
        return i

    @jit
    def swap_argmin(pi, w, m, j):
        # argmin_i pi[sigma(i)] w[i] for the transposition (m, j); the first minimum wins
        best = 0
        best_v = pi[source(0, m, j)] * w[0]
        for i in range(1, pi.shape[0]):
            v = pi[source(i, m, j)] * w[i]
            if v < best_v:
                best_v = v
                best = i
        return best

    @jit
    def swap_delta(pi, w, j):
        # 1 when z^{m<->j} is the same for every m
        C = pi.shape[0]
        first = swap_argmin(pi, w, 0, j)
        for m in range(1, C):
            if swap_argmin(pi, w, m, j) != first:
                return False
        return True

    @jit
    def ce_midpoint(pi, w, j, l):
        # (lo + hi) / 2 for t = pi_j with pi_i (i not in {j, l}) and s = pi_j + pi_l fixed;
        # position i of a swap holds p_i t + q_i (see reference.estimators.swap.numpy_reference.ce_interval)
        C = pi.shape[0]
        s = pi[j] + pi[l]
        lo = 0.0
        hi = s
        for m in range(C):
            a = swap_argmin(pi, w, m, j)
            src = source(a, m, j)
            if src == j:
                pa = w[a]
                qa = 0.0
            elif src == l:
                pa = -w[a]
                qa = w[a] * s
            else:
                pa = 0.0
                qa = w[a] * pi[src]
            for i in range(C):
                src = source(i, m, j)
                if src == j:
                    p = w[i]
                    q = 0.0
                elif src == l:
                    p = -w[i]
                    q = w[i] * s
                else:
                    p = 0.0
                    q = w[i] * pi[src]
                dp = pa - p
                if dp > 0.0:
                    bound = (q - qa) / dp
                    if bound < hi:
                        hi = bound
                elif dp < 0.0:
                    bound = (q - qa) / dp
                    if bound > lo:
                        lo = bound
        return 0.5 * (lo + hi)

    @jit
    def ars_queries_row(u_pi, u_j, u_l, plus, w, pi, z, weight):
        # one replicate: u_pi (K, C), u_l (K,) (ignored unless plus), w (K, C),
        # scratch pi (K, C) -> z (C, K), weight (K,)
        K, C = u_pi.shape[0], u_pi.shape[1]
        for k in range(K):
            dirichlet_row(u_pi[k], pi[k])
        j = reference_index(u_j, C)
        for k in range(K):
            for m in range(C):
                z[m, k] = swap_argmin(pi[k], w[k], m, j)
            if plus:
                if swap_delta(pi[k], w[k], j):
                    weight[k] = 0.0
                else:
                    l = other_index(u_l[k], j, C)
                    weight[k] = 1.0 - C * ce_midpoint(pi[k], w[k], j, l)
            else:
                weight[k] = 1.0 - C * pi[k, j]

    @jit
    def first_equal_row(z, p, n):
        # the first s < n with z[s] == z[p] (all K entries), else n
        for s in range(n):
            same = True
            for k in range(z.shape[1]):
                if z[s, k] != z[p, k]:
                    same = False
                    break
            if same:
                return s
        return n

    @jit
    def arsm_swaps_row(pi, w, z, slot):
        # pi (K, C), w (K, C) -> z (M, K): the distinct configurations z^{m<->j} in order of
        # first appearance (row 0 the sample itself, then the pairs m < j in order; rows past
        # the last distinct one copy row 0), slot (C, C) the row of each swap; returns the
        # number of distinct rows
        K, C = pi.shape[0], pi.shape[1]
        M = z.shape[0]
        for k in range(K):
            z[0, k] = swap_argmin(pi[k], w[k], 0, 0)
        for j in range(C):
            slot[j, j] = 0
        n = 1
        for m in range(C):
            for j in range(m + 1, C):
                for k in range(K):
                    z[n, k] = swap_argmin(pi[k], w[k], m, j)
                found = first_equal_row(z, n, n)
                slot[m, j] = found
                slot[j, m] = found
                if found == n:
                    n += 1
        for s in range(n, M):
            for k in range(K):
                z[s, k] = z[0, k]
        return n

    @jit
    def arsm_weights_row(u_l, mode, w, pi, weight):
        # u_l (K, C) (mode 2 only), mode 0 plain / 1 symmetry / 2 symmetry and conditional
        # expectation, w (K, C), pi (K, C) -> weight (K, C)
        K, C = pi.shape[0], pi.shape[1]
        for k in range(K):
            for j in range(C):
                if mode == 0:
                    weight[k, j] = 1.0 - C * pi[k, j]
                elif swap_delta(pi[k], w[k], j):
                    weight[k, j] = 0.0
                elif mode == 1:
                    weight[k, j] = 1.0 - C * pi[k, j]
                else:
                    l = other_index(u_l[k, j], j, C)
                    weight[k, j] = 1.0 - C * ce_midpoint(pi[k], w[k], j, l)

    @jit
    def arsm_queries_row(u_pi, u_l, mode, w, pi, z, slot, weight):
        # one replicate: u_pi (K, C), u_l (K, C) (mode 2 only), mode 0 plain / 1 symmetry /
        # 2 symmetry and conditional expectation -> z (M, K), slot (C, C), weight (K, C);
        # returns the number of distinct slots
        for k in range(u_pi.shape[0]):
            dirichlet_row(u_pi[k], pi[k])
        n = arsm_swaps_row(pi, w, z, slot)
        arsm_weights_row(u_l, mode, w, pi, weight)
        return n

    @jit
    def ars_combine_row(f, weight, out):
        # f (C,), weight (K,) -> out (K, C): (f_c - mean f) W_k
        C = f.shape[0]
        fbar = 0.0
        for m in range(C):
            fbar += f[m]
        fbar = fbar / C
        for k in range(weight.shape[0]):
            for c in range(C):
                out[k, c] = (f[c] - fbar) * weight[k]

    @jit
    def arsm_combine_row(f, slot, weight, out):
        # f (M,), slot (C, C), weight (K, C) -> out (K, C):
        # (1/C) sum_j (f[slot[c, j]] - (1/C) sum_m f[slot[m, j]]) W_kj
        C = slot.shape[0]
        for k in range(weight.shape[0]):
            for c in range(C):
                acc = 0.0
                for j in range(C):
                    fbar = 0.0
                    for m in range(C):
                        fbar += f[slot[m, j]]
                    acc += (f[slot[c, j]] - fbar / C) * weight[k, j]
                out[k, c] = acc / C

    return SimpleNamespace(**{name: fn for name, fn in locals().items()
                              if name not in ("jit", "base")})
