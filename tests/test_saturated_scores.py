"""Score terms accurate relative to themselves at saturated logits, on every backend (issue 16).

Every estimator whose combine phase uses the score ``grad log q(z)`` (``z - sigmoid(phi)``,
``1[z_k = c] - p_kc``) computes it without forming ``1 - sigmoid(phi)`` or ``1 - p_kc`` by
subtraction (:meth:`reference.distributions.Distribution.score`, and
``score_bernoulli``/``softmax_complement`` of :mod:`reference._core` on the fast backends).
The old forms gave ``1 - sigmoid(50) = 0`` where the score is ``sigmoid(-50) = 1.9e-22``, so a
replicate's estimate at ``phi = 50`` was exactly 0 instead of ``f * 1.9e-22``
(:func:`test_old_forms_lose_the_saturated_scores` pins both facts).

The check, per converted estimator, distribution and backend (numpy, cpu, cuda: the CUDA
simulator without a GPU, tiny grid): logits with entries ``+-50``, ``+-20`` and ``0.7``, a
few replicates on fixed noise; the backend's own queries (samples, relaxed points, aux arrays)
and the objective's answers there are taken as exact inputs, and each replicate's estimate is
evaluated again from them in 50-digit mpmath, written out from the estimator's definition
(module docstrings of the families; the only code taken from the package is
``carms_order``, CARMS's documented layout of the category orders). Every entry must satisfy
``|estimate - truth| <= 1e-13 * terms``, where ``terms`` is the same formula evaluated on the
magnitudes (class :class:`T`: every sum and difference replaced by the sum of the absolute
values of its operands, down to the inputs; a difference of two exact inputs, which float64
rounds once, counts as itself; the log-space weights of VIMCO get the magnitude of their
logs): float64 evaluation errs by a small multiple of ``eps * terms``, whatever cancellation
the entry has between its terms. So the tolerance is relative to each entry's own terms, not
to its value (an entry whose terms cancel, such as REINFORCE-LOO's ``-p_kc sum_i w_i`` with
``sum_i w_i = 0``, cannot be relative-accurate in any float form); at ``phi = 50`` the terms
are of the size of the score entry itself, ``1.9e-22 |f|``. An entry whose terms are all
exactly zero must be exactly zero. The old score fails the check at the saturated entries for
every converted estimator except those whose weights sum to zero (:data:`ZERO_SUM`,
:func:`test_the_check_rejects_the_old_score`, which runs the NumPy backends with the old
``Distribution.score`` patched back; the old kernels fail it on every backend too, measured
when the change was made).

CARMS is checked with ``n = 2``: for ``n >= 3`` its pair-law ratio is itself accurate only to
about ``5e-8`` at saturated logits (the family docstring's measurement), whatever the score.
"""

from __future__ import annotations

import functools
import itertools

import mpmath
import numpy as np
import pytest

from reference import REGISTRY, random_table
from reference.contract import evaluate
from reference.estimators.multi_sample.numpy_reference import carms_order
from reference.estimators.rebar import QuadraticSurrogate
from reference.objectives import RowQuadratic

DPS = 50
RTOL = 1e-13
R = 3

PHI = np.array([50.0, -50.0, 20.0, -20.0, 0.7])
ALPHA = np.array([[50.0, 0.0, -20.0],
                  [0.7, -50.0, 20.0],
                  [0.7, 0.0, -0.7]])

#: estimator -> options (the samples' ``n`` and the rest)
CASES = {
    "reinforce": {"n": 3, "baseline": 0.25},
    "reinforce_loo": {"n": 3},
    "nvil": {"n": 3, "baseline": -0.2, "c": 0.1, "v": 4.0},
    "muprop": {"n": 2},
    "double_cv": {"n": 3, "alpha_cv": 0.5},
    "vimco": {"n": 3},
    "unord": {"n": 3},
    "reinforce_wor": {"n": 2, "baseline": 0.5},
    "carms": {"n": 2},
    # tau = 0.5: the relaxation's terms at the saturated rows (about exp(-50 / tau)) are then
    # far below the score term's 1.9e-22, which decides those entries
    "rebar": {"eta": 0.3, "tau": 0.5, "n": 2},
    "relax": {"surrogate": QuadraticSurrogate(0.8, 0.4), "tau": 0.5, "n": 2},
}

