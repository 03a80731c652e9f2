"""Device functions of the multi-sample family (VIMCO, the unordered set estimator, CARMS), for
Numba CPU and CUDA.

``build(jit, base)`` compiles the plain-Python bodies with ``numba.njit`` or
``numba.cuda.jit(device=True)`` on top of ``base`` (``reference._cpu.CORE`` or
``reference._cuda.CORE``; the scores come from its ``score_bernoulli_pair`` and
``score_categorical_pair``, accurate relative to themselves at saturated logits). The
arithmetic mirrors :mod:`reference.estimators.multi_sample.numpy_reference` step for step
(same sums in the same order); nothing here validates or allocates: scratch arrays come from the kernels.
"""

from __future__ import annotations

import math
from types import SimpleNamespace


def build(jit, base: SimpleNamespace) -> SimpleNamespace:
    """Compile the multi-sample family's device functions with ``jit``."""
    softmax_stats = base.softmax_stats
    row_argmax = base.row_argmax
    softmax_rest = base.softmax_rest
    score_bernoulli_pair = base.score_bernoulli_pair
    score_categorical_pair = base.score_categorical_pair
    log = base.log

    @jit
    def vimco_signals(f, w):
        # f (n,) -> w (n,): Lhat - Lhat_{-i}, the module docstring's arithmetic
        n = f.shape[0]
        m = f[0]
        for j in range(1, n):
            m = max(m, f[j])
        S = 0.0
        for j in range(n):
            S += math.exp(f[j] - m)
        for i in range(n):
            first = 1 if i == 0 else 0
            mi = f[first]
            tot = 0.0
            for j in range(n):
                if j != i:
                    mi = max(mi, f[j])
                    tot += f[j]
            fbar = tot / (n - 1)
            Si = 0.0
            for j in range(n):
                if j != i:
                    Si += math.exp(f[j] - mi)
            Si += math.exp(fbar - mi)
            w[i] = (m + math.log(S)) - (mi + math.log(Si))

    @jit
    def weighted_score_entry_bernoulli(phi, k, z, w):
        # sum_i w_i (z_ik - sigmoid(phi_k)), the score from score_bernoulli_pair (sigmoid(-phi_k)
        # where z_ik = 1: 1 - sigmoid(phi_k) would round to 0 at saturated logits)
        hit, miss = score_bernoulli_pair(phi[k])
        acc = 0.0
        for i in range(z.shape[0]):
            acc += w[i] * (hit if z[i, k] == 1 else miss)
        return acc

    @jit
    def weighted_scores_bernoulli(phi, z, w, out):
        # out_k = sum_i w_i (z_ik - sigmoid(phi_k))
        for k in range(phi.shape[0]):
            out[k] = weighted_score_entry_bernoulli(phi, k, z, w)

    @jit
    def weighted_score_row(alpha, k, z, w, out):
        # out_kc = sum_i w_i (1[z_ik = c] - p_kc) for one variable k, the score from
        # score_categorical_pair (1 - p_kc as the sum of the other categories' terms)
        m, total, rest, cmax = softmax_rest(alpha, k)
        for c in range(alpha.shape[1]):
            hit, miss = score_categorical_pair(alpha, k, c, m, total, rest, cmax)
            acc = 0.0
            for i in range(z.shape[0]):
                acc += w[i] * (hit if z[i, k] == c else miss)
            out[k, c] = acc

    @jit
    def weighted_scores_categorical(alpha, z, w, out):
        for k in range(alpha.shape[0]):
            weighted_score_row(alpha, k, z, w, out)

    @jit
    def config_index(z_row, C):
        x = 0
        for k in range(z_row.shape[0]):
            x = x * C + z_row[k]
        return x

    @jit
    def gumbel_top(log_q, u, idx, val, g):
        # the idx.shape[0] largest G_x = log q(x) - log(-log u_x) in decreasing order, ties to
        # the lower index (an insertion that only passes strictly smaller values); log_q (N,)
        # the joint table of numpy_reference.joint_log_probs (the host computes it once per
        # batch element, not once per replicate and configuration); g (N,) float64 scratch.
        # Every G first, in a loop of its own with the base's log and flat selects (u_x = 0
        # gives -inf, as the reference's np.where; in float64 for float32 noise too), where it
        # vectorizes on the CPU: libm's log is a call per element, two per configuration
        N = u.shape[0]
        for x in range(N):
            ux = u[x]
            gx = log_q[x] - log(-log(ux if ux > 0.0 else 0.5))
            g[x] = gx if ux > 0.0 else -math.inf
        m = idx.shape[0]
        count = 0
        for x in range(N):
            gx = g[x]
            if count == m and not gx > val[m - 1]:
                continue
            pos = count if count < m else m - 1
            while pos > 0 and val[pos - 1] < gx:
                if pos < m:
                    idx[pos] = idx[pos - 1]
                    val[pos] = val[pos - 1]
                pos -= 1
            idx[pos] = x
            val[pos] = gx
            if count < m:
                count += 1

    @jit
    def indices_to_configs(idx, C, z):
        # z[i] = the configuration of index idx[i]
        K = z.shape[1]
        for i in range(z.shape[0]):
            x = idx[i]
            for k in range(K - 1, -1, -1):
                z[i, k] = x % C
                x = x // C

    @jit
    def sampled(idx, x):
        # whether configuration index x is one of the sample's, idx (n,) float64
        inside = False
        for i in range(idx.shape[0]):
            if idx[i] == x:
                inside = True
        return inside

    @jit
    def lse_rest(log_q, idx):
        # log of the mass of the configurations outside the sample, whose configuration
        # indices are idx (n,) (float64, exact: a table of C**K entries has fewer than 2**53),
        # in two passes: max, then sum. The indices come in computed once: recomputed from the
        # configurations for every x of both passes, they cost 4 N n K operations a replicate
        N = log_q.shape[0]
        mx = -math.inf
        for x in range(N):
            if not sampled(idx, x):
                mx = max(mx, log_q[x])
        if mx == -math.inf:
            return mx
        s = 0.0
        for x in range(N):
            if not sampled(idx, x):
                s += math.exp(log_q[x] - mx)
        return mx + math.log(s)

    @jit
    def subset_log_probs(lp, log_rest, logG):
        # logG[mask] = log G(U) for the subset U of the samples in mask (module docstring)
        n = lp.shape[0]
        logG[0] = 0.0
        for mask in range(1, 1 << n):
            mx = -math.inf
            for v in range(n):
                if mask >> v & 1:
                    mx = max(mx, lp[v] + logG[mask ^ (1 << v)])
            s = 0.0
            for v in range(n):
                if mask >> v & 1:
                    s += math.exp(lp[v] + logG[mask ^ (1 << v)] - mx)
            num = mx + math.log(s)
            dmx = log_rest
            for v in range(n):
                if mask >> v & 1:
                    dmx = max(dmx, lp[v])
            ds = math.exp(log_rest - dmx)
            for v in range(n):
                if mask >> v & 1:
                    ds += math.exp(lp[v] - dmx)
            logG[mask] = num - (dmx + math.log(ds))

    @jit
    def unord_weights(lp, log_rest, f, logG, w):
        # w_i = p(s_i) R(S, s_i) (f_i - B(S, s_i)), eq. 10
        n = lp.shape[0]
        subset_log_probs(lp, log_rest, logG)
        full = (1 << n) - 1
        for i in range(n):
            wo_i = full ^ (1 << i)
            base = 0.0
            for j in range(n):
                if j == i:
                    base += math.exp(lp[j]) * f[j]
                else:
                    base += math.exp(lp[j] + logG[wo_i ^ (1 << j)] - logG[wo_i]) * f[j]
            w[i] = math.exp(lp[i] + logG[wo_i] - logG[full]) * (f[i] - base)

    @jit
    def unord_row(log_q, z, f, C, lp, logG, w):
        # the weights of one replicate: log_q (C**K,) joint table, z (n, K), f (n,); scratch
        # lp (n,), logG (2**n,), w (n,); w holds the samples' configuration indices until
        # unord_weights writes the weights over them
        for i in range(z.shape[0]):
            x = config_index(z[i], C)
            lp[i] = log_q[x]
            w[i] = x
        log_rest = lse_rest(log_q, w)
        unord_weights(lp, log_rest, f, logG, w)

    @jit
    def joint_table(log_p, lq):
        # lq (C**K,) = log q(x) of every configuration index x (z_0 most significant) from the
        # per-variable log probabilities log_p (K, C) (numpy_reference.category_log_probs),
        # summed over k in order like joint_log_probs: each variable is appended as the least
        # significant digit, in place from the top index down (no index is divided)
        K, C = log_p.shape[0], log_p.shape[1]
        lq[0] = 0.0
        size = 1
        for k in range(K):
            for x in range(size - 1, -1, -1):
                base = lq[x]
                for c in range(C - 1, -1, -1):
                    lq[x * C + c] = base + log_p[k, c]
            size *= C

    @jit
    def top_configs(lq, top):
        # top (r,) = the indices of the r largest lq in decreasing order (ties to the lower index)
        r = top.shape[0]
        count = 0
        for x in range(lq.shape[0]):
            v = lq[x]
            if count == r and not v > lq[top[r - 1]]:
                continue
            pos = count if count < r else r - 1
            while pos > 0 and lq[top[pos - 1]] < v:
                if pos < r:
                    top[pos] = top[pos - 1]
                pos -= 1
            top[pos] = x
            if count < r:
                count += 1

    @jit
    def set_log_prob(lq, members, top, E, lp, logG):
        # log p(S) of the set of increasing configuration indices members (n,), with the outside mass
        # of _log_rest_of_sets (max, then exp(lq - max) summed in index order). Its max is the
        # first of the top (n + 1) configurations outside the set, so each term is read from
        # E[r, x] = exp(lq[x] - lq[top[r]]) (the same numbers, computed once per table);
        # scratch lp (n,), logG (2**n,)
        n = members.shape[0]
        for i in range(n):
            lp[i] = lq[members[i]]
        hit = -1
        for r in range(top.shape[0]):
            inside = False
            for i in range(n):
                if members[i] == top[r]:
                    inside = True
            if not inside:
                hit = r
                break
        log_rest = -math.inf
        if hit >= 0 and lq[top[hit]] > -math.inf:
            s = 0.0
            nxt = 0  # members are increasing (all_subsets): one merge pass skips them
            for x in range(lq.shape[0]):
                if nxt < n and members[nxt] == x:
                    nxt += 1
                else:
                    s += E[hit, x]
            log_rest = lq[top[hit]] + math.log(s)
        subset_log_probs(lp, log_rest, logG)
        return logG[(1 << n) - 1]

    @jit
    def inclusion(lq, sets, logps, logpi, acc, lp, logG, top, E):
        # logpi[x] = log sum_{S ni x} p(S) over the sets (M, n), two passes (max, then sum) in
        # the order sets-then-members; scratch logps (M,), acc (N,), lp (n,), logG (2**n,),
        # top (min(n + 1, N),), E (min(n + 1, N), N)
        M, n = sets.shape[0], sets.shape[1]
        top_configs(lq, top)
        for r in range(top.shape[0]):
            mx = lq[top[r]]
            for x in range(lq.shape[0]):
                E[r, x] = math.exp(lq[x] - mx) if mx > -math.inf else 0.0
        for m in range(M):
            logps[m] = set_log_prob(lq, sets[m], top, E, lp, logG)
        for x in range(lq.shape[0]):
            logpi[x] = -math.inf
            acc[x] = 0.0
        for m in range(M):
            for i in range(n):
                x = sets[m, i]
                logpi[x] = max(logpi[x], logps[m])
        for m in range(M):
            for i in range(n):
                x = sets[m, i]
                acc[x] += math.exp(logps[m] - logpi[x])
        for x in range(lq.shape[0]):
            logpi[x] = logpi[x] + math.log(acc[x])

    @jit
    def wor_weights(lq, logpi, z, f, baseline, C, w):
        # w_i = p(s_i) / pi(s_i) (f_i - b)
        for i in range(z.shape[0]):
            x = config_index(z[i], C)
            w[i] = math.exp(lq[x] - logpi[x]) * (f[i] - baseline)

    # ------------------------------------------------------------------------------ CARMS
    @jit
    def carms_order(C, m, order):
        # order (C,): the m-th pair a < b (lexicographic) gives b, the others increasing, a
        a = 0
        while m >= C - 1 - a:
            m -= C - 1 - a
            a += 1
        b = a + 1 + m
        order[0] = b
        j = 1
        for c in range(C):
            if c != a and c != b:
                order[j] = c
                j += 1
        order[C - 1] = a

    @jit
    def carms_order_index(u_perm, C):
        M = C * (C - 1) // 2
        m = int(math.floor(u_perm * M))
        return m if m < M - 1 else M - 1

    @jit
    def carms_g(t, n):
        # g(t) = 1 - (1 - t)**(1/(n-1)), g(1) = 1
        if t >= 1.0:
            return 1.0
        return -math.expm1(math.log1p(-t) / (n - 1))

    @jit
    def carms_survival(s, t, n):
        # S(s, t) = (1 - g(s) - g(t))_+**(n-1)
        base = 1.0 - carms_g(s, n) - carms_g(t, n)
        if base > 0:
            return base ** (n - 1)
        return 0.0

    @jit
    def carms_slack(gs, rt, gt, rs):
        # 1 - g(s) - g(t) as r(t) - g(s) or r(s) - g(t), the one with smaller operands
        if max(rt, gs) <= max(rs, gt):
            return rt - gs
        return rs - gt

    @jit
    def antithetic_box(La, Ra, Ta, Ua, pa, Lb, Rb, Tb, Ub, pb):
        # n = 2: min(pa, pb, Ra - Ub, Tb - La)_+ (numpy_reference._antithetic_box)
        X = carms_slack(Ub, Ra, Ua, Rb)
        Y = carms_slack(La, Tb, Lb, Ta)
        return max(min(min(pa, pb), min(X, Y)), 0.0)

    @jit
    def diffpow(x, y, m):
        tot = 0.0
        for ell in range(m):
            tot = tot + x ** (m - 1 - ell) * y**ell
        return tot

    @jit
    def pair_box(La, Ra, Ta, Ua, pa, Lb, Rb, Tb, Ub, pb, n):
        # n >= 3: the box probability without inclusion-exclusion (numpy_reference._pair_box)
        m = n - 1
        rTa = Ta ** (1.0 / m)
        rUa = Ua ** (1.0 / m)
        rTb = Tb ** (1.0 / m)
        rUb = Ub ** (1.0 / m)
        qa = pa / Ta if Ta > 0 else 1.0
        qb = pb / Tb if Tb > 0 else 1.0
        a = rTa - rUa if qa > 0.5 else rTa * -math.expm1(math.log1p(-qa) / m)
        b = rTb - rUb if qb > 0.5 else rTb * -math.expm1(math.log1p(-qb) / m)
        gLa = carms_g(La, n) if La <= 0.5 else 1.0 - rTa
        gRa = carms_g(Ra, n) if Ra <= 0.5 else 1.0 - rUa
        gLb = carms_g(Lb, n) if Lb <= 0.5 else 1.0 - rTb
        gRb = carms_g(Rb, n) if Rb <= 0.5 else 1.0 - rUb
        A = carms_slack(gLa, rTb, gLb, rTa)
        if A <= 0:
            return 0.0
        Aa = carms_slack(gRa, rTb, gLb, rUa)
        Ab = carms_slack(gLa, rUb, gRb, rTa)
        c = carms_slack(gRa, rUb, gRb, rUa)
        if c >= 0:
            inside = 0.0
            cmj = 1.0
            for j in range(1, m + 1):
                cmj = cmj * (m - j + 1) / j
                if j < 2:
                    continue
                inner = 0.0
                cjl = 1.0
                for ell in range(1, j):
                    cjl = cjl * (j - ell + 1) / ell
                    inner = inner + cjl * a**ell * b ** (j - ell)
                inside = inside + cmj * c ** (m - j) * inner
            return inside
        if Aa >= 0 and Ab >= 0:
            part1 = 0.0
            cml = 1.0
            for ell in range(1, m):
                cml = cml * (m - ell + 1) / ell
                part1 = part1 + cml * Ab**ell * b ** (m - ell)
            return part1 + (-c) * diffpow(b, Aa, m)
        if Aa >= 0:
            return a * diffpow(A, Aa, m)
        if Ab >= 0:
            return b * diffpow(A, Ab, m)
        return A**m

    @jit
    def carms_ratio_row(alpha, k, n, order, bnd, P, ratio):
        # P (C, C): the pair law of variable k averaged over the orders; ratio = p_a p_b / P;
        # scratch order (C,), bnd (4, C): the rows L, R and (n = 2) the tails T, U
        C = alpha.shape[1]
        mx, total = softmax_stats(alpha, k)
        M = C * (C - 1) // 2
        for a in range(C):
            for b in range(C):
                P[a, b] = 0.0
        for m in range(M):
            carms_order(C, m, order)
            acc = 0.0
            for j in range(C):
                c = order[j]
                bnd[0, c] = acc
                acc = acc + math.exp(alpha[k, c] - mx) / total
                bnd[1, c] = 1.0 if j == C - 1 else acc
            acc = 0.0
            for j in range(C - 1, -1, -1):
                c = order[j]
                bnd[3, c] = acc
                acc = acc + math.exp(alpha[k, c] - mx) / total
                bnd[2, c] = 1.0 if j == 0 else acc
            for a in range(C):
                pa = math.exp(alpha[k, a] - mx) / total
                for b in range(C):
                    pb = math.exp(alpha[k, b] - mx) / total
                    if n == 2:
                        P[a, b] += antithetic_box(bnd[0, a], bnd[1, a], bnd[2, a], bnd[3, a], pa,
                                                  bnd[0, b], bnd[1, b], bnd[2, b], bnd[3, b], pb)
                    else:
                        P[a, b] += pair_box(bnd[0, a], bnd[1, a], bnd[2, a], bnd[3, a], pa,
                                            bnd[0, b], bnd[1, b], bnd[2, b], bnd[3, b], pb, n)
        for a in range(C):
            for b in range(a + 1, C):
                sym = 0.5 * (P[a, b] + P[b, a])
                P[a, b] = sym
                P[b, a] = sym
        for a in range(C):
            pa = math.exp(alpha[k, a] - mx) / total
            for b in range(C):
                pb = math.exp(alpha[k, b] - mx) / total
                P[a, b] = P[a, b] / M
                ratio[a, b] = pa * pb / P[a, b] if P[a, b] > 0 else 0.0

    @jit
    def carms_sample_row(alpha, u, u_perm, order, running, z):
        # one replicate: u (n, K), u_perm (K,), scratch order, running (C,) -> z (n, K)
        n, K = u.shape[0], u.shape[1]
        C = alpha.shape[1]
        for k in range(K):
            carms_order(C, carms_order_index(u_perm[k], C), order)
            mx, _ = row_argmax(alpha, k)
            acc = 0.0
            for j in range(C):
                acc = acc + math.exp(alpha[k, order[j]] - mx)
                running[j] = acc
            D = 0.0
            for i in range(n):
                D = D + (-math.log1p(-u[i, k]))
            for i in range(n):
                if D > 0:
                    d = (-math.log1p(-u[i, k])) / D
                else:
                    d = 1.0 / n
                if d >= 1.0:
                    v = 1.0
                else:
                    v = -math.expm1((n - 1) * math.log1p(-d))
                thr = v * running[C - 1]
                pos = C - 1
                for j in range(C):
                    if thr < running[j]:
                        pos = j
                        break
                z[i, k] = order[pos]

    @jit
    def carms_weights_k(ratio, k, z, f, w):
        # w_i = 1/(n(n-1)) sum_{j != i} r_k(z_ik, z_jk) (f_i - f_j), ratio (K, C, C)
        n = z.shape[0]
        for i in range(n):
            acc = 0.0
            for j in range(n):
                if j != i:
                    acc = acc + ratio[k, z[i, k], z[j, k]] * (f[i] - f[j])
            w[i] = acc / (n * (n - 1))

    @jit
    def carms_grad_bernoulli(phi, ratio, z, f, w, out):
        for k in range(phi.shape[0]):
            carms_weights_k(ratio, k, z, f, w)
            out[k] = weighted_score_entry_bernoulli(phi, k, z, w)

    @jit
    def carms_grad_categorical(alpha, ratio, z, f, w, out):
        for k in range(alpha.shape[0]):
            carms_weights_k(ratio, k, z, f, w)
            weighted_score_row(alpha, k, z, w, out)

    names = dict(locals())
    return SimpleNamespace(**{k: v for k, v in names.items()
                              if k not in ("jit", "base", "names") and callable(v)})
