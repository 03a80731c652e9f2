"""Every estimator's CPU kernel has a serial twin (reference._cpu.twin_kernel) that runs with one
Numba thread or inside serial_kernels, and gives the parallel kernel's numbers bit for bit."""

from __future__ import annotations

import importlib
import sys

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from reference import REGISTRY, _cpu
from verify.problems import builtin_problems

CPU_MODULES = sorted({est.backends["cpu"].partition(":")[0] for est in REGISTRY.values()
                      if "cpu" in est.backends} | {"reference._cpu"})
CASES = [pytest.param(est, dist, id=f"{est.name}-{dist}")
         for est in REGISTRY.values() if "cpu" in est.backends for dist in est.distributions]


@pytest.fixture
def threads():
    """Restores this thread's Numba thread count after the test."""
    before = numba.get_num_threads()
    yield min(2, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(before)


@pytest.mark.parametrize("name", CPU_MODULES)
def test_no_parallel_kernel_without_a_serial_twin(name):
    mod = sys.modules.get(name) or importlib.import_module(name)
    twins = 0
    for attr, obj in vars(mod).items():
        if isinstance(obj, CPUDispatcher) and obj.targetoptions.get("parallel"):
            pytest.fail(f"{name}.{attr} is a parallel kernel without a serial twin")
        twins += isinstance(obj, _cpu.TwinKernel)
    assert twins > 0, f"{name} has no twin kernel: the check above saw nothing"


def test_one_thread_runs_the_serial_twin(threads):
    kern = _cpu._sample_bernoulli
    called = []
    rng = np.random.default_rng(5)
    phi, u = rng.normal(size=(3, 4)), rng.random((3, 2, 4))
    z1, z2 = (np.empty((3, 2, 4), np.int64) for _ in range(2))
    real = kern.parallel, kern.serial
    try:
        kern.parallel = lambda *a: called.append("parallel") or real[0](*a)
        kern.serial = lambda *a: called.append("serial") or real[1](*a)
        numba.set_num_threads(1)
        kern(phi, u, z1)
        numba.set_num_threads(threads)
        kern(phi, u, z2)
    finally:
        kern.parallel, kern.serial = real
    assert called == ["serial", "parallel" if threads > 1 else "serial"]
    assert np.array_equal(z1, z2)


#: by default one estimator per family with its own kernels (each serial twin compiles on first
#: use, about a second each); every registered estimator in the slow run
QUICK = {"ar", "arm", "gumbel_softmax", "nvil", "vimco", "rebar", "gst", "imle_ksubset"}


@pytest.mark.parametrize("est,dist", [c if c.values[0].name in QUICK
                                      else pytest.param(*c.values, id=c.id, marks=pytest.mark.slow)
                                      for c in CASES])
def test_serial_twins_give_the_parallel_numbers(est, dist, threads, rng):
    _, pr = builtin_problems(dist)[0]
    opts = dict(est.examples[-1])
    params = pr.params + 0.3 * rng.standard_normal((5,) + pr.params.shape)
    noise = est.draw_noise(rng, dist, params.shape, 3, **opts)
    out = []
    for t in (threads, 1):
        numba.set_num_threads(t)
        out.append(est.estimate(dist, params, pr.objective, noise, backend="cpu", **opts))
    assert np.array_equal(out[0], out[1], equal_nan=True)
