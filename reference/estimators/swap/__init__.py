"""The categorical augment-REINFORCE-swap family: ARS, ARSM, ARS+, ARSM+ and ARSM+CE.

Estimators (registry names): ``ars``, ``arsm``, ``ars_plus``, ``arsm_plus``,
``arsm_plus_ce``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers), the NumPy reference backend (``NUMPY_<NAME>``) and the
  registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.swap` (exact: integration over the polytope cells
of the simplex on which the swap outcomes are constant; geometry in
:mod:`verify.moments.polytope`).
"""

from .numpy_reference import ARS, ARS_PLUS, ARSM, ARSM_PLUS, ARSM_PLUS_CE

__all__ = ["ARS", "ARS_PLUS", "ARSM", "ARSM_PLUS", "ARSM_PLUS_CE"]
