"""PyTorch adapter (extra ``torch``): a port from a function of tensors, and the objective as
an autograd-aware function.

``make_port(fn)`` wraps::

    fn(params: Tensor, noise: dict[str, Tensor] | None, objective: TorchObjective, *,
       dist: str, **options) -> Tensor of shape (*batch, R, *param_shape)

into a port (see :mod:`verify.adapters`): NumPy in, NumPy out in the port's dtype. Arrays go
to ``dtype`` (``torch.float64`` by default; with ``torch.float32`` the framework computes in
float32 and the estimates come back float32, from which :func:`verify.check_port` takes a
float32 tolerance). ``params`` arrives with ``requires_grad=True`` so that ``fn`` may use
``torch.autograd.grad`` on it; the result is detached.

:class:`TorchObjective` exposes ``objective(z)`` on integer tensors (no gradient: ``f`` of a
configuration is not differentiable) and ``relaxed(y)``, the differentiable extension as a
:class:`torch.autograd.Function` whose backward multiplies the incoming gradient by the
``grad_y f(y)`` that ``objective.relaxed`` returns. Both run on the CPU through NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._common import check_call, check_estimates

__all__ = ["TABLE_LIMIT", "TorchObjective", "make_port", "to_tensor"]

#: objectives with at most this many configurations are evaluated by table look-up in torch
TABLE_LIMIT = 2**20


def to_tensor(x: object, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A NumPy array (or anything ``np.asarray`` takes) as a CPU tensor of ``dtype``."""
    return torch.as_tensor(np.asarray(x), dtype=dtype)


class _Relaxed(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, objective: Any) -> torch.Tensor:  # type: ignore[override]
        values, grads = objective.relaxed(y.detach().cpu().numpy().astype(np.float64))
        ctx.save_for_backward(torch.as_tensor(np.asarray(grads), dtype=y.dtype, device=y.device))
        return torch.as_tensor(np.asarray(values), dtype=y.dtype, device=y.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (grads,) = ctx.saved_tensors
        # values have shape y.shape minus the event axes: broadcast over them
        extra = grads.ndim - grad_out.ndim
        return grad_out.reshape(grad_out.shape + (1,) * extra) * grads, None


class TorchObjective:
    """One of our objectives, callable on tensors.

    * ``self(z)``: ``z`` an integer tensor ``(..., K)`` -> values ``(...)`` of ``dtype``;
      carries no gradient. Objectives with a value table (``objective.table()``, at most
      ``TABLE_LIMIT`` entries) are evaluated by indexing that table with torch ops, so the call
      stays inside torch: libraries that track which values depend on which samples through
      ``__torch_function__`` (pyro's provenance tracking in ``TraceGraph_ELBO``) see ``f(z)``
      as a function of ``z``. Others go through NumPy.
    * ``self.relaxed(y)``: ``y`` a float tensor ``(..., K)`` (binary) or ``(..., K, C)``
      (categorical) -> values ``(...)``, differentiable with respect to ``y`` (the gradient is
      the objective's own ``grad_y f``, not a finite difference).
    """

    def __init__(self, objective: Any, dtype: torch.dtype = torch.float64) -> None:
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {type(objective).__name__}")
        self.objective, self.dtype = objective, dtype
        self.K, self.C = getattr(objective, "K", None), getattr(objective, "C", None)
        self._table = None
        if hasattr(objective, "table") and self.K is not None and self.C is not None \
                and self.C ** self.K <= TABLE_LIMIT:
            self._table = torch.as_tensor(np.asarray(objective.table(), dtype=np.float64),
                                          dtype=dtype)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
        if self._table is not None and not z.is_floating_point() and z.shape[-1:] == (self.K,):
            if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.C):
                raise ValueError(f"z must have entries in [0, {self.C})")
            return self._table.to(z.device)[tuple(z.unbind(-1))]
        zz = z.detach().cpu().numpy()
        if np.issubdtype(zz.dtype, np.floating):
            if not np.all(zz == np.round(zz)):
                raise ValueError("z must hold integer configurations")
        values = self.objective(zz.astype(np.int64))
        return torch.as_tensor(np.asarray(values), dtype=self.dtype, device=z.device)

    def relaxed(self, y: torch.Tensor) -> torch.Tensor:
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise TypeError("y must be a floating-point torch.Tensor")
        if not hasattr(self.objective, "relaxed"):
            raise TypeError(f"{type(self.objective).__name__} has no differentiable extension "
                            "(no .relaxed)")
        return _Relaxed.apply(y, self.objective)


def make_port(fn: Callable[..., torch.Tensor], *, dtype: torch.dtype = torch.float64,
              name: str | None = None) -> Callable[..., np.ndarray]:
    """Wrap ``fn`` (tensors in, a tensor out) as a port ``port(params, noise, objective,
    dist=..., **options) -> np.ndarray`` (float64; see the module docstring for ``fn``'s
    signature and for ``dtype``)."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    label = name or getattr(fn, "__name__", "torch_port")

    def port(params: np.ndarray, noise: dict[str, np.ndarray] | None, objective: Any, *,
             dist: str, **options: Any) -> np.ndarray:
        p, nz = check_call(params, noise, objective, dist, options)
        tp = to_tensor(p, dtype).requires_grad_(True)
        tn = None if nz is None else {k: to_tensor(v, dtype) for k, v in nz.items()}
        out = fn(tp, tn, TorchObjective(objective, dtype), dist=dist, **options)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{label} must return a torch.Tensor, got {type(out).__name__}")
        return check_estimates(out.detach().cpu().numpy(), label)

    port.__name__ = label
    return port
