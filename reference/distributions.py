"""Factorial Bernoulli and categorical distributions: the NumPy reference.

Shapes
------
* Bernoulli: logits ``phi`` of shape ``(..., K)``, ``p_k = sigmoid(phi_k)``; a configuration
  ``z`` is an int array of shape ``(..., K)`` with entries in {0, 1}.
* Categorical: logits ``alpha`` of shape ``(..., K, C)``, ``p_k = softmax(alpha_k)``, ``C >= 2``;
  a configuration ``z`` has shape ``(..., K)`` with entries in ``[0, C)``.

Sampling from explicit uniforms (the documented mapping every backend and every port follows)
-------------------------------------------------------------------------------------------
* Bernoulli: ``z_k = 1[u_k < sigmoid(phi_k)]``, with the sigmoid computed as
  ``1 / (1 + exp(-phi))`` for ``phi >= 0`` and ``exp(phi) / (1 + exp(phi))`` otherwise.
* Categorical (inverse CDF without division): with ``m = max_c alpha_kc``,
  ``e_c = exp(alpha_kc - m)`` and the running sums ``S_c = e_0 + ... + e_c`` accumulated left
  to right, ``z_k = min{c : u_k * S_{C-1} < S_c}``. Categories whose ``e_c`` underflows to 0 are
  never drawn; ``u_k < 1`` guarantees ``z_k <= C - 1``.

All functions here are float64 and stable for logits of any finite size (log-sum-exp, the
two-branch sigmoid); they never return NaN or inf for finite input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import float_array, int_config_array

__all__ = ["Distribution", "BERNOULLI", "CATEGORICAL", "KSUBSET", "get_distribution", "sigmoid", "softmax",
           "log_softmax", "log_sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, two-branch form (no overflow for any finite input)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log sigmoid(x) = -softplus(-x)``, computed as ``min(x, 0) - log1p(exp(-|x|))``."""
    x = np.asarray(x, dtype=np.float64)
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def log_softmax(alpha: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis via log-sum-exp."""
    alpha = np.asarray(alpha, dtype=np.float64)
    m = alpha.max(axis=-1, keepdims=True)
    shifted = alpha - m
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(alpha: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max-shifted)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    e = np.exp(alpha - alpha.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_score_parts(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - p, -p)`` of ``softmax(alpha)``, ``(..., K, C)`` each, without cancellation.

    ``e_c = exp(alpha_c - max)``, ``S = e_0 + ... + e_{C-1}`` left to right, ``p_c = e_c / S``.
    Below the first maximum ``cmax`` (``p_c <= 1/2``: the maximum adds 1 to ``S``),
    ``1 - p_c = 1 - e_c / S``; at ``cmax``, ``rest / S`` with ``rest`` the sum of the other
    ``e_c`` left to right (a cumulative sum with ``e_cmax`` replaced by 0, which adds exactly
    nothing): the arithmetic of the fast backends' ``softmax_rest`` and
    ``softmax_complement``.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    C = alpha.shape[-1]
    e = np.exp(alpha - alpha.max(axis=-1, keepdims=True))
    total = np.cumsum(e, axis=-1)[..., -1:]
    at_max = np.arange(C) == np.argmax(alpha, axis=-1)[..., None]  # the first maximum
    rest = np.cumsum(np.where(at_max, 0.0, e), axis=-1)[..., -1:]
    return np.where(at_max, rest / total, 1.0 - e / total), -(e / total)


def _with_sample_axes(params: np.ndarray, event_ndim: int, extra: int) -> np.ndarray:
    """Insert ``extra`` singleton axes between the batch axes and the event axes of params."""
    batch = params.shape[: params.ndim - event_ndim]
    event = params.shape[params.ndim - event_ndim:]
    return params.reshape(batch + (1,) * extra + event)


@dataclass(frozen=True)
class Distribution:
    """A factorial distribution over ``K`` discrete variables, parametrized by logits.

    ``name`` is ``"bernoulli"`` or ``"categorical"``. ``param_event_ndim`` is the number of
    trailing parameter axes that describe one problem: 1 for Bernoulli ``(K,)``, 2 for
    categorical ``(K, C)``. Leading axes are batch axes.
    """

    name: str
    param_event_ndim: int

    # ----------------------------------------------------------------- validation and shapes
    def validate(self, params: object, *, allow_float32: bool = False) -> np.ndarray:
        """Check logits: finite, with the right number of axes, ``K >= 1`` and ``C >= 2``."""
        label = "phi" if self.name == "bernoulli" else "alpha"
        arr = float_array(params, label, allow_float32=allow_float32)
        if arr.ndim < self.param_event_ndim:
            raise ValueError(
                f"{label} must have at least {self.param_event_ndim} axes "
                f"({'(..., K)' if self.name == 'bernoulli' else '(..., K, C)'}), got shape {arr.shape}"
            )
        if self.name == "categorical" and arr.shape[-1] < 2:
            raise ValueError(f"alpha must have C >= 2 categories on its last axis, got C={arr.shape[-1]}")
        if self.event_shape(arr)[0] < 1:
            raise ValueError(f"{label} must have K >= 1 variables, got shape {arr.shape}")
        return arr

    def event_shape(self, params: np.ndarray) -> tuple[int, ...]:
        """Shape of one problem's parameters: ``(K,)`` or ``(K, C)``."""
        return tuple(params.shape[params.ndim - self.param_event_ndim:])

    def batch_shape(self, params: np.ndarray) -> tuple[int, ...]:
        return tuple(params.shape[: params.ndim - self.param_event_ndim])

    def num_variables(self, params: np.ndarray) -> int:
        return int(self.event_shape(params)[0])

    def num_categories(self, params: np.ndarray) -> int:
        return 2 if self.name == "bernoulli" else int(params.shape[-1])

    # ---------------------------------------------------------------------- probabilities
    def probs(self, params: np.ndarray) -> np.ndarray:
        """``sigmoid(phi)`` of shape ``(..., K)`` or ``softmax(alpha)`` of shape ``(..., K, C)``."""
        return sigmoid(params) if self.name == "bernoulli" else softmax(params)

    def category_log_probs(self, params: np.ndarray) -> np.ndarray:
        """``log p(z_k = c)`` as a ``(..., K, C)`` table (``C = 2`` for Bernoulli)."""
        if self.name == "bernoulli":
            return np.stack([log_sigmoid(-params), log_sigmoid(params)], axis=-1)
        return log_softmax(params)

    # ---------------------------------------------------------------------------- sampling
    def sample(self, params: object, u: object) -> np.ndarray:
        """Configurations from explicit uniforms (module docstring gives the mapping).

        ``params``: ``(*batch, K)`` or ``(*batch, K, C)``; ``u``: ``(*batch, *sample, K)``
        uniforms in [0, 1). Returns int64 ``z`` of the shape of ``u``.
        """
        params = self.validate(params)
        u = float_array(u, "u")
        batch = self.batch_shape(params)
        K = self.num_variables(params)
        if u.ndim < len(batch) + 1 or u.shape[: len(batch)] != batch or u.shape[-1] != K:
            raise ValueError(
                f"u must have shape (*batch, *sample, K) = ({batch}, ..., {K}), got {u.shape}"
            )
        if u.size and (u.min() < 0.0 or u.max() >= 1.0):
            raise ValueError("u must lie in [0, 1)")
        extra = u.ndim - len(batch) - 1
        p = _with_sample_axes(params, self.param_event_ndim, extra)
        if self.name == "bernoulli":
            return (u < sigmoid(p)).astype(np.int64)
        e = np.exp(p - p.max(axis=-1, keepdims=True))
        running = np.cumsum(e, axis=-1)  # sequential, as in the kernels
        threshold = (u * running[..., -1])[..., None]
        z = np.sum(~(threshold < running), axis=-1)
        return np.minimum(z, params.shape[-1] - 1).astype(np.int64)

    # ------------------------------------------------------------------ log q and score
    def log_prob(self, params: object, z: object) -> np.ndarray:
        """``log q(z) = sum_k log p_k(z_k)``, shape ``(*batch, *sample)``."""
        params = self.validate(params)
        K, C = self.num_variables(params), self.num_categories(params)
        z = int_config_array(z, "z", K, C)
        table = self.category_log_probs(params)  # (*batch, K, C)
        extra = z.ndim - len(self.batch_shape(params)) - 1
        table = _with_sample_axes(table, 2, extra)
        table = np.broadcast_to(table, z.shape + (C,))
        return np.take_along_axis(table, z[..., None], axis=-1)[..., 0].sum(axis=-1)

    def score(self, params: object, z: object) -> np.ndarray:
        """``grad_params log q(z)``, every entry accurate relative to itself.

        Bernoulli: ``z_k - sigmoid(phi_k)``, shape ``(*batch, *sample, K)``, computed as
        ``sigmoid(-phi_k)`` where ``z_k = 1`` and ``-sigmoid(phi_k)`` where ``z_k = 0``.
        Categorical: ``1[z_k = c] - p_kc``, shape ``(*batch, *sample, K, C)``, computed as
        ``-e_c / S`` for ``c != z_k`` and, for ``c = z_k``, ``1 - e_c / S`` below the row's
        first maximum (``p_kc <= 1/2``) and ``(sum_{c' != c} e_c') / S`` at it, with ``e_c =
        exp(alpha_kc - max_c alpha_kc)`` and ``S`` their sum, both sums left to right (the
        arithmetic of the fast backends' ``softmax_rest`` and ``score_categorical_pair`` in
        :mod:`reference._core`). Neither ``1 - sigmoid(phi)`` nor ``1 - p_kc`` of a dominant
        category is formed by subtraction: at ``phi = 50``, ``z = 1`` that gives 0 for
        the true ``sigmoid(-50) = 1.9e-22`` (issue 16).
        """
        params = self.validate(params)
        K, C = self.num_variables(params), self.num_categories(params)
        z = int_config_array(z, "z", K, C)
        extra = z.ndim - len(self.batch_shape(params)) - 1
        if self.name == "bernoulli":
            hit = _with_sample_axes(sigmoid(-params), 1, extra)
            miss = _with_sample_axes(-sigmoid(params), 1, extra)
            return np.where(z == 1, hit, miss)
        hit, miss = _softmax_score_parts(params)
        onehot = z[..., None] == np.arange(C)
        return np.where(onehot, _with_sample_axes(hit, 2, extra), _with_sample_axes(miss, 2, extra))

    # ------------------------------------------------------------------------ enumeration
    @staticmethod
    def enumerate_configs(K: int, C: int) -> np.ndarray:
        """All ``C**K`` configurations, shape ``(C**K, K)``, lexicographic with ``z_0`` slowest.

        Row ``i`` is the base-``C`` expansion of ``i``: ``i = sum_k z_k C**(K-1-k)``.
        """
        idx = np.arange(C**K, dtype=np.int64)
        powers = C ** np.arange(K - 1, -1, -1, dtype=np.int64)
        return (idx[:, None] // powers) % C


BERNOULLI = Distribution("bernoulli", 1)
CATEGORICAL = Distribution("categorical", 2)


@dataclass(frozen=True)
class KSubsetDistribution(Distribution):
    """The k-subset distribution ``p(z) ∝ exp(theta·z)``, ``sum(z) = k`` (not factorial).

    Scores ``theta`` of shape ``(..., n)``; ``z`` binary ``(..., n)`` (so ``K = n``, ``C = 2``).
    The subset size ``k`` is not part of the parameters: estimators take it as the option
    ``k``, and these methods as the keyword ``k``. The arithmetic lives in
    :mod:`reference.ksubset`.
    """

    def validate(self, params: object, *, allow_float32: bool = False) -> np.ndarray:
        arr = float_array(params, "theta", allow_float32=allow_float32)
        if arr.ndim < 1 or arr.shape[-1] < 1:
            raise ValueError(f"theta must have shape (..., n) with n >= 1, got {arr.shape}")
        return arr

    def num_categories(self, params: np.ndarray) -> int:
        return 2

    def probs(self, params: np.ndarray, *, k: int | None = None) -> np.ndarray:  # type: ignore[override]
        """The marginals ``p(z_i = 1)``, shape ``(..., n)``."""
        from .ksubset import marginals

        return marginals(params, k)

    def category_log_probs(self, params: np.ndarray) -> np.ndarray:
        raise TypeError("the k-subset distribution is not factorial: use reference.ksubset")

    def sample(self, params: object, u: object, *, k: int | None = None) -> np.ndarray:  # type: ignore[override]
        """Exact samples from uniforms (``reference.ksubset.sample``)."""
        from .ksubset import sample

        return sample(params, u, k)

    def log_prob(self, params: object, z: object, *, k: int | None = None) -> np.ndarray:  # type: ignore[override]
        from .ksubset import log_partition

        t = self.validate(params)
        z = int_config_array(z, "z", t.shape[-1], 2)
        if np.any(z.sum(axis=-1) != k):
            raise ValueError(f"z must have exactly k = {k} ones")
        extra = z.ndim - t.ndim
        lz = log_partition(t, k).reshape(t.shape[:-1] + (1,) * extra)
        return (z * t.reshape(t.shape[:-1] + (1,) * extra + t.shape[-1:])).sum(axis=-1) - lz

    def score(self, params: object, z: object, *, k: int | None = None) -> np.ndarray:  # type: ignore[override]
        """``grad_theta log p(z) = z - mu(theta)``."""
        from .ksubset import score

        return score(params, z, k)


KSUBSET = KSubsetDistribution("ksubset", 1)
_BY_NAME = {"bernoulli": BERNOULLI, "categorical": CATEGORICAL, "ksubset": KSUBSET}


def get_distribution(dist: str | Distribution) -> Distribution:
    """Look up ``"bernoulli"``, ``"categorical"`` or ``"ksubset"`` (a ``Distribution`` passes through)."""
    if isinstance(dist, Distribution):
        return dist
    try:
        return _BY_NAME[dist]
    except (KeyError, TypeError):
        raise ValueError(f"unknown distribution {dist!r}; expected one of {sorted(_BY_NAME)}") from None
