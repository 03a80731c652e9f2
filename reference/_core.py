"""Per-element arithmetic shared by the Numba CPU and CUDA kernels.

``build(jit)`` compiles the same plain-Python bodies with ``numba.njit`` (CPU) or
``numba.cuda.jit(device=True)`` (CUDA), so both fast backends do the very same floating-point
operations in the same order, except inside the exponential and the logarithm: the CPU's are
:func:`reference._cpu.exp` (within 0.51 ulp), :func:`reference._cpu.log` and ``log1p`` (within
0.68 ulp), CUDA's its libdevice ``exp``, ``log`` and ``log1p``. The bodies mirror
the NumPy reference in :mod:`reference.distributions` (the samplers); each estimator family's
own arithmetic is in its ``reference/estimators/<family>/device.py``, built on top of this
namespace. They never validate and never allocate. Accumulations are in float64 even for
float32 inputs (the literals are float64)."""

from __future__ import annotations

import math
from types import SimpleNamespace


def build(jit, exp=math.exp, log=math.log, log1p=math.log1p) -> SimpleNamespace:
    """Compile the shared device functions with ``jit``; returns them in a namespace.

    ``exp``: the float64 exponential every body calls, compiled for the same target (the CPU
    passes :func:`reference._cpu.exp`, which vectorizes where libm's is a call per element;
    CUDA keeps ``math.exp``). It is in the namespace as ``exp`` for the families' bodies.
    ``log`` and ``log1p``: the same for the logarithms (:func:`reference._cpu.log` and
    :func:`reference._cpu.log1p` on the CPU, both within 0.68 ulp; CUDA's ``math.log`` and
    ``math.log1p``), in the namespace as ``log`` and ``log1p``.
    """

    @jit
    def sigmoid(x):
        # the two-branch form, so that exp never overflows: 1 / (1 + exp(-x)) for x >= 0,
        # e / (1 + e) with e = exp(x) below. Both branches' exp is exp(-|x|), so both values
        # are computed and one is selected: the same numbers, without a branch on the sign,
        # which random logits mispredict half the time (about as costly as the exp itself)
        e = exp(-abs(x))
        big = 1.0 / (1.0 + e)
        small = e / (1.0 + e)
        return big if x >= 0 else small

    @jit
    def row_argmax(alpha, k):
        # max of row k and the index of its first occurrence
        m = alpha[k, 0]
        cmax = 0
        for c in range(1, alpha.shape[1]):
            if alpha[k, c] > m:
                m = alpha[k, c]
                cmax = c
        return m, cmax

    @jit
    def softmax_stats(alpha, k):
        # max of row k and the sequential sum of exp(alpha_kc - max), left to right
        C = alpha.shape[1]
        m, _ = row_argmax(alpha, k)
        total = 0.0
        for c in range(C):
            total += exp(alpha[k, c] - m)
        return m, total

    @jit
    def softmax_rest(alpha, k):
        # softmax_stats of row k (the same max and the same left-to-right total) plus the index
        # cmax of the first maximum and rest = the sum of exp(alpha_kc - m) over c != cmax,
        # left to right, in the same pass: 1 - p_k,cmax = rest / total without cancellation and
        # without another exp
        C = alpha.shape[1]
        m, cmax = row_argmax(alpha, k)
        total = 0.0
        rest = 0.0
        for c in range(C):
            e = exp(alpha[k, c] - m)
            total += e
            if c != cmax:
                rest += e
        return m, total, rest, cmax

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
        e = exp(-abs(phi))
        if phi >= 0:
            return e / (1.0 + e), -(1.0 / (1.0 + e))
        return 1.0 / (1.0 + e), -(e / (1.0 + e))

    @jit
    def softmax_complement(e, total, rest, c, cmax):
        # 1 - p_kc for p_kc = e / total (e = exp(alpha_kc - m); total, rest, cmax from
        # softmax_rest). Below the first maximum p_kc <= 1/2 (the maximum adds 1 to total), so
        # 1 - e / total has no cancellation; at cmax it is rest / total, never
        # (total - e) / total, which cancels when p_kc -> 1 (0 at alpha_k = (50, 0) for a true
        # 1.9e-22)
        if c == cmax:
            return rest / total
        return 1.0 - e / total

    @jit
    def score_categorical(alpha, k, c, zk, m, total, rest, cmax):
        # one entry 1[z_k = c] - p_kc of one sample's score (m, total, rest, cmax:
        # softmax_rest of row k)
        e = exp(alpha[k, c] - m)
        if zk == c:
            return softmax_complement(e, total, rest, c, cmax)
        return -(e / total)

    @jit
    def score_categorical_pair(alpha, k, c, m, total, rest, cmax):
        # entry (k, c) of the scores 1[z_ik = c] - p_kc: returns (1 - p_kc, -p_kc), the value
        # for samples with z_ik = c and for the others, from one exp
        e = exp(alpha[k, c] - m)
        return softmax_complement(e, total, rest, c, cmax), -(e / total)

    @jit
    def sample_bernoulli_row(phi, u, z):
        # phi (K,), u (K,) -> z (K,): z_k = 1[u_k < sigmoid(phi_k)]
        for k in range(u.shape[0]):
            z[k] = u[k] < sigmoid(phi[k])  # stored as 0/1 without a branch on random noise

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
                running += exp(alpha[k, c] - m)
                if threshold < running:
                    z[k] = c
                    break

    return SimpleNamespace(**{name: fn for name, fn in locals().items() if name != "jit"})