PARAMS = [
    pytest.param(name, dist, backend, id=f"{name}-{dist}-{backend}")
    for name in CASES
    for dist in ("bernoulli", "categorical")
    if dist in REGISTRY[name].distributions
    for backend in ("numpy", "cpu", "cuda")
]


# ---------------------------------------------------------------- mpmath building blocks
class T:
    """A value and its magnitude (the formula on absolute values): ``+``/``-`` add the
    magnitudes, ``*`` and ``/`` (by positive denominators) multiply and divide them."""

    __slots__ = ("v", "a")

    def __init__(self, v, a=None):
        self.v = mpmath.mpf(v)
        self.a = abs(self.v) if a is None else a

    def __add__(self, o):
        o = _t(o)
        return T(self.v + o.v, self.a + o.a)

    __radd__ = __add__

    def __sub__(self, o):
        o = _t(o)
        return T(self.v - o.v, self.a + o.a)

    def __rsub__(self, o):
        return _t(o) - self

    def __neg__(self):
        return T(-self.v, self.a)

    def __mul__(self, o):
        o = _t(o)
        return T(self.v * o.v, self.a * o.a)

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = _t(o)
        return T(self.v / o.v, self.a / abs(o.v))


def _t(x) -> T:
    return x if isinstance(x, T) else T(x)


def xd(a, b) -> T:
    """``a - b`` of two exact inputs: float64 rounds it once, so its magnitude is itself."""
    return T(mpmath.mpf(a) - mpmath.mpf(b))


def tsum(xs) -> T:
    out = T(0)
    for x in xs:
        out = out + x
    return out


def mp_probs(dist: str, params: np.ndarray) -> list[list]:
    """``p_kc`` in mpmath, rows ``(K, C)`` (Bernoulli: ``(1 - sigmoid, sigmoid)``)."""
    rows = []
    for row in (np.stack([np.zeros_like(params), params], -1) if dist == "bernoulli" else params):
        e = [mpmath.exp(mpmath.mpf(float(a))) for a in row]
        s = mpmath.fsum(e)
        rows.append([x / s for x in e])
    return rows


def mp_score(dist: str, p: list[list], z) -> list:
    """``grad log q(z)`` as exact values (T without cancellation: magnitude = |value|):
    ``(K,)`` for Bernoulli (``z_k - p_k1``), ``(K, C)`` for categorical."""
    out = []
    for k, zk in enumerate(z):
        row = [T((1 if c == zk else 0) - p[k][c]) for c in range(len(p[k]))]
        out.append(row[1] if dist == "bernoulli" else row)
    return out


def weighted(dist: str, s: list[list], w: list) -> list:
    """``sum_i w_i s_i`` per entry (``w_i`` a T or a list of per-variable Ts)."""
    K = len(s[0])
    out = []
    for k in range(K):
        wk = [wi[k] if isinstance(wi, list) else wi for wi in w]
        if dist == "bernoulli":
            out.append(tsum(wk[i] * s[i][k] for i in range(len(w))))
        else:
            out.append([tsum(wk[i] * s[i][k][c] for i in range(len(w)))
                        for c in range(len(s[0][k]))])
    return out


def flat(g) -> list:
    return [x for row in g for x in (row if isinstance(row, list) else [row])]


# ------------------------------------------------------------ the per-replicate formulas
def truth_score_family(name, dist, p, z, f, opts):
    """REINFORCE, REINFORCE-LOO, NVIL: ``sum_i w_i s(z_i)``."""
    n = len(f)
    F = [T(x) for x in f]
    if name == "reinforce":
        w = [xd(fi, opts["baseline"]) / n for fi in f]
    elif name == "reinforce_loo":
        fbar = tsum(F) / n
        w = [(Fi - fbar) / (n - 1) for Fi in F]
    else:
        scale = 1 / max(mpmath.mpf(1), mpmath.sqrt(opts["v"]))
        w = [(Fi - (T(opts["baseline"]) + T(opts["c"]))) / n * scale for Fi in F]
    return weighted(dist, [mp_score(dist, p, zi) for zi in z], w)


