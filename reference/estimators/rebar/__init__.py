"""The REBAR family on factorial Bernoulli and categorical variables: REBAR and RELAX (control
variates from a continuous relaxation, conditional relaxation given the sample; unbiased).

Estimators (registry names): ``rebar``, ``relax``. RELAX's surrogate protocol and an example
surrogate (:class:`QuadraticSurrogate`) are documented in ``numpy_reference.py``.

Files, the same four in every family:

* ``numpy_reference.py``: the formulas (module docstring: what each estimates, the formula,
  its noise and cost, the papers and the public code read), the NumPy reference backend
  (``NUMPY_<NAME>``) and the registry records.
* ``device.py``: the per-element arithmetic as plain Python, compiled by both fast backends
  (``build(jit, base)``), so CPU and CUDA do the same operations in the same order.
* ``cpu.py``: the Numba CPU kernels and host wrappers (``CPU_<NAME>``).
* ``cuda.py``: the Numba CUDA kernels and host wrappers (``CUDA_<NAME>``), loaded only when
  the ``"cuda"`` backend is asked for.

Oracle: :mod:`verify.moments.rebar` (certified: exact sum over the sample ``b``,
randomized QMC with defensive importance sampling over the relaxations given ``b``; no
closed form in general; for categorical variables each relaxation is parameterized by its
maximum and its gaps to the maximum).
"""

from .numpy_reference import REBAR, RELAX, QuadraticSurrogate

__all__ = ["REBAR", "RELAX", "QuadraticSurrogate"]
