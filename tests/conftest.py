"""Test configuration: CUDA simulator without a GPU, Hypothesis profiles, shared problems."""

from __future__ import annotations

import ctypes
import os


def _gpu_present() -> bool:
    # same test as reference.config.gpu_present, which cannot be imported before numba is
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


# Must happen before numba is imported: without a GPU, CUDA kernels run under the simulator.
HAS_GPU = os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and _gpu_present()
if not HAS_GPU:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def small_cuda_grid():
    """Shrink CUDA blocks so that tiny inputs span several blocks (simulator or GPU)."""
    from reference import config

    config.CUDA_THREADS_PER_BLOCK = 4
    config.CUDA_MAX_BLOCKS = 3  # fewer blocks than work items: grid-stride loops run too
    yield
    config.reset()


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def assert_port_ok(rep) -> None:
    """A port check of our own backends passed, or was vacuous on this problem (no level that
    ran could tell the reference from a port returning zeros: ``informative=False``) while
    every check that ran still agreed."""
    if rep.passed:
        return
    vacuous_but_agreeing = (not rep.informative and rep.samples_agree is not False
                            and rep.state_agrees is not False
                            and (rep.distribution is None or rep.distribution.passed))
    assert vacuous_but_agreeing, rep.message
