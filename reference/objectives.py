"""Objectives ``f(z)`` of one discrete configuration, usable from NumPy and from Numba.

An objective knows its number of variables ``K``, categories ``C`` and its ``domain``:
``"binary"`` (Bernoulli problems: ``z`` in {0,1}^K, relaxed points ``y`` in [0,1]^K) or
``"categorical"`` (``z`` in [0, C)^K, relaxed points ``y`` with ``K`` rows on the simplex).

* ``obj(z)`` evaluates on int arrays ``(..., K)`` and returns float64 ``(...)``.
* ``obj.jit_fn(z, data)`` is a Numba-jitted scalar version, called as
  ``jit_fn(z_row: int64[::1], obj.jit_data: float64[::1]) -> float64``; pass a user objective
  written that way through :class:`JitObjective`.
* ``obj.relaxed(y)`` returns ``(f(y), grad_y f(y))`` for a differentiable extension that agrees
  with ``f`` on one-hot/binary points (needed by relaxation estimators).
* ``obj.table()`` returns all ``C**K`` values as an array of shape ``(C,) * K``.
* ``obj.source()`` is Python source that rebuilds the objective exactly (used in the
  copy-pasteable reproductions printed by the verifier).

Standard problems (DESIGN.md section 7): :func:`binary_quadratic` and :func:`random_table`.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np
from numba import float64, int64, njit, types

from ._validate import finite_scalar, float_array, int_config_array, positive_int, seed_value

__all__ = [
    "Objective",
    "TableObjective",
    "BinaryQuadratic",
    "JitObjective",
    "binary_quadratic",
    "random_table",
    "categorical_toy",
    "evaluate_all_jit",
    "JIT_OBJECTIVE_SIG",
    "SubsetQuadratic",
    "RowQuadratic",
]

_DOMAINS = ("binary", "categorical")


@njit(cache=True)
def _table_jit(z, data):
    # data = [C, table.ravel()...]; row-major index with z_0 slowest
    C = np.int64(data[0])
    idx = np.int64(0)
    for k in range(z.shape[0]):
        idx = idx * C + z[k]
    return data[1 + idx]


@njit(cache=True)
def _quadratic_jit(z, data):
    s = 0.0
    for k in range(z.shape[0]):
        d = z[k] - data[0]
        s += d * d
    return s


#: the type every jitted objective has: ``fn(z: int64[::1], data: float64[::1]) -> float64``
JIT_OBJECTIVE_SIG = float64(types.Array(int64, 1, "C"), types.Array(float64, 1, "C"))
_FN = types.FunctionType(JIT_OBJECTIVE_SIG)


# The loops take the objective as a first-class function of that one type, so they are
# compiled once and cached on disk, whatever objective they are given.
@njit(float64[::1](_FN, float64[::1], int64, int64), cache=True)
def evaluate_all_jit(fn, data, K, C):
    """``fn(z, data)`` at every configuration, in lexicographic order (``z_0`` slowest).

    Returns float64 of shape ``(C**K,)``; configurations are decoded on the fly so nothing of
    size ``C**K x K`` is stored.
    """
    N = C**K
    out = np.empty(N)
    z = np.empty(K, np.int64)
    for i in range(N):
        r = i
        for k in range(K - 1, -1, -1):
            z[k] = r % C
            r //= C
        out[i] = fn(z, data)
    return out


@njit(float64[::1](_FN, float64[::1], types.Array(int64, 2, "C")), cache=True)
def _evaluate_rows_jit(fn, data, z):
    out = np.empty(z.shape[0])
    for i in range(z.shape[0]):
        out[i] = fn(z[i], data)
    return out


class Objective:
    """Base class: subclasses set ``K``, ``C``, ``domain``, ``jit_fn``, ``jit_data``."""

    K: int
    C: int
    domain: str
    jit_fn: Callable | None = None
    jit_data: np.ndarray | None = None

    def _check_z(self, z: object) -> np.ndarray:
        return int_config_array(z, "z", self.K, self.C)

    def __call__(self, z: object) -> np.ndarray:
        z = self._check_z(z)
        flat = np.ascontiguousarray(z.reshape(-1, self.K), dtype=np.int64)
        return _evaluate_rows_jit(self.jit_fn, self.jit_data, flat).reshape(z.shape[:-1])

    def table(self) -> np.ndarray:
        """All values, float64 of shape ``(C,) * K`` (index ``[z_0, ..., z_{K-1}]``)."""
        if self.jit_fn is not None:
            vals = evaluate_all_jit(self.jit_fn, self.jit_data, self.K, self.C)
        else:
            from .distributions import Distribution

            vals = self(Distribution.enumerate_configs(self.K, self.C))
        return np.asarray(vals, dtype=np.float64).reshape((self.C,) * self.K)

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} has no differentiable extension")

    def source(self) -> str:
        raise NotImplementedError

    def _check_y(self, y: object) -> np.ndarray:
        y = float_array(y, "y")
        event = (self.K,) if self.domain == "binary" else (self.K, self.C)
        if y.shape[y.ndim - len(event):] != event:
            raise ValueError(f"y must have trailing shape {event} for a {self.domain} objective, "
                             f"got {y.shape}")
        return y


class TableObjective(Objective):
    """``f(z) = table[z_0, ..., z_{K-1}]`` with its multilinear extension.

    ``table``: float array of shape ``(C,) * K``. ``domain``: ``"categorical"`` (relaxed
    points ``y`` of shape ``(..., K, C)``) or ``"binary"`` (``C = 2``; ``y`` of shape
    ``(..., K)`` standing for rows ``(1 - y_k, y_k)``).

    Extension (DESIGN.md section 2): ``f(y) = sum_z table[z] prod_k y[k, z_k]``, which equals
    ``f`` on one-hot rows and is affine in each row.
    """

    def __init__(self, table: object, domain: str = "categorical") -> None:
        t = float_array(table, "table")
        if domain not in _DOMAINS:
            raise ValueError(f"domain must be one of {_DOMAINS}, got {domain!r}")
        if t.ndim < 1 or len(set(t.shape)) != 1:
            raise ValueError(f"table must have shape (C,)*K, got {t.shape}")
        if t.shape[0] < 2:
            raise ValueError(f"table needs C >= 2 categories per variable, got shape {t.shape}")
        if domain == "binary" and t.shape[0] != 2:
            raise ValueError(f"a binary table must have shape (2,)*K, got {t.shape}")
        self.values_table = np.ascontiguousarray(t)
        self.K, self.C, self.domain = t.ndim, t.shape[0], domain
        self.jit_fn = _table_jit
        self.jit_data = np.concatenate([[float(self.C)], self.values_table.ravel()])

    def __call__(self, z: object) -> np.ndarray:
        z = self._check_z(z)
        return self.values_table[tuple(np.moveaxis(z, -1, 0))]

    def table(self) -> np.ndarray:
        return self.values_table.copy()

    def _rows(self, y: np.ndarray) -> np.ndarray:
        return np.stack([1.0 - y, y], axis=-1) if self.domain == "binary" else y

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        """Multilinear extension and its gradient at ``y``; shapes ``(...)`` and ``y.shape``."""
        y = self._check_y(y)
        rows = self._rows(y)  # (..., K, C)
        K = self.K
        letters = string.ascii_letters
        if K + 1 > len(letters):
            raise ValueError("relaxed evaluation supports K <= 51")
        axes = letters[:K]
        ops = [self.values_table] + [rows[..., k, :] for k in range(K)]
        value = np.einsum(",".join([axes] + ["..." + a for a in axes]) + "->...", *ops)
        grads = []
        for k in range(K):
            sub = [axes] + ["..." + axes[j] for j in range(K) if j != k]
            opk = [self.values_table] + [rows[..., j, :] for j in range(K) if j != k]
            grads.append(np.einsum(",".join(sub) + "->..." + axes[k], *opk))
        # (..., K, C); with K = 1 the einsum has no y operand, hence the broadcast
        grad_rows = np.broadcast_to(np.stack(grads, axis=-2), rows.shape).copy()
        if self.domain == "binary":
            return value, grad_rows[..., 1] - grad_rows[..., 0]
        return value, grad_rows

    def source(self) -> str:
        return (f"reference.objectives.TableObjective(np.array({self.values_table.tolist()!r}), "
                f"domain={self.domain!r})")

    def __repr__(self) -> str:
        return f"TableObjective(K={self.K}, C={self.C}, domain={self.domain!r})"


class BinaryQuadratic(Objective):
    """Binary quadratic toy ``f(z) = sum_k (z_k - t)^2`` (ARM/DisARM papers).

    Extension: the same formula on ``y`` in [0,1]^K, gradient ``2 (y - t)``.
    """

    def __init__(self, K: int, t: float) -> None:
        self.K, self.C, self.domain = positive_int(K, "K"), 2, "binary"
        self.t = finite_scalar(t, "t")
        self.jit_fn = _quadratic_jit
        self.jit_data = np.array([self.t])

    def __call__(self, z: object) -> np.ndarray:
        z = self._check_z(z)
        return ((z - self.t) ** 2).sum(axis=-1)

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        y = self._check_y(y)
        return ((y - self.t) ** 2).sum(axis=-1), 2.0 * (y - self.t)

    def source(self) -> str:
        return f"reference.objectives.BinaryQuadratic({self.K}, {self.t!r})"

    def __repr__(self) -> str:
        return f"BinaryQuadratic(K={self.K}, t={self.t})"


class JitObjective(Objective):
    """A user objective given as a Numba-jitted ``fn(z: int64[:], data: float64[:]) -> float``.

    ``relaxed`` may be given as a NumPy callable ``y -> (values, grads)``.
    """

    def __init__(self, fn: Callable, data: object, K: int, C: int, domain: str = "categorical",
                 relaxed: Callable | None = None) -> None:
        if domain not in _DOMAINS:
            raise ValueError(f"domain must be one of {_DOMAINS}, got {domain!r}")
        self.K, self.C, self.domain = positive_int(K, "K"), positive_int(C, "C", 2), domain
        if domain == "binary" and self.C != 2:
            raise ValueError("a binary objective has C = 2")
        if not hasattr(fn, "py_func"):
            raise TypeError("fn must be a numba.njit function fn(z, data) -> float")
        self.jit_fn = fn
        self.jit_data = np.ascontiguousarray(float_array(data, "data").ravel())
        self._relaxed = relaxed

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        if self._relaxed is None:
            return super().relaxed(y)
        return self._relaxed(self._check_y(y))

    def source(self) -> str:
        name = getattr(self.jit_fn, "__name__", "fn")
        return (f"reference.objectives.JitObjective({name}, np.array({self.jit_data.tolist()!r}), "
                f"{self.K}, {self.C}, domain={self.domain!r})")


def binary_quadratic(K: int, t: float = 0.49) -> BinaryQuadratic:
    """The binary toy ``sum_k (z_k - t)^2``; DESIGN.md uses ``t`` in {0.45, 0.49, 0.499, 0.501}."""
    return BinaryQuadratic(K, t)


def random_table(K: int, C: int, seed: int = 0, domain: str | None = None) -> TableObjective:
    """A table of standard normal values over ``C**K`` configurations (seeded, reproducible).

    ``domain`` defaults to ``"binary"`` when ``C == 2`` is used for Bernoulli problems; pass
    ``"categorical"`` to use a ``C = 2`` table with categorical logits.
    """
    K, C = positive_int(K, "K"), positive_int(C, "C", 2)
    rng = np.random.default_rng(seed_value(seed))
    return TableObjective(rng.standard_normal((C,) * K), domain or ("binary" if C == 2 else
                                                                  "categorical"))


def categorical_toy(C: int, R: float = 30.0) -> TableObjective:
    """One variable with ``C`` categories and a slowly increasing reward ``0.5 + (z+1)/(C R)``.

    In the style of the ARSM paper's toy problem (Yin, Yue, Zhou 2019).
    """
    C = positive_int(C, "C", 2)
    return TableObjective(0.5 + (np.arange(C) + 1.0) / (C * R), "categorical")


class RowQuadratic(TableObjective):
    """``f(z) = (1/K) sum_k (w[k, z_k] - c)^2`` with the *quadratic* extension
    ``f(y) = (1/K) sum_k (<w_k, y_k> - c)^2`` (gradient ``(2/K) (<w_k, y_k> - c) w_k``), the
    one automatic differentiation gives when the objective is written on one-hot rows.

    ``w``: float ``(K, C)``; categorical domain. With ``C = 2`` and ``w_k = (0, 1)`` it is the
    quadratic (``p = 2``) polynomial-programming toy ``||X - c||_2^2 / K`` of the ReinMax paper
    (Liu et al. 2023, arXiv 2304.08612), ``X_k`` the second coordinate of the one-hot row.
    The values agree with the table, but the extension (and so ``grad_y f``) is not the
    multilinear one of :class:`TableObjective`.
    """

    def __init__(self, w: object, c: float = 0.45) -> None:
        w_arr = float_array(w, "w")
        if w_arr.ndim != 2 or w_arr.shape[1] < 2:
            raise ValueError(f"w must have shape (K, C) with C >= 2, got {w_arr.shape}")
        K, C = w_arr.shape
        self.w, self.c = np.ascontiguousarray(w_arr), finite_scalar(c, "c")
        grids = np.meshgrid(*[np.arange(C)] * K, indexing="ij")
        table = sum((self.w[k][grids[k]] - self.c) ** 2 for k in range(K)) / K
        super().__init__(np.asarray(table, dtype=np.float64), "categorical")

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        y = self._check_y(y)
        r = (y * self.w).sum(axis=-1) - self.c  # (..., K)
        return (r**2).sum(axis=-1) / self.K, 2.0 * r[..., None] * self.w / self.K

    def source(self) -> str:
        return f"reference.objectives.RowQuadratic(np.array({self.w.tolist()!r}), {self.c!r})"

    def __repr__(self) -> str:
        return f"RowQuadratic(K={self.K}, C={self.C}, c={self.c})"


@njit(cache=True)
def _subset_quadratic_jit(z, data):
    s = 0.0
    for i in range(z.shape[0]):
        d = z[i] - data[i]
        s += d * d
    return s


class SubsetQuadratic(Objective):
    """``f(z) = ||z - b||^2`` on binary ``z`` (the AIMLE paper's synthetic problem).

    Extension: the same formula on ``y`` in [0, 1]^n, gradient ``2 (y - b)``.
    """

    def __init__(self, b: object) -> None:
        bb = float_array(b, "b")
        if bb.ndim != 1 or bb.size < 1:
            raise ValueError(f"b must have shape (n,), got {bb.shape}")
        self.b = np.ascontiguousarray(bb)
        self.K, self.C, self.domain = bb.size, 2, "binary"
        self.jit_fn = _subset_quadratic_jit
        self.jit_data = self.b

    def __call__(self, z: object) -> np.ndarray:
        z = self._check_z(z)
        return ((z - self.b) ** 2).sum(axis=-1)

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        y = self._check_y(y)
        return ((y - self.b) ** 2).sum(axis=-1), 2.0 * (y - self.b)

    def source(self) -> str:
        return f"reference.objectives.SubsetQuadratic(np.array({self.b.tolist()!r}))"

    def __repr__(self) -> str:
        return f"SubsetQuadratic(n={self.K})"
