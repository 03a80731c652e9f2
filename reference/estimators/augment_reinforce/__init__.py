"""The binary augment-REINFORCE family: AR, ARM and DisARM (U2G is DisARM).

Estimators (registry names): ``ar``, ``arm``, ``disarm``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers), the NumPy reference backend (``NUMPY_<NAME>``) and the
  registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.augment_reinforce` (exact: per-dimension
integration over the cells of the uniform thresholds, contracted across dimensions).
"""

from .numpy_reference import AR, ARM, DISARM

__all__ = ["AR", "ARM", "DISARM"]
