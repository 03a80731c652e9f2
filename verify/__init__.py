"""The oracle: exact gradients and exact estimator moments by enumeration, statistical checks
with a set false-alarm rate, a port checker (``verify.port``), a sampler checker
(``verify.sampler``), noise conversions for framework code (``verify.noise``), golden vectors
(``verify.golden``) and Hypothesis strategies. Pure NumPy/SciPy, float64.
"""

from .exact import (
    Problem,
    config_probabilities,
    exact_expectation,
    exact_gradient,
    finite_difference_gradient,
    make_problem,
    score_matrix,
)
from .moments import Moments
from .port import PortReport, assert_mc, backend_port, check_port, mc_check
from .sampler import SamplerReport, check_sampler
from .stats import CheckResult, assert_samples, check_samples

__all__ = [
    "CheckResult",
    "Moments",
    "PortReport",
    "Problem",
    "SamplerReport",
    "assert_mc",
    "assert_samples",
    "backend_port",
    "check_port",
    "check_sampler",
    "check_samples",
    "config_probabilities",
    "exact_expectation",
    "exact_gradient",
    "finite_difference_gradient",
    "make_problem",
    "mc_check",
    "score_matrix",
]
