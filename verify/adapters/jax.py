"""JAX adapter (extra ``jax``): a port from a function of JAX arrays, and the objective with a
custom VJP.

``make_port(fn)`` wraps::

    fn(params: jax.Array, noise: dict[str, jax.Array] | None, objective: JaxObjective, *,
       dist: str, **options) -> jax.Array of shape (*batch, R, *param_shape)

into a port (see :mod:`verify.adapters`): NumPy in, NumPy out in the port's ``dtype``. With
``dtype`` float64 (the default) the call runs inside ``jax.enable_x64(True)``, so the global
JAX setting is left alone; with float32 the framework computes in float32 and the estimates
come back float32, from which :func:`verify.check_port` takes a float32 tolerance.

:class:`JaxObjective` exposes ``objective(z)`` on integer arrays and ``relaxed(y)``, the
differentiable extension as a ``jax.custom_vjp`` function whose backward pass multiplies the
cotangent by the ``grad_y f(y)`` that ``objective.relaxed`` returns. Both call our NumPy
objective through ``jax.pure_callback``, so they work under ``jax.jit`` and ``jax.vmap``
(on the host CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._common import check_call, check_estimates

__all__ = ["JaxObjective", "make_port"]


def _callback(host: Callable[..., tuple[np.ndarray, ...]], structs: tuple, *args: jax.Array
              ) -> tuple[jax.Array, ...]:
    """``jax.pure_callback(host, structs, *args)`` whose float64 results cross back as pairs of
    uint32 words (``bitcast_convert_type`` on our side). JAX canonicalizes a callback's results
    in the thread that runs it, where the caller's ``enable_x64`` context (thread-local) does
    not reach: there a float64 result became float32 and the call failed ("Incorrect output
    dtype ... Expected: float64, Actual: float32"), in about one of thirty calls at R = 4000.
    Integer words are never canonicalized, and the bits are the host's exactly."""
    wide = [np.dtype(st.dtype) == np.float64 for st in structs]
    send = tuple(jax.ShapeDtypeStruct(tuple(st.shape) + (2,), np.uint32) if w else st
                 for st, w in zip(structs, wide, strict=True))

    def wrapped(*a: np.ndarray) -> tuple[np.ndarray, ...]:
        outs = host(*a)
        return tuple(np.ascontiguousarray(o, dtype=np.float64).reshape(-1).view(np.uint32)
                     .reshape(np.shape(o) + (2,)) if w else o
                     for o, w in zip(outs, wide, strict=True))

    res = jax.pure_callback(wrapped, send, *args, vmap_method="broadcast_all")
    return tuple(jax.lax.bitcast_convert_type(r, jnp.float64) if w else r
                 for r, w in zip(res, wide, strict=True))


class JaxObjective:
    """One of our objectives, callable on JAX arrays.

    * ``self(z)``: integer array ``(..., K)`` -> values ``(...)`` of ``dtype`` (no gradient:
      ``f`` of a configuration is not differentiable).
    * ``self.relaxed(y)``: ``y`` of shape ``(..., K)`` (binary objective) or ``(..., K, C)``
      (categorical) -> values ``(...)``, differentiable with ``jax.grad`` / ``jax.vjp``.
    """

    def __init__(self, objective: Any, dtype: Any = np.float64) -> None:
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {type(objective).__name__}")
        self.objective, self.dtype = objective, np.dtype(dtype)
        self.K, self.C = getattr(objective, "K", None), getattr(objective, "C", None)
        self._event_ndim = 1 if getattr(objective, "domain", "categorical") == "binary" else 2
        self.relaxed = self._make_relaxed()

    def __call__(self, z: jax.Array) -> jax.Array:
        z = jnp.asarray(z)
        if not jnp.issubdtype(z.dtype, jnp.integer):
            raise TypeError(f"z must be an integer array, got {z.dtype}")
        dtype = self.dtype

        def host(zz: np.ndarray) -> tuple[np.ndarray]:
            return (np.asarray(self.objective(np.asarray(zz, dtype=np.int64)), dtype=dtype),)

        return _callback(host, (jax.ShapeDtypeStruct(z.shape[:-1], dtype),), z)[0]

    def _make_relaxed(self) -> Callable[[jax.Array], jax.Array]:
        objective, nd = self.objective, self._event_ndim

        def host(yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if not hasattr(objective, "relaxed"):
                raise TypeError(f"{type(objective).__name__} has no differentiable extension")
            v, g = objective.relaxed(np.asarray(yy, dtype=np.float64))
            return np.asarray(v, dtype=yy.dtype), np.asarray(g, dtype=yy.dtype)

        def both(y: jax.Array) -> tuple[jax.Array, jax.Array]:
            shapes = (jax.ShapeDtypeStruct(y.shape[: y.ndim - nd], y.dtype),
                      jax.ShapeDtypeStruct(y.shape, y.dtype))
            return _callback(host, shapes, y)

        @jax.custom_vjp
        def relaxed(y: jax.Array) -> jax.Array:
            return both(y)[0]

        def fwd(y: jax.Array) -> tuple[jax.Array, jax.Array]:
            return both(y)

        def bwd(grads: jax.Array, ct: jax.Array) -> tuple[jax.Array]:
            return (ct.reshape(ct.shape + (1,) * nd) * grads,)

        relaxed.defvjp(fwd, bwd)
        return relaxed


def make_port(fn: Callable[..., jax.Array], *, dtype: Any = np.float64,
              name: str | None = None) -> Callable[..., np.ndarray]:
    """Wrap ``fn`` (JAX arrays in, an array out) as a port ``port(params, noise, objective,
    dist=..., **options) -> np.ndarray`` (in ``dtype``; see the module docstring)."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    dt = np.dtype(dtype)
    if dt not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    label = name or getattr(fn, "__name__", "jax_port")

    def port(params: np.ndarray, noise: dict[str, np.ndarray] | None, objective: Any, *,
             dist: str, **options: Any) -> np.ndarray:
        p, nz = check_call(params, noise, objective, dist, options)
        with jax.enable_x64(True) if dt == np.float64 else nullcontext():
            jp = jnp.asarray(p, dtype=dt)
            jn = None if nz is None else {k: jnp.asarray(v, dtype=dt) for k, v in nz.items()}
            out = fn(jp, jn, JaxObjective(objective, dt), dist=dist, **options)
            out = np.asarray(out)
        return check_estimates(out, label)

    port.__name__ = label
    return port
