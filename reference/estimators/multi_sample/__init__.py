"""The multi-sample family: VIMCO, the unordered set estimator and CARMS.

Estimators (registry names): ``vimco`` (its target is the multi-sample bound
``E[log (1/n) sum_i exp f(z_i)]``, declared in its record), ``unord`` (``n`` configurations
without replacement by Gumbel-top-k on the joint space, built-in baseline), ``reinforce_wor``
(the same samples with Horvitz-Thompson weights from the exact inclusion probabilities),
``carms`` (``n`` antithetic samples through a Dirichlet copula, pairs weighted by the exact
ratio of the independent to the copula's pair law; ARMS for two categories).

Files, the same four in every family: ``numpy_reference.py`` (formulas, NumPy backend,
records), ``device.py`` (arithmetic compiled by both fast backends), ``cpu.py`` (Numba CPU),
``cuda.py`` (Numba CUDA, loaded lazily).

Oracle: :mod:`verify.moments.multi_sample` (exact: sums over multisets of i.i.d. samples for
VIMCO and its target's gradient, over subsets for the two without-replacement estimators,
over the joint tuples of samples for CARMS).
"""

from .numpy_reference import CARMS, REINFORCE_WOR, UNORD, VIMCO

__all__ = ["VIMCO", "UNORD", "REINFORCE_WOR", "CARMS"]
