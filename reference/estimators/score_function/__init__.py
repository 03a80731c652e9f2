"""The score-function family: REINFORCE and REINFORCE with the leave-one-out baseline.

Estimators (registry names): ``reinforce``, ``reinforce_loo``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers), the NumPy reference backend (``NUMPY_<NAME>``) and the
  registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.score_function` (exact: closed forms from
moments over single configurations, never ``n``-tuples).
"""

from .numpy_reference import REINFORCE, REINFORCE_LOO

__all__ = ["REINFORCE", "REINFORCE_LOO"]
