"""The categorical augment-REINFORCE-swap family: ARS, ARSM, ARS+, ARSM+ and ARSM with both
reductions. NumPy reference and registry records.

What they estimate: ``grad_alpha E_{z~q}[f(z)]`` for ``K`` independent categorical variables
with logits ``alpha`` of shape ``(..., K, C)``, ``q(z_k = c) = softmax(alpha_k)_c``. They
need values of ``f`` on discrete configurations only (no relaxation, no derivative of ``f``).

Augmentation (Yin, Yue, Zhou 2019, arXiv 1905.01413). ``pi_k ~ Dirichlet(1_C)`` independently
per dimension and ``z_k = argmin_i pi_ki exp(-alpha_ki)`` has law ``q``. For a reference
category ``j``, ``pi^{m<->j}`` swaps entries ``m`` and ``j`` of every ``pi_k`` at once (the
identity when ``m = j``), and ``z^{m<->j}_k = argmin_i pi^{m<->j}_ki exp(-alpha_ki)``.

* ARS (reference ``j`` drawn uniformly)::

      g_kc = [f(z^{c<->j}) - (1/C) sum_m f(z^{m<->j})] (1 - C pi_kj)

* ARSM: the average of the ARS term over all ``C`` references ``j``; the configurations
  ``z^{m<->j} = z^{j<->m}`` take at most ``C(C-1)/2 + 1`` distinct values (the identity and one
  per pair), so that is its cost.
* Symmetry (Dong, Mnih, Tucker 2021, arXiv 2106.08056, section 3.1): with
  ``delta_kj = 1`` when ``z^{m<->j}_k`` is the same for every ``m``, multiplying the weight of
  dimension ``k`` by ``1 - delta_kj`` keeps the estimator unbiased (given ``delta_kj = 1`` the
  other dimensions' expectation does not depend on ``m``).
* Conditional expectation (same paper, section 3): pick ``l != j``. With ``pi_ki`` for
  ``i not in {j, l}`` fixed, ``t = pi_kj`` is uniform on ``[0, s]``, ``s = pi_kj + pi_kl``, and
  every swapped vector is affine in ``t`` (``pi_kl = s - t``). Observing
  ``z^{m<->j}_k = a`` means ``v_a(t) <= v_i(t)`` for every ``i``, where position ``i`` of the
  swapped vector holds ``v_i(t) = p_i t + q_i``: ``p_i = w_i`` where ``pi_j`` sits,
  ``p_i = -w_i`` and ``q_i = w_i s`` where ``pi_l`` sits, ``q_i = w_i pi_{sigma(i)}`` elsewhere
  (``w_i = exp(-alpha_ki)``). So ``(p_a - p_i) t <= q_i - q_a`` bounds ``t`` above when
  ``p_a > p_i`` and below when ``p_a < p_i``; with ``0 <= t <= s`` the intersection over all
  ``m`` and ``i`` is ``[lo, hi]``, which contains the true ``t`` (checked here), and
  ``E[pi_kj | ...] = (lo + hi)/2`` replaces ``pi_kj`` in the weight.
* ARS+ = ARS with both reductions (the paper's ARS+):
  ``W_k = (1 - delta_kj)(1 - C (lo_k + hi_k)/2)``, ``l_k`` drawn per dimension.
  ARSM+ = ARSM with the symmetry factor only (the paper's ARSM+):
  ``W_kj = (1 - delta_kj)(1 - C pi_kj)``. ARSM+CE (``arsm_plus_ce``) = ARSM with both
  reductions for every ``j`` (the extension the paper leaves open), ``l_kj`` drawn per
  dimension and per reference.

Every formula above was checked against the exact gradient by enumeration
(:mod:`verify.moments.swap` computes the exact moments; the tests check mean = gradient).
With ``C = 2`` ARSM has the moments of ARM and ARS+ those of DisARM (footnote 2 of the paper).

Noise (every array Uniform[0, 1), shapes per replicate; the mapping is the contract):

* ``u_pi`` ``(K, C)``: ``E_kc = -log1p(-u_pi[k, c])``, ``S_k = E_k0 + ... + E_k,C-1`` summed
  left to right, ``pi_kc = E_kc / S_k`` (normalized exponentials: ``Dirichlet(1_C)``).
* ``u_j`` ``()`` (ARS, ARS+): ``j = min(floor(u_j C), C - 1)``.
* ``u_l`` ``(K,)`` (ARS+) or ``(K, C)`` (ARSM+CE, entry ``[k, j]`` for reference ``j``):
  ``i = min(floor(u_l (C - 1)), C - 2)`` and ``l = i if i < j else i + 1`` (the ``i``-th element
  of ``{0..C-1} minus {j}``).

Argmin, exactly: ``w_kc = exp(max_c' alpha_kc' - alpha_kc)`` (so ``w >= 1``), the value at
position ``i`` of the swap ``(m, j)`` is ``pi_k,sigma(i) * w_ki`` with ``sigma`` the
transposition of ``m`` and ``j``, and the first index of the smallest value wins. Logits must
spread by at most 700 within a row (``w`` would overflow float64).

Queries. ARS, ARS+: ``z`` ``(*batch, R, C, K)``, row ``m`` is ``z^{m<->j}`` (row ``j`` is ``z``);
``aux["weight"]`` ``(*batch, R, K)`` is ``W_k``. ARSM family: ``z`` ``(*batch, R, M, K)`` with
``M = C(C-1)/2 + 1`` slots: slot 0 is ``z``, then the swaps ``(m, j)``, ``m < j``, in
lexicographic order, each stored only if it differs from every stored slot;
``aux["slot"]`` ``(*batch, R, C, C)`` int64 maps ``(m, j)`` to the slot of ``z^{m<->j}``,
``aux["n_distinct"]`` ``(*batch, R)`` counts the distinct slots (the rest repeat ``z``: a caller
may evaluate only the first ``n_distinct``), ``aux["weight"]`` ``(*batch, R, K, C)`` is
``W_kj``. Combine: ARS ``g_kc = (f_c - mean_m f_m) W_k``; ARSM
``g_kc = (1/C) sum_j (f(slot[c, j]) - (1/C) sum_m f(slot[m, j])) W_kj``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference.contract import Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths

__all__ = ["ARS", "ARSM", "ARS_PLUS", "ARSM_PLUS", "ARSM_PLUS_CE", "dirichlet_from_uniform",
           "reference_index", "other_index", "row_weights", "swap_argmin", "swap_outcomes",
           "ce_interval", "arsm_slots", "check_logit_spread", "check_swap_queries",
           "MAX_LOGIT_SPREAD"]

#: largest ``max - min`` of a row of logits (``exp`` of it must stay finite)
MAX_LOGIT_SPREAD = 700.0


# --------------------------------------------------------------------------- the mappings
_LOG1P = np.frompyfunc(math.log1p, 1, 1)
_EXP = np.frompyfunc(math.exp, 1, 1)


def _libm(fn: Any, x: np.ndarray, fallback: Any) -> np.ndarray:
    """``fn`` (Python's ``math``: the C library's scalar function, which the Numba kernels
    call too) elementwise on float64 ``x``. NumPy's vectorized ``log1p`` and ``exp`` are not
    correctly rounded and differ from it by an ulp on some inputs (``log1p(-1/3)``), which
    flips an argmin between ``pi`` entries one ulp apart (issue 16): the reference does the
    kernels' arithmetic. Other dtypes keep NumPy's ``fallback``."""
    x = np.asarray(x)
    if x.dtype != np.float64:
        return fallback(x)
    return fn(x).astype(np.float64).reshape(x.shape)


def dirichlet_from_uniform(u: np.ndarray) -> np.ndarray:
    """``pi = E / S`` with ``E = -log1p(-u)`` (the C library's scalar ``log1p``, as the
    kernels) and ``S`` summed left to right over the last axis."""
    E = -_libm(_LOG1P, -np.asarray(u), np.log1p)
    S = np.cumsum(E, axis=-1)[..., -1:]
    return E / S


def reference_index(u_j: np.ndarray, C: int) -> np.ndarray:
    """``j = min(floor(u_j C), C - 1)``, int64."""
    return np.minimum(np.floor(u_j * C), C - 1).astype(np.int64)


def other_index(u_l: np.ndarray, j: np.ndarray, C: int) -> np.ndarray:
    """The ``min(floor(u_l (C-1)), C-2)``-th element of ``{0..C-1} minus {j}``, int64."""
    i = np.minimum(np.floor(u_l * (C - 1)), C - 2).astype(np.int64)
    return np.where(i < j, i, i + 1)


def row_weights(alpha: np.ndarray) -> np.ndarray:
    """``w = exp(max(alpha) - alpha)`` over the last axis (every entry >= 1; the C library's
    scalar ``exp``, as the kernels)."""
    return _libm(_EXP, alpha.max(axis=-1, keepdims=True) - alpha, np.exp)


def _transposition(C: int, m: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``sigma[..., i]``: the source of position ``i`` after swapping ``m`` and ``j``."""
    m, j = np.broadcast_arrays(np.asarray(m), np.asarray(j))
    sigma = np.broadcast_to(np.arange(C), m.shape + (C,)).copy()
    np.put_along_axis(sigma, m[..., None], j[..., None], axis=-1)
    np.put_along_axis(sigma, j[..., None], m[..., None], axis=-1)
    return sigma


