"""Per-element arithmetic shared by the Numba CPU and CUDA kernels.

``build(jit)`` compiles the same plain-Python bodies with ``numba.njit`` (CPU) or
``numba.cuda.jit(device=True)`` (CUDA), so both fast backends do the very same floating-point
operations in the same order. The bodies mirror the NumPy reference in
:mod:`reference.distributions` (the samplers); each estimator family's own arithmetic is in
its ``reference/estimators/<family>/device.py``, built on top of this namespace. They never
validate and never allocate. Accumulations are in float64 even for float32 inputs (the literals are float64).
"""

from __future__ import annotations

import math
from types import SimpleNamespace


def build(jit) -> SimpleNamespace:
    """Compile the shared device functions with ``jit``; returns them in a namespace."""

    @jit
    def sigmoid(x):
        # two branches so that exp never overflows
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    @jit
    def softmax_stats(alpha, k):
        # max of row k and the sequential sum of exp(alpha_kc - max), left to right
        C = alpha.shape[1]
        m = alpha[k, 0]
        for c in range(1, C):
            if alpha[k, c] > m:
                m = alpha[k, c]
        total = 0.0
        for c in range(C):
            total += math.exp(alpha[k, c] - m)
        return m, total

    @jit
    def sigmoid_prime(x):
        # sigmoid(x) (1 - sigmoid(x)) as sigmoid(x) sigmoid(-x): 1 - sigmoid(x) rounds to 0 from
        # x = 37 on (and loses digits well before), sigmoid(-x) keeps them
        return sigmoid(x) * sigmoid(-x)

    @jit
    def score_bernoulli(phi, z):
        # grad_phi log q(z) = z - sigmoid(phi), never formed by subtraction: sigmoid(-phi) for
        # z = 1 (1 - sigmoid(phi) is 0 at phi = 50, where the score is 1.9e-22) and
        # -sigmoid(phi) for z = 0, both accurate relative to themselves
        if z == 1:
            return sigmoid(-phi)
        return -sigmoid(phi)

    @jit
    def score_bernoulli_pair(phi):
        # (sigmoid(-phi), -sigmoid(phi)), the scores for z = 1 and z = 0, from one exp:
        # e = exp(-|phi|) is the exp of both branches of sigmoid, so the pair equals
        # (score_bernoulli(phi, 1), score_bernoulli(phi, 0)) bit for bit
        e = math.exp(-abs(phi))
        if phi >= 0:
            return e / (1.0 + e), -(1.0 / (1.0 + e))
        return 1.0 / (1.0 + e), -(e / (1.0 + e))

    @jit
    def softmax_complement(alpha, k, c, m, total):
        # 1 - p_kc as (sum_{c' != c} exp(alpha_kc' - m)) / total, the others summed left to
        # right (m, total: softmax_stats of row k); never (total - e_c) / total, which cancels
        # when p_kc -> 1 (0 at alpha_k = (50, 0) for a true 1.9e-22)
        rest = 0.0
        for j in range(alpha.shape[1]):
            if j != c:
                rest += math.exp(alpha[k, j] - m)
        return rest / total

    @jit
    def score_categorical(alpha, k, c, zk, m, total):
        # one entry 1[z_k = c] - p_kc of one sample's score: softmax_complement where z_k = c
        if zk == c:
            return softmax_complement(alpha, k, c, m, total)
        return -(math.exp(alpha[k, c] - m) / total)

    @jit
    def score_categorical_pair(alpha, k, c, z, m, total):
        # entry (k, c) of the scores 1[z_ik = c] - p_kc of the samples z (n, K): returns
        # (1 - p_kc, -p_kc), the value for samples with z_ik = c and for the others; the
        # complement's extra sum is computed only when some sample has z_ik = c
        p = math.exp(alpha[k, c] - m) / total
        hit = 0.0
        for i in range(z.shape[0]):
            if z[i, k] == c:
                hit = softmax_complement(alpha, k, c, m, total)
                break
        return hit, -p

    @jit
    def sample_bernoulli_row(phi, u, z):
        # phi (K,), u (K,) -> z (K,): z_k = 1[u_k < sigmoid(phi_k)]
        for k in range(u.shape[0]):
            z[k] = 1 if u[k] < sigmoid(phi[k]) else 0

    @jit
    def sample_categorical_row(alpha, u, z):
        # alpha (K, C), u (K,) -> z (K,): z_k = min{c : u_k S_{C-1} < S_c}
        C = alpha.shape[1]
        for k in range(u.shape[0]):
            m, total = softmax_stats(alpha, k)
            threshold = u[k] * total
            running = 0.0
            z[k] = C - 1
            for c in range(C):
                running += math.exp(alpha[k, c] - m)
                if threshold < running:
                    z[k] = c
                    break

    return SimpleNamespace(**{name: fn for name, fn in locals().items() if name != "jit"})
