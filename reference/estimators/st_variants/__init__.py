"""The straight-through variants on factorial categorical variables: Gumbel-Rao (the
Rao-Blackwellized ST-Gumbel-Softmax, with the gradient detached from or taken through the
conditional Gumbels), gapped straight-through (GST) and ReinMax.

Estimators (registry names): ``gumbel_rao``, ``gst``, ``reinmax``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers and where public code differs), the NumPy reference backend
  (``NUMPY_<NAME>``) and the registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.st_variants` (exact for GST and ReinMax: both are functions of the
sampled ``z``, so enumeration of ``z``; Gumbel-Rao: enumeration of ``z`` with the conditional
moments of one conditional-Gumbel draw certified by randomized QMC).
"""

from .numpy_reference import GST, GUMBEL_RAO, REINMAX

__all__ = ["GST", "GUMBEL_RAO", "REINMAX"]