def truth_vimco(dist, p, z, f, opts):
    """``sum_i (Lhat - Lhat_{-i}) s(z_i)``; the signal's magnitude is ``|Lhat| + |Lhat_{-i}|``
    plus ``2 max |f|`` (both logs are computed shifted by a maximum)."""
    n = len(f)
    fm = [mpmath.mpf(x) for x in f]
    big = max(abs(x) for x in fm)
    L = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in fm) / n)
    w = []
    for i in range(n):
        others = [fm[j] for j in range(n) if j != i]
        gm = mpmath.fsum(others) / (n - 1)
        Li = mpmath.log((mpmath.fsum(mpmath.exp(x) for x in others) + mpmath.exp(gm)) / n)
        w.append(T(L - Li, abs(L) + abs(Li) + 2 * big))
    return weighted(dist, [mp_score(dist, p, zi) for zi in z], w)


def _joint(p, x) -> mpmath.mpf:
    return mpmath.fprod(p[k][c] for k, c in enumerate(x))


def _set_prob(p, U, removed) -> mpmath.mpf:
    """``p^{D\\A}(U)``: the probability of drawing the set ``U`` first (any order) without
    replacement from the domain without ``A`` (``removed``), summed over the orderings."""
    base = 1 - mpmath.fsum(_joint(p, a) for a in removed)
    tot = mpmath.mpf(0)
    for order in itertools.permutations(U):
        acc, left = mpmath.mpf(1), base
        for u in order:
            q = _joint(p, u)
            acc *= q / left
            left -= q
        tot += acc
    return tot


def truth_unord(dist, p, z, f, opts):
    """Kool et al. 2020, eq. 10: ``sum_s p(s) R(S, s) (f(s) - B(S, s)) s(s)``."""
    S = [tuple(int(c) for c in zi) for zi in z]
    pS = _set_prob(p, S, [])
    w = []
    for i, s in enumerate(S):
        rest = [x for x in S if x != s]
        p_rest = _set_prob(p, rest, [s])
        Rs = p_rest / pS
        B = T(0)
        for j, s2 in enumerate(S):
            R2 = 1 if j == i else _set_prob(p, [x for x in rest if x != s2], [s, s2]) / p_rest
            B = B + _joint(p, s2) * R2 * T(f[j])
        w.append(_joint(p, s) * Rs * (T(f[i]) - B))
    return weighted(dist, [mp_score(dist, p, zi) for zi in z], w)


@functools.cache
def _inclusion(dist, params_key, n):
    """``pi(x) = P(x in S)`` for every configuration, by summing ``p(S')`` over all sets."""
    params = np.array(params_key)
    p = mp_probs(dist, params)
    K, C = len(p), len(p[0])
    configs = list(itertools.product(range(C), repeat=K))
    pi = {x: mpmath.mpf(0) for x in configs}
    for Sp in itertools.combinations(configs, n):
        ps = _set_prob(p, list(Sp), [])
        for x in Sp:
            pi[x] += ps
    return pi


def truth_wor(dist, p, z, f, opts, params):
    """``sum_s p(s) / pi(s) (f(s) - b) s(s)``, ``pi`` the exact inclusion probability."""
    pi = _inclusion(dist, tuple(map(tuple, np.atleast_2d(params))) if dist == "categorical"
                    else tuple(params), len(f))
    w = []
    for i, zi in enumerate(z):
        x = tuple(int(c) for c in zi)
        w.append(_joint(p, x) / pi[x] * xd(f[i], opts["baseline"]))
    return weighted(dist, [mp_score(dist, p, zi) for zi in z], w)