def swap_argmin(pi: np.ndarray, w: np.ndarray, m: Any, j: Any) -> np.ndarray:
    """``argmin_i pi[..., sigma(i)] w[..., i]`` for the transposition ``(m, j)`` (first minimum).

    ``pi``, ``w``: ``(..., C)`` (broadcastable); ``m``, ``j``: ints or int arrays broadcastable
    to the leading shape. Returns int64 of the leading shape.
    """
    pi, w = np.broadcast_arrays(pi, w)
    C = pi.shape[-1]
    m = np.broadcast_to(m, pi.shape[:-1])
    j = np.broadcast_to(j, pi.shape[:-1])
    sigma = _transposition(C, m, j)
    return np.argmin(np.take_along_axis(pi, sigma, axis=-1) * w, axis=-1)


def swap_outcomes(pi: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Z[..., m, j] = z^{m<->j}`` for every pair: int64 ``(..., C, C)``, symmetric."""
    pi, w = np.broadcast_arrays(pi, w)
    C = pi.shape[-1]
    Z = np.empty(pi.shape[:-1] + (C, C), dtype=np.int64)
    for m in range(C):
        for j in range(C):
            Z[..., m, j] = swap_argmin(pi, w, m, j)
    return Z


def ce_interval(pi: np.ndarray, w: np.ndarray, row: np.ndarray, j: np.ndarray, l: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi]``: the values of ``t = pi_j`` consistent with the observed swaps.

    ``pi``, ``w``: ``(N, C)``; ``row`` ``(N, C)``: ``row[:, m] = z^{m<->j}``; ``j``, ``l``:
    int ``(N,)`` with ``l != j``. Holds ``pi_i`` (``i not in {j, l}``) and ``s = pi_j + pi_l``
    fixed (module docstring) and asserts that the true ``t`` lies in ``[lo, hi]``.
    """
    N, C = pi.shape
    n = np.arange(N)
    t = pi[n, j]
    s = t + pi[n, l]
    lo, hi = np.zeros(N), s.copy()
    for m in range(C):
        sigma = _transposition(C, np.full(N, m), j)
        src_j, src_l = sigma == j[:, None], sigma == l[:, None]
        p = np.where(src_j, w, np.where(src_l, -w, 0.0))
        q = np.where(src_j, 0.0,
                     np.where(src_l, w * s[:, None], w * np.take_along_axis(pi, sigma, axis=-1)))
        a = row[:, m]
        pa, qa = p[n, a], q[n, a]
        for i in range(C):
            dp = pa - p[:, i]
            bound = (q[:, i] - qa) / np.where(dp == 0.0, 1.0, dp)
            hi = np.where(dp > 0.0, np.minimum(hi, bound), hi)
            lo = np.where(dp < 0.0, np.maximum(lo, bound), lo)
    tol = 1e-9 * s
    if not (np.all(lo <= t + tol) and np.all(t <= hi + tol)):
        bad = int(np.argmax((lo > t + tol) | (t > hi + tol)))
        raise AssertionError(f"conditional-expectation interval [{lo[bad]!r}, {hi[bad]!r}] "
                             f"misses the true pi_j = {t[bad]!r} (row {bad})")
    return lo, hi


def _delta(row: np.ndarray) -> np.ndarray:
    """``delta = 1`` when every entry of ``row`` (last axis) is the same."""
    return np.all(row == row[..., :1], axis=-1)


def _ce_weight(pi: np.ndarray, w: np.ndarray, row: np.ndarray, j: np.ndarray,
               u_l: np.ndarray) -> np.ndarray:
    """``(1 - delta)(1 - C (lo + hi)/2)`` over flattened rows: pi, w, row ``(N, C)``."""
    C = pi.shape[-1]
    l = other_index(u_l, j, C)
    lo, hi = ce_interval(pi, w, row, j, l)
    return np.where(_delta(row), 0.0, 1.0 - C * (0.5 * (lo + hi)))


def arsm_slots(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicate the swapped configurations (module docstring).

    ``Z``: ``(B, R, K, C, C)`` swap outcomes. Returns ``z`` ``(B, R, M, K)``, ``slot``
    ``(B, R, C, C)`` and ``n_distinct`` ``(B, R)``, all int64.
    """
    B, R, K, C, _ = Z.shape
    M = C * (C - 1) // 2 + 1
    z = np.empty((B, R, M, K), dtype=np.int64)
    slot = np.zeros((B, R, C, C), dtype=np.int64)
    z[:, :, 0] = Z[..., 0, 0]
    n = np.ones((B, R), dtype=np.int64)
    b, r = np.meshgrid(np.arange(B), np.arange(R), indexing="ij")
    for m in range(C):
        for j in range(m + 1, C):
            cand = Z[..., m, j]  # (B, R, K)
            same = np.all(z == cand[:, :, None, :], axis=-1) & (np.arange(M) < n[..., None])
            found = same.any(axis=-1)
            s = np.where(found, np.argmax(same, axis=-1), n)
            new = ~found
            z[b[new], r[new], n[new]] = cand[new]
            slot[..., m, j] = slot[..., j, m] = s
            n = n + new
    for s_ in range(M):  # unused slots repeat z
        pad = s_ >= n
        z[b[pad], r[pad], s_] = z[b[pad], r[pad], 0]
    return z, slot, n


def check_logit_spread(alpha: np.ndarray, spread: float | None = None) -> None:
    """Raise ``ValueError`` if a row of logits spreads by more than ``MAX_LOGIT_SPREAD``.

    ``spread``: the largest ``max(alpha_k) - min(alpha_k)`` over the rows, where the caller has
    computed it (the CPU backend, in one compiled pass); computed here otherwise."""
    if spread is None:
        spread = float((alpha.max(axis=-1) - alpha.min(axis=-1)).max()) if alpha.size else 0.0
    if spread > MAX_LOGIT_SPREAD:
        raise ValueError(f"the swap estimators need max(alpha_k) - min(alpha_k) <= "
                         f"{MAX_LOGIT_SPREAD} in every row (exp of it must be finite), got {spread}")


def check_swap_queries(queries: Queries, alpha_shape: tuple[int, ...], ars: bool) -> None:
    """Validate batch-flattened swap queries before phase 2 (``alpha_shape`` ``(B, K, C)``)."""
    B, K, C = alpha_shape
    z = queries.z
    M = C if ars else C * (C - 1) // 2 + 1
    name = "ARS" if ars else "ARSM"
    if z.shape[0] != B or z.shape[2:] != (M, K):
        raise ValueError(f"{name} queries.z must have shape (*batch, R, {M}, {K}), got "
                         f"{z.shape[1:]} per batch element")
    R = z.shape[1]
    need = {"weight": (B, R, K) if ars else (B, R, K, C)}
    if not ars:
        need["slot"] = (B, R, C, C)
    for key, shape in need.items():
        if key not in queries.aux:
            raise ValueError(f"{name} queries.aux lacks {key!r}")
        if tuple(np.shape(queries.aux[key])) != shape:
            raise ValueError(f"{name} queries.aux[{key!r}] must have shape {shape[1:]} per batch "
                             f"element, got {np.shape(queries.aux[key])[1:]}")
    if not ars:
        slot = np.asarray(queries.aux["slot"])
        if not np.issubdtype(slot.dtype, np.integer) or (slot.size and (slot.min() < 0
                                                                         or slot.max() >= M)):
            raise ValueError(f"ARSM queries.aux['slot'] must hold integer slots in [0, {M})")
        # phase 2 does not read it, but a caller evaluating only the first n_distinct slots
        # does: a count outside [1, M] cannot have come from these queries
        n = queries.aux.get("n_distinct")
        if n is not None:
            n = np.asarray(n)
            if n.shape != (B, R) or not np.issubdtype(n.dtype, np.integer) or (
                    n.size and (n.min() < 1 or n.max() > M)):
                raise ValueError(f"ARSM queries.aux['n_distinct'] must hold integer counts in "
                                 f"[1, {M}], one per replicate")


# ------------------------------------------------------------------------ NumPy backend
def _pi_w(params: np.ndarray, noise: dict) -> tuple[np.ndarray, np.ndarray]:
    check_logit_spread(params)
    pi = dirichlet_from_uniform(noise["u_pi"])  # (B, R, K, C)
    w = row_weights(params)[:, None]  # (B, 1, K, C)
    return pi, np.broadcast_to(w, pi.shape)


def _ars_queries(plus: bool):
    def queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
        pi, w = _pi_w(params, noise)
        B, R, K, C = pi.shape
        j = reference_index(noise["u_j"], C)  # (B, R)
        jk = np.broadcast_to(j[:, :, None], (B, R, K))
        rows = np.stack([swap_argmin(pi, w, m, jk) for m in range(C)], axis=-1)  # (B,R,K,C)
        if plus:
            weight = _ce_weight(pi.reshape(-1, C), w.reshape(-1, C), rows.reshape(-1, C),
                                jk.reshape(-1), noise["u_l"].reshape(-1)).reshape(B, R, K)
        else:
            weight = 1.0 - C * np.take_along_axis(pi, jk[..., None], axis=-1)[..., 0]
        return Queries(np.ascontiguousarray(rows.transpose(0, 1, 3, 2)), {"weight": weight})

    return queries


def _ars_combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict
                 ) -> np.ndarray:
    check_swap_queries(queries, params.shape, ars=True)
    f = answers.f_z  # (B, R, C)
    A = f - f.mean(axis=-1, keepdims=True)
    return queries.aux["weight"][:, :, :, None] * A[:, :, None, :]  # (B, R, K, C)


def _arsm_queries(mode: str):
    def queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
        pi, w = _pi_w(params, noise)
        B, R, K, C = pi.shape
        Z = swap_outcomes(pi, w)  # (B, R, K, m, j)
        z, slot, n = arsm_slots(Z)
        weight = 1.0 - C * pi  # (B, R, K, j)
        if mode == "sym":
            weight = np.where(_delta(Z.transpose(0, 1, 2, 4, 3)), 0.0, weight)
        elif mode == "ce":
            weight = np.empty((B, R, K, C))
            for j in range(C):
                jj = np.full(B * R * K, j)
                weight[..., j] = _ce_weight(pi.reshape(-1, C), w.reshape(-1, C),
                                            Z[..., :, j].reshape(-1, C), jj,
                                            noise["u_l"][..., j].reshape(-1)).reshape(B, R, K)
        return Queries(z, {"slot": slot, "n_distinct": n, "weight": weight})

    return queries


def _arsm_combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict
                  ) -> np.ndarray:
    check_swap_queries(queries, params.shape, ars=False)
    f, slot, W = answers.f_z, queries.aux["slot"], queries.aux["weight"]
    B, R, C, _ = slot.shape
    F = np.take_along_axis(f, slot.reshape(B, R, C * C), axis=-1).reshape(B, R, C, C)  # [m, j]
    A = F - F.mean(axis=2, keepdims=True)  # A[c, j] = f(z^{c<->j}) - mean_m f(z^{m<->j})
    return np.einsum("brcj,brkj->brkc", A, W) / C


NUMPY_ARS = Backend(_ars_queries(False), _ars_combine)
NUMPY_ARS_PLUS = Backend(_ars_queries(True), _ars_combine)
NUMPY_ARSM = Backend(_arsm_queries("plain"), _arsm_combine)
NUMPY_ARSM_PLUS = Backend(_arsm_queries("sym"), _arsm_combine)
NUMPY_ARSM_PLUS_CE = Backend(_arsm_queries("ce"), _arsm_combine)


# ---------------------------------------------------------------------------- the records
def _check_u_pi(u: np.ndarray, label: str) -> None:
    """A row of ``C`` exact zeros (probability ``2**-53C`` when drawn, but a caller can pass
    it) makes every ``E`` zero and ``pi = 0 / 0``: refused before any kernel runs."""
    dead = np.all(u == 0, axis=-1)
    if dead.any():
        where = tuple(int(i) for i in np.argwhere(dead)[0])
        raise ValueError(f"{label} has a row of zeros at index {where}: the Dirichlet draw "
                         "pi = E / sum(E) with E = -log1p(-u) is 0 / 0 there; every row needs a "
                         "positive entry")


_U_PI = NoiseSpec("u_pi", "uniform", lambda K, C, o: (K, C),
                  "u_pi[..., r, k, c]: E = -log1p(-u), pi_k = E_k / (E_k0 + ... + E_k,C-1) summed "
                  "left to right (pi_k ~ Dirichlet(1_C)); a row of C zeros is refused",
                  check=_check_u_pi)
_U_J = NoiseSpec("u_j", "uniform", lambda K, C, o: (),
                 "u_j[..., r]: the reference category j = min(floor(u_j C), C - 1)")
_U_L_ARS = NoiseSpec("u_l", "uniform", lambda K, C, o: (K,),
                     "u_l[..., r, k]: l_k = the min(floor(u_l (C-1)), C-2)-th element of "
                     "{0..C-1} minus {j}")
_U_L_ARSM = NoiseSpec("u_l", "uniform", lambda K, C, o: (K, C),
                      "u_l[..., r, k, j]: l_kj = the min(floor(u_l (C-1)), C-2)-th element of "
                      "{0..C-1} minus {j}")

_PAPERS = ("Yin, Yue, Zhou 2019, ARSM (ICML, arXiv 1905.01413); Dong, Mnih, Tucker 2021, "
           "Coupled gradient estimators for discrete latent variables (arXiv 2106.08056)")


def _no_options(opts: dict[str, Any]) -> dict[str, Any]:
    return opts


def _record(name: str, title: str, noise: tuple, cost, backend: str, moments: str) -> Estimator:
    return Estimator(
        name=name,
        title=title,
        distributions=("categorical",),
        unbiased=True,
        noise=noise,
        option_defaults={},
        check_options=_no_options,
        cost_fn=cost,
        backends=backend_paths("swap", backend),
        exact_moments_path=f"verify.moments.swap:{moments}",
        references=_PAPERS,
    )


def _cost_ars(K: int, C: int, o: Any) -> Cost:
    return Cost(C)


def _cost_arsm(K: int, C: int, o: Any) -> Cost:
    return Cost(C * (C - 1) // 2 + 1)


ARS = _record("ars", "ARS: augment-REINFORCE-swap with one random reference category",
              (_U_PI, _U_J), _cost_ars, "ARS", "ars_moments")
ARSM = _record("arsm", "ARSM: augment-REINFORCE-swap-merge (average over references), deduplicated",
               (_U_PI,), _cost_arsm, "ARSM", "arsm_moments")
ARS_PLUS = _record("ars_plus", "ARS+: ARS with the symmetry factor and the interval conditional "
                   "expectation", (_U_PI, _U_J, _U_L_ARS), _cost_ars, "ARS_PLUS", "ars_plus_moments")
ARSM_PLUS = _record("arsm_plus", "ARSM+: ARSM with the symmetry factor", (_U_PI,), _cost_arsm,
                    "ARSM_PLUS", "arsm_plus_moments")
ARSM_PLUS_CE = _record("arsm_plus_ce", "ARSM with the symmetry factor and the interval conditional "
                       "expectation for every reference", (_U_PI, _U_L_ARSM), _cost_arsm,
                       "ARSM_PLUS_CE", "arsm_plus_ce_moments")
