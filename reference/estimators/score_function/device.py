"""Device functions of the score-function family (REINFORCE, REINFORCE-LOO), for Numba CPU
and CUDA.

``build(jit, base)`` compiles the plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)`` on top of ``base`` (``reference._cpu.CORE`` or
``reference._cuda.CORE``: ``softmax_rest`` and the scores ``score_bernoulli_pair``,
``score_categorical_pair``, accurate relative to themselves at saturated logits), so both fast
backends do the same arithmetic. The formulas mirror
:mod:`reference.estimators.score_function.numpy_reference`; nothing here validates or
allocates. Accumulations are float64 even for float32 inputs.
"""

from __future__ import annotations

from types import SimpleNamespace


def build(jit, base: SimpleNamespace) -> SimpleNamespace:
    """Compile the score-function family's device functions with ``jit``."""
    softmax_rest = base.softmax_rest
    score_bernoulli_pair = base.score_bernoulli_pair
    score_categorical_pair = base.score_categorical_pair

    @jit
    def mean(f):
        s = 0.0
        for i in range(f.shape[0]):
            s += f[i]
        return s / f.shape[0]

    @jit
    def score_weight(f, i, loo, baseline, fbar):
        # REINFORCE: (f_i - b) / n; leave-one-out: (f_i - fbar) / (n - 1)
        n = f.shape[0]
        if loo:
            return (f[i] - fbar) / (n - 1)
        return (f[i] - baseline) / n

    @jit
    def score_combine_bernoulli(phi, z, f, loo, baseline, out):
        # phi (K,), z (n, K), f (n,) -> out (K,): sum_i w_i (z_ik - sigmoid(phi_k)), the score
        # from score_bernoulli_pair (no 1 - sigmoid(phi) by subtraction)
        fbar = mean(f)
        for k in range(phi.shape[0]):
            hit, miss = score_bernoulli_pair(phi[k])
            acc = 0.0
            for i in range(z.shape[0]):
                acc += score_weight(f, i, loo, baseline, fbar) * (hit if z[i, k] == 1 else miss)
            out[k] = acc

    @jit
    def score_combine_categorical(alpha, z, f, loo, baseline, out):
        # alpha (K, C), z (n, K), f (n,) -> out (K, C): sum_i w_i (1[z_ik = c] - p_kc), the
        # score from score_categorical_pair (no 1 - p_kc by subtraction)
        fbar = mean(f)
        for k in range(alpha.shape[0]):
            m, total, rest, cmax = softmax_rest(alpha, k)
            for c in range(alpha.shape[1]):
                hit, miss = score_categorical_pair(alpha, k, c, m, total, rest, cmax)
                acc = 0.0
                for i in range(z.shape[0]):
                    acc += score_weight(f, i, loo, baseline, fbar) * (hit if z[i, k] == c else miss)
                out[k, c] = acc

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