def _carms_pair_law_n2(prow):
    """``P(a, b)`` of the antithetic pair (``n = 2``, ``v_2 = 1 - v_1``) with the order summed
    out: ``(1/M) sum_m |[L_a, R_a) ∩ (1 - R_b, 1 - L_b]|`` (ARMS/CARMS, module docstring)."""
    C = len(prow)
    M = C * (C - 1) // 2
    P = [[mpmath.mpf(0)] * C for _ in range(C)]
    for m in range(M):
        o = carms_order(C, m)
        L, Rr, acc = [None] * C, [None] * C, mpmath.mpf(0)
        for j, c in enumerate(o):
            L[c] = acc
            acc = acc + prow[c]
            Rr[c] = mpmath.mpf(1) if j == C - 1 else acc
        for a in range(C):
            for b in range(C):
                lo, hi = max(L[a], 1 - Rr[b]), min(Rr[a], 1 - L[b])
                P[a][b] += max(hi - lo, 0) / M
    return P


def truth_carms(dist, p, z, f, opts):
    """``sum_i w_ik s_ik``, ``w_ik = 1/(n(n-1)) sum_{j != i} r_k(z_ik, z_jk) (f_i - f_j)``,
    ``r_k(a, b) = p_a p_b / P_k(a, b)``; ``n = 2`` (the antithetic pair)."""
    n = len(f)
    assert n == 2
    laws = [_carms_pair_law_n2(row) for row in p]
    w = []
    for i in range(n):
        wi = []
        for k in range(len(p)):
            acc = T(0)
            for j in range(n):
                if j != i:
                    a, b = int(z[i][k]), int(z[j][k])
                    P = laws[k][a][b]
                    r = p[k][a] * p[k][b] / P if P > 0 else mpmath.mpf(0)
                    acc = acc + r * xd(f[i], f[j])
            wi.append(acc / (n * (n - 1)))
        w.append(wi)
    return weighted(dist, [mp_score(dist, p, zi) for zi in z], w)


def _jvp(dist, p, d):
    """``J^T d`` of the mean map: ``p (1 - p) d`` or ``p_c (d_c - <p, d>)``, the latter
    written ``p_c sum_c' p_c' (d_c - d_c')`` so that its terms (the magnitude) carry no
    cancellation: the form ``d_c - <p, d>`` would make the terms of the dominant category's
    entry ``|d|`` where the entry is ``1.9e-22 |d|``."""
    if dist == "bernoulli":
        return [p[k][1] * p[k][0] * T(d[k]) for k in range(len(p))]
    C = len(p[0])
    return [[p[k][c] * tsum(p[k][c2] * xd(d[k][c], d[k][c2]) for c2 in range(C))
             for c in range(C)] for k in range(len(p))]


def truth_muprop(dist, p, z, f, opts, f_mu, d_mu):
    """``(1/n) sum_i [f_i - f(mu) - grad f(mu) . s_i] s_i + J^T grad f(mu)``."""
    n = len(f)
    s = [mp_score(dist, p, zi) for zi in z]
    dflat = [T(x) for x in np.asarray(d_mu).ravel()]
    w = []
    for i in range(n):
        linear = tsum(dv * sv for dv, sv in zip(dflat, flat(s[i]), strict=True))
        w.append((xd(f[i], f_mu) - linear) / n)
    g = weighted(dist, s, w)
    corr = _jvp(dist, p, d_mu)
    if dist == "bernoulli":
        return [g[k] + corr[k] for k in range(len(g))]
    return [[g[k][c] + corr[k][c] for c in range(len(g[k]))] for k in range(len(g))]


def truth_double_cv(dist, p, z, f, opts, d):
    """``1/(n-1) sum_i (a_i - abar) s_i - alpha_cv p (1 - p) dbar`` with ``a_i = f_i +
    alpha_cv gbar_{-i} . s_i``, ``gbar_{-i}`` the mean of ``d_j`` over ``j != i``."""
    n, K = len(f), len(p)
    acv = opts["alpha_cv"]
    s = [mp_score(dist, p, zi) for zi in z]
    D = [[T(x) for x in row] for row in d]
    dsum = [tsum(D[j][k] for j in range(n)) for k in range(K)]
    a = [T(f[i]) + acv * tsum((dsum[k] - D[i][k]) / (n - 1) * s[i][k] for k in range(K))
         for i in range(n)]
    abar = tsum(a) / n
    w = [(ai - abar) / (n - 1) for ai in a]
    g = weighted(dist, s, w)
    return [g[k] - acv * p[k][1] * p[k][0] * dsum[k] / n for k in range(K)]


