"""The k-subset perturbation family: I-MLE and AIMLE on k-subsets (top-k perturb-and-MAP)
and SIMPLE.

Estimators (registry names): ``imle_ksubset``, ``aimle_ksubset``, ``simple``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers), the NumPy reference backend (``NUMPY_<NAME>``) and the
  registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.ksubset_perturbation` (exact enumeration of the
``binom(n, k)`` subsets for SIMPLE; certified by randomized QMC for I-MLE/AIMLE).

The k-subset distribution itself (log-space DP, exact sampler, top-k, Sum-of-Gamma noise) is
shared plumbing in :mod:`reference.ksubset`. This family builds on the relaxation family's
formulas and device functions (``perturbation_gradients``, ``perturb_lambda``), never the
other way round.
"""

from .numpy_reference import AIMLE_KSUBSET, IMLE_KSUBSET, SIMPLE

__all__ = ["AIMLE_KSUBSET", "IMLE_KSUBSET", "SIMPLE"]
