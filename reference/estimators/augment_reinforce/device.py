"""Device functions of the binary augment-REINFORCE family (AR, ARM, DisARM).

``build(jit, base)`` compiles the plain-Python bodies with ``numba.njit`` (CPU) or
``numba.cuda.jit(device=True)`` (CUDA); ``base`` is the namespace of shared device functions
(``reference._cpu.CORE`` or ``reference._cuda.CORE``), whose two-branch ``sigmoid`` sets every
threshold, so all backends take the same decisions. The bodies mirror the NumPy reference in
:mod:`reference.estimators.augment_reinforce.numpy_reference`; they never validate and never
allocate. Accumulations are float64.
"""

from __future__ import annotations

from types import SimpleNamespace


def build(jit, base: SimpleNamespace) -> SimpleNamespace:
    """Compile the binary family's device functions with ``jit`` on top of ``base``."""
    sigmoid = base.sigmoid
    exp = base.exp

    @jit
    def sigmoid_pair(x):
        # (sigmoid(x), sigmoid(-x)) from one exp: with e = exp(-|x|) both branches of the
        # two-branch sigmoid are 1 / (1 + e) and e / (1 + e), so the values are those of two
        # calls to base.sigmoid, bit for bit (x = 0 gives 1/2 twice either way); selected, not
        # branched on: random logits mispredict a branch on the sign half the time
        e = exp(-abs(x))
        big = 1.0 / (1.0 + e)
        small = e / (1.0 + e)
        return (big if x >= 0 else small), (small if x > 0 else big)

    @jit
    def arm_pair_row(phi, u, b1, b2):
        # phi (K,), u (K,) -> b1 = 1[u > sigmoid(-phi)], b2 = 1[u < sigmoid(phi)], each (K,)
        for k in range(u.shape[0]):
            s_pos, s_neg = sigmoid_pair(phi[k])
            b1[k] = u[k] > s_neg  # stored as 0/1 without a branch on random noise
            b2[k] = u[k] < s_pos

    @jit
    def ar_combine_row(u, f, out):
        # u (n, K), f (n,) -> out (K,): (1/n) sum_i f_i (1 - 2 u_ik)
        # the sums over i for all k side by side in out (the k loop innermost, so it
        # vectorizes), each still adding its i in increasing order from +0.0
        n, K = u.shape[0], u.shape[1]
        for k in range(K):  # i = 0 added to +0.0 in the pass that starts the sums
            out[k] = 0.0 + f[0] * (1.0 - 2.0 * u[0, k])
        for i in range(1, n):
            for k in range(K):
                out[k] += f[i] * (1.0 - 2.0 * u[i, k])
        for k in range(K):
            out[k] = out[k] / n

    @jit
    def arm_combine_row(u, f, out):
        # u (n, K), f (2n,) with f(b1_i) at 2i, f(b2_i) at 2i + 1 -> out (K,):
        # (1/n) sum_i (f(b1_i) - f(b2_i)) (u_ik - 1/2)
        # summed as in ar_combine_row
        n, K = u.shape[0], u.shape[1]
        d = f[0] - f[1]
        for k in range(K):  # as in ar_combine_row
            out[k] = 0.0 + d * (u[0, k] - 0.5)
        for i in range(1, n):
            d = f[2 * i] - f[2 * i + 1]
            for k in range(K):
                out[k] += d * (u[i, k] - 0.5)
        for k in range(K):
            out[k] = out[k] / n

    @jit
    def disarm_combine_row(phi, z, f, out):
        # phi (K,), z (2n, K) with b1_i at row 2i and b2_i at 2i + 1, f (2n,) -> out (K,):
        # (1/n) sum_i 1/2 (f(b1_i) - f(b2_i)) (-1)^{b2_ik} 1[b1_ik != b2_ik] sigmoid(|phi_k|)
        # the sums over i for all k side by side in out, as in ar_combine_row, each term with
        # its sigmoid computed in the k loop (an exp per variable and pair, packed: with one
        # sigmoid per k kept for all pairs, the sums over i ran scalar, 82-89 ns a replicate
        # at n = 1 against 55-58). Selected, not branched on (random outcomes): adding +0.0
        # leaves a sum as it is, since it starts at +0.0 and a round-to-nearest sum is never
        # -0.0 unless both terms are
        n, K = z.shape[0] // 2, phi.shape[0]
        for k in range(K):
            out[k] = 0.0
        for i in range(n):
            d = 0.5 * (f[2 * i] - f[2 * i + 1])
            for k in range(K):
                s = sigmoid(abs(phi[k]))
                w = -s if z[2 * i + 1, k] == 1 else s
                out[k] += d * w if z[2 * i, k] != z[2 * i + 1, k] else 0.0
        for k in range(K):
            out[k] = out[k] / n

    return SimpleNamespace(sigmoid_pair=sigmoid_pair, arm_pair_row=arm_pair_row,
                           ar_combine_row=ar_combine_row, arm_combine_row=arm_combine_row,
                           disarm_combine_row=disarm_combine_row)