def truth_rebar(dist, p, z, f, opts, cvals, dc, points, aux):
    """REBAR/RELAX (family docstring), averaged over the ``n`` samples: Bernoulli
    ``w s(b) + eta dc(y) y (1 - y) / tau - eta dc(y~) y~ (1 - y~) / tau dz~``, categorical
    ``w s(b) + eta y (dc_y - <y, dc_y>) / tau - eta ((1 - wt) h + p <wt, h>)``, ``h = y~ (dc_y~
    - <y~, dc_y~>) / tau``, with ``w = f(b) - eta c(y~)`` (``c = f`` without a surrogate)."""
    n = len(f)
    eta, tau = opts["eta"], opts["tau"]
    K = len(p)
    out = None
    for i in range(n):
        w = T(f[i]) - eta * T(cvals[n + i])
        s = mp_score(dist, p, z[i])
        if dist == "bernoulli":
            gi = []
            for k in range(K):
                y, yt = T(points[i][k]), T(points[n + i][k])
                gi.append(w * s[k] + eta * T(dc[i][k]) * y * xd(1, y.v) / tau
                          - eta * T(dc[n + i][k]) * yt * xd(1, yt.v) / tau * T(aux["dzt"][i][k]))
        else:
            gi = []
            for k in range(K):
                C = len(p[k])
                y = [T(points[i][k][c]) for c in range(C)]
                yt = [T(points[n + i][k][c]) for c in range(C)]
                dy = [T(dc[i][k][c]) for c in range(C)]
                dyt = [T(dc[n + i][k][c]) for c in range(C)]
                wt = [T(aux["wt"][i][k][c]) for c in range(C)]
                sy = tsum(y[c] * dy[c] for c in range(C))
                st = tsum(yt[c] * dyt[c] for c in range(C))
                h = [yt[c] * (dyt[c] - st) / tau for c in range(C)]
                sw = tsum(wt[c] * h[c] for c in range(C))
                gi.append([w * s[k][c] + eta * (y[c] * (dy[c] - sy) / tau)
                           - eta * (xd(1, wt[c].v) * h[c] + p[k][c] * sw) for c in range(C)])
        out = gi if out is None else [
            (o + g) if not isinstance(o, list) else [a + b for a, b in zip(o, g, strict=True)]
            for o, g in zip(out, gi, strict=True)]
    return [(o / n) if not isinstance(o, list) else [a / n for a in o] for o in out]


# ------------------------------------------------------------------------ the driver
#: REBAR and RELAX on categorical variables: an objective (and RELAX surrogate) whose gradient
#: is exactly 0 on the two saturated rows of ``ALPHA``. There the relaxation's Jacobian
#: products ``y (dc - <y, dc>)`` (``y`` one-hot to within ``exp(-50 / tau)``) have terms of
#: size ``|dc|`` that cancel, which would swamp the score term's ``1.9e-22`` in the entries'
#: terms and leave the check blind to the score; with ``dc = 0`` they vanish exactly and the
#: score term decides those entries (the Bernoulli relaxation ``y (1 - y)`` has no such terms)
FLAT_ON_SATURATED_ROWS = RowQuadratic(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.3, -1.2, 0.8]]))


def _problem(dist, name=None):
    """``(params, objective, options)`` of the case ``name`` (``CASES``) on ``dist``."""
    params = PHI if dist == "bernoulli" else ALPHA
    K, C = params.shape[0], (2 if dist == "bernoulli" else params.shape[1])
    opts = dict(CASES.get(name, {}))
    if dist == "categorical" and name in ("rebar", "relax"):
        if name == "relax":
            opts["surrogate"] = FLAT_ON_SATURATED_ROWS
        return params, FLAT_ON_SATURATED_ROWS, opts
    return params, random_table(K, C, seed=16), opts


