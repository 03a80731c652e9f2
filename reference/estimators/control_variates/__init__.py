"""The control-variate family of the ARM paper's baselines: NVIL, MuProp, double control
variates.

Estimators (registry names): ``nvil``, ``muprop``, ``double_cv``. NVIL's running statistics
are explicit state (:class:`NVILState`, :func:`nvil_update`, in ``numpy_reference.py``).

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers and the public code read), the NumPy reference backend
  (``NUMPY_<NAME>``) and the registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.control_variates` (exact: the noise enters only through
discrete samples; NVIL and MuProp are averages of a function of one sample, double CV a
U-statistic of degree 3 whose moments come from enumeration over pairs and triples of
configurations, never ``n``-tuples).
"""

from .numpy_reference import DOUBLE_CV, MUPROP, NVIL, NVILState, nvil_update

__all__ = ["DOUBLE_CV", "MUPROP", "NVIL", "NVILState", "nvil_update"]
