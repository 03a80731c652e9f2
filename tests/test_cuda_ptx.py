"""Every registered CUDA kernel compiles to PTX for sm_90 (real compilation, no GPU needed).

The simulator (used by the other CUDA tests without a GPU) misses typing errors that real
compilation finds; this test runs ``python -m reference.ptx`` in a fresh process without
NUMBA_ENABLE_CUDASIM, because numba picks the simulator at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reference import REGISTRY


def test_all_kernels_compile_to_ptx_sm90():
    pytest.importorskip("numba_cuda", reason="the 'cuda' extra (numba-cuda[cu13]) is not installed")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-m", "reference.ptx", "--cc", "9.0"], env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("ok  sm_90")]
    # every estimator family's CUDA module was imported and contributed its kernels
    names = {ln.split()[4].split("(")[0] for ln in lines}
    assert {"sample_bernoulli", "sample_categorical", "score_combine_bernoulli",
            "score_combine_categorical"} <= names
    # float64 and float32 signatures, except kernels whose inputs are float64 whatever the
    # parameters' dtype (joint_tables, wor_tables: log q and inclusion probabilities of the
    # joint space, built from a float64 table; CARMS's kernels: the host widens parameters,
    # noise and answers to float64 and casts the estimates back)
    float64_only = {"joint_tables", "wor_tables", "carms_ratio", "carms_queries", "carms_bernoulli",
                    "carms_categorical"}
    assert len(lines) >= 2 * len(names - float64_only) + len(float64_only & names)
    assert len(REGISTRY) >= 2