def truth_replicate(name, dist, params, opts, q, ans, r):
    """The mpmath truth (value and terms, as T) of replicate ``r``, entries flattened."""
    opts = REGISTRY[name].options(**opts)  # with the record's defaults (RELAX's eta)
    p = mp_probs(dist, params)
    z = q.z[r]
    f = [float(x) for x in ans.f_z[r]]
    if name in ("reinforce", "reinforce_loo", "nvil"):
        g = truth_score_family(name, dist, p, z, f, opts)
    elif name == "vimco":
        g = truth_vimco(dist, p, z, f, opts)
    elif name == "unord":
        g = truth_unord(dist, p, z, f, opts)
    elif name == "reinforce_wor":
        g = truth_wor(dist, p, z, f, opts, params)
    elif name == "carms":
        g = truth_carms(dist, p, z, f, opts)
    elif name == "muprop":
        g = truth_muprop(dist, p, z, f, opts, float(ans.f_y[r][0]), ans.grad_y[r][0])
    elif name == "double_cv":
        g = truth_double_cv(dist, p, z, f, opts, ans.grad_y[r])
    else:  # rebar, relax
        if opts.get("surrogate") is None:
            cvals, dc, points = ans.f_y[r], ans.grad_y[r], q.y[r]
        else:
            points = q.aux["points"][r]
            vals, dc = opts["surrogate"].relaxed(points)
            vals = np.asarray(vals)
            # a categorical surrogate may answer per variable ((2n, K)): RELAX sums them
            cvals = vals.sum(axis=-1) if dist == "categorical" and vals.ndim == 2 else vals
        aux = {k: v[r] for k, v in q.aux.items()}
        g = truth_rebar(dist, p, z, f, opts, cvals, dc, points, aux)
    return flat(g)


def check_entries(est: np.ndarray, truth: list) -> list[str]:
    """Entries breaking ``|est - truth| <= RTOL * terms`` (exact zero where terms are 0)."""
    bad = []
    for i, (x, t) in enumerate(zip(est.ravel(), truth, strict=True)):
        err = abs(mpmath.mpf(float(x)) - t.v)
        if not err <= RTOL * t.a:
            bad.append(f"entry {i}: estimate {float(x)!r}, truth {mpmath.nstr(t.v, 17)}, "
                       f"terms {mpmath.nstr(t.a, 3)}, error/terms "
                       f"{mpmath.nstr(err / t.a, 3) if t.a else 'inf'}")
    return bad


@pytest.mark.parametrize("name,dist,backend", PARAMS)
def test_replicates_match_mpmath_at_saturated_logits(name, dist, backend, small_cuda_grid):
    est = REGISTRY[name]
    params, objective, opts = _problem(dist, name)
    noise = est.draw_noise(np.random.default_rng(16), dist, params.shape, R, **opts)
    q = est.queries(dist, params, noise, backend=backend, **opts)
    ans = evaluate(objective, q)
    out = est.combine(dist, params, q, ans, backend=backend, **opts)
    with mpmath.workdps(DPS):
        for r in range(R):
            truth = truth_replicate(name, dist, params, opts, q, ans, r)
            bad = check_entries(out[r], truth)
            assert not bad, f"{name} {dist} {backend} replicate {r}:\n" + "\n".join(bad)


def test_the_problems_are_saturated():
    """The fixed noise draws the dominant category at every +-50 and +-20 logit (so the
    saturated score entries are the tiny ``sigmoid(-50)``, ``1 - p_kc``), and the truth there
    is nonzero: the check is not vacuous."""
    est = REGISTRY["reinforce"]
    for dist in ("bernoulli", "categorical"):
        params, objective, _ = _problem(dist)
        noise = est.draw_noise(np.random.default_rng(16), dist, params.shape, R, n=3)
        z = est.queries(dist, params, noise, n=3).z
        if dist == "bernoulli":
            assert np.all(z[..., :4] == np.array([1, 0, 1, 0]))
        else:
            assert np.all(z[..., :2] == np.array([0, 2]))
        g = est.estimate(dist, params, objective, noise, n=3)
        first = g[..., 0] if dist == "bernoulli" else g[..., 0, 0]
        assert np.all(first != 0) and np.all(np.abs(first) < 1e-20)


