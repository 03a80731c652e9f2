"""Device functions of the control-variate family (NVIL, MuProp, double control variates), for
Numba CPU and CUDA.

``build(jit, base)`` compiles the plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)`` on top of ``base`` (``reference._cpu.CORE`` or
``reference._cuda.CORE``: ``softmax_stats``, ``sigmoid_prime`` and the scores
``score_bernoulli``, ``score_bernoulli_pair``, ``score_categorical``,
``score_categorical_pair``, accurate relative to themselves at saturated logits), so both fast
backends do the same arithmetic. The formulas mirror
:mod:`reference.estimators.control_variates.numpy_reference`; nothing here validates or
allocates. Accumulations are float64 even for float32 inputs.
"""

from __future__ import annotations

from types import SimpleNamespace


def build(jit, base: SimpleNamespace) -> SimpleNamespace:
    """Compile the control-variate family's device functions with ``jit``."""
    softmax_stats = base.softmax_stats
    softmax_rest = base.softmax_rest
    sigmoid_prime = base.sigmoid_prime
    score_bernoulli = base.score_bernoulli
    score_bernoulli_pair = base.score_bernoulli_pair
    score_categorical = base.score_categorical
    score_categorical_pair = base.score_categorical_pair
    exp = base.exp

    # ------------------------------------------------------------------------ NVIL
    @jit
    def nvil_bernoulli(phi, z, f, shift, scale, out):
        # phi (K,), z (n, K), f (n,) -> out (K,) = sum_i (f_i - shift)/n * scale * s_ik
        n = z.shape[0]
        for k in range(phi.shape[0]):
            hit, miss = score_bernoulli_pair(phi[k])
            acc = 0.0
            for i in range(n):
                acc += (f[i] - shift) / n * scale * (hit if z[i, k] == 1 else miss)
            out[k] = acc

    @jit
    def nvil_categorical(alpha, z, f, shift, scale, out):
        # alpha (K, C), z (n, K), f (n,) -> out (K, C)
        n = z.shape[0]
        for k in range(alpha.shape[0]):
            m, total, rest, cmax = softmax_rest(alpha, k)
            for c in range(alpha.shape[1]):
                hit, miss = score_categorical_pair(alpha, k, c, m, total, rest, cmax)
                acc = 0.0
                for i in range(n):
                    acc += (f[i] - shift) / n * scale * (hit if z[i, k] == c else miss)
                out[k, c] = acc

    # ---------------------------------------------------------------------- MuProp
    @jit
    def muprop_bernoulli(phi, z, f, f_mu, d_mu, out):
        # phi (K,), z (n, K), f (n,), f_mu scalar, d_mu (K,) -> out (K,); the correction
        # p (1 - p) d_mu as sigmoid(phi) sigmoid(-phi) d_mu (1 - p rounds to 0 at phi = 50)
        n, K = z.shape[0], z.shape[1]
        for k in range(K):
            out[k] = sigmoid_prime(phi[k]) * d_mu[k]
        for i in range(n):
            linear = 0.0
            for k in range(K):
                linear += d_mu[k] * score_bernoulli(phi[k], z[i, k])
            w = (f[i] - f_mu - linear) / n
            for k in range(K):
                out[k] += w * score_bernoulli(phi[k], z[i, k])

    @jit
    def muprop_categorical(alpha, z, f, f_mu, d_mu, p, out):
        # alpha (K, C), z (n, K), f (n,), f_mu scalar, d_mu (K, C) -> out (K, C); p (C,)
        # float64 scratch. The correction p_c (d_c - <p, d>) as p_c sum_c' p_c' (d_c - d_c')
        # (c' in order): the first form cancels for the dominant category
        n, K, C = z.shape[0], alpha.shape[0], alpha.shape[1]
        for k in range(K):
            m, total = softmax_stats(alpha, k)
            # a row's p first, in a loop of its own with the base's exp (it vectorizes on the
            # CPU, where libm's is a call per element), read twice below
            for c in range(C):
                p[c] = exp(alpha[k, c] - m) / total
            # out[k, c] accumulates sum_c' p_c' (d_c - d_c') over c' in order
            for c in range(C):
                out[k, c] = 0.0
            for c2 in range(C):
                p2 = p[c2]
                for c in range(C):
                    out[k, c] += p2 * (d_mu[k, c] - d_mu[k, c2])
            for c in range(C):
                out[k, c] = p[c] * out[k, c]
        for i in range(n):
            linear = 0.0
            for k in range(K):
                m, total, rest, cmax = softmax_rest(alpha, k)
                for c in range(C):
                    linear += d_mu[k, c] * score_categorical(alpha, k, c, z[i, k], m, total,
                                                             rest, cmax)
            w = (f[i] - f_mu - linear) / n
            for k in range(K):
                m, total, rest, cmax = softmax_rest(alpha, k)
                for c in range(C):
                    out[k, c] += w * score_categorical(alpha, k, c, z[i, k], m, total, rest,
                                                       cmax)

    # ------------------------------------------------------- double control variates
    @jit
    def dcv_signal(phi, z, f, d, alpha_cv, i):
        # a_i = f_i + alpha_cv gbar_{-i} . s_i, gbar_{-i} the mean of d_j over j != i
        n, K = z.shape[0], z.shape[1]
        c_i = 0.0
        for k in range(K):
            d_sum = 0.0
            for j in range(n):
                d_sum += d[j, k]
            hit, miss = score_bernoulli_pair(phi[k])  # one exp, no branch on z
            c_i += (d_sum - d[i, k]) / (n - 1) * (hit if z[i, k] == 1 else miss)
        return f[i] + alpha_cv * c_i

    @jit
    def double_cv_bernoulli(phi, z, f, d, alpha_cv, out):
        # phi (K,), z (n, K), f (n,), d (n, K) = grad f at the samples -> out (K,)
        # out = sum_i (a_i - abar) s_i / (n - 1) - alpha_cv p (1 - p) dbar, with
        # p (1 - p) = sigmoid(phi) sigmoid(-phi)
        n, K = z.shape[0], z.shape[1]
        a_sum = 0.0
        for i in range(n):
            a_sum += dcv_signal(phi, z, f, d, alpha_cv, i)
        abar = a_sum / n
        for k in range(K):
            out[k] = 0.0
        for i in range(n):
            w = (dcv_signal(phi, z, f, d, alpha_cv, i) - abar) / (n - 1)
            for k in range(K):
                hit, miss = score_bernoulli_pair(phi[k])
                out[k] += w * (hit if z[i, k] == 1 else miss)
        for k in range(K):
            d_sum = 0.0
            for i in range(n):
                d_sum += d[i, k]
            out[k] = out[k] - alpha_cv * sigmoid_prime(phi[k]) * d_sum / n

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
