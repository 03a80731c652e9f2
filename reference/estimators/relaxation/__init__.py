"""The relaxation and perturbation family on factorial Bernoulli and categorical variables:
straight-through, Gumbel-Softmax, straight-through Gumbel-Softmax, I-MLE and AIMLE.

Estimators (registry names): ``straight_through``, ``gumbel_softmax``,
``st_gumbel_softmax``, ``imle``, ``aimle``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers), the NumPy reference backend (``NUMPY_<NAME>``) and the
  registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.relaxation` (exact for straight-through, I-MLE and AIMLE:
enumeration of ``z`` and exact joint argmax laws from :mod:`verify.moments.quadrature`;
certified by randomized QMC for Gumbel-Softmax and ST-Gumbel-Softmax).

AIMLE's adaptive state (:class:`AIMLEState`, :func:`aimle_update`) is in ``numpy_reference.py``;
the statistic that drives it, ``aimle_nonzeros``, serves both AIMLE records and so lives in
the k-subset family, which builds on this one.
"""

from .numpy_reference import AIMLE, GUMBEL_SOFTMAX, IMLE, ST_GUMBEL_SOFTMAX, STRAIGHT_THROUGH

__all__ = ["AIMLE", "GUMBEL_SOFTMAX", "IMLE", "ST_GUMBEL_SOFTMAX", "STRAIGHT_THROUGH"]