def test_old_forms_lose_the_saturated_scores():
    """The subtractions the backends used before: ``1 - sigmoid(50)`` and ``1 - p_0`` at
    ``alpha = (50, 0)`` round to 0, where the scores are ``sigmoid(-50) = 1.93e-22``; the
    forms used now keep them to the last digit."""
    from reference.distributions import BERNOULLI, CATEGORICAL, sigmoid, softmax

    truth = float(1 / (1 + mpmath.exp(50)))
    assert 1.0 - sigmoid(np.array(50.0)) == 0.0
    assert 1.0 - softmax(np.array([50.0, 0.0]))[0] == 0.0
    assert BERNOULLI.score(np.array([50.0]), np.array([1]))[0] == pytest.approx(truth, rel=1e-15)
    s = CATEGORICAL.score(np.array([[50.0, 0.0]]), np.array([0]))[0]
    assert s[0] == pytest.approx(truth, rel=1e-15) and s[1] == pytest.approx(-truth, rel=1e-15)


#: estimators whose weights sum to zero in exact arithmetic (``sum_i w_i = 0``: the
#: leave-one-out baselines of REINFORCE-LOO and double CV, the unordered set estimator's
#: built-in baseline, CARMS's antisymmetric pairs), so that the score part of an entry is
#: ``sum_{i: z_ik = c} w_i`` exactly and the tiny ``1 - p`` never matters relative to the
#: entry's terms: the old subtraction passes the check there too (converted all the same, so
#: that every backend computes one score; double CV's ``p (1 - p)`` term, now
#: ``sigmoid(phi) sigmoid(-phi)``, did fail it: 0 at ``phi = 50``)
ZERO_SUM = ("reinforce_loo", "unord", "carms", "double_cv")


def _old_score(self, params, z):
    """The score as every backend computed it before: ``z - sigmoid(phi)``, ``onehot - p``."""
    params = self.validate(params)
    p = self.probs(params)
    event = self.param_event_ndim
    batch = params.shape[:params.ndim - event]
    extra = np.asarray(z).ndim - len(batch) - 1
    p = p.reshape(batch + (1,) * extra + params.shape[params.ndim - event:])
    if self.name == "bernoulli":
        return np.asarray(z) - p
    return (np.asarray(z)[..., None] == np.arange(params.shape[-1])) - p


@pytest.mark.parametrize("name,dist", [
    pytest.param(name, dist, id=f"{name}-{dist}") for name in CASES if name not in ZERO_SUM
    for dist in ("bernoulli", "categorical") if dist in REGISTRY[name].distributions])
def test_the_check_rejects_the_old_score(name, dist, monkeypatch):
    """The NumPy backend with the old score (``Distribution.score`` patched back) fails the
    check of :func:`test_replicates_match_mpmath_at_saturated_logits` on some entry, for every
    converted estimator outside :data:`ZERO_SUM`: the check sees the saturated scores."""
    from reference.distributions import Distribution

    est = REGISTRY[name]
    params, objective, opts = _problem(dist, name)
    noise = est.draw_noise(np.random.default_rng(16), dist, params.shape, R, **opts)
    q = est.queries(dist, params, noise, **opts)
    ans = evaluate(objective, q)
    monkeypatch.setattr(Distribution, "score", _old_score)
    old = est.combine(dist, params, q, ans, **opts)
    with mpmath.workdps(DPS):
        bad = [b for r in range(R)
               for b in check_entries(old[r], truth_replicate(name, dist, params, opts, q, ans, r))]
    assert bad, f"{name} {dist}: the old score passed the check"
