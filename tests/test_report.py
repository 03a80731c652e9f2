"""The main job, end to end: ``python -m verify --json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_report_json_rows(tmp_path):
    path = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-m", "verify", "--json", str(path), "--estimators",
                          "reinforce", "reinforce_loo", "--R", "1000"], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads(path.read_text())
    assert {r["estimator"] for r in rows} == {"reinforce", "reinforce_loo"}
    keys = {"estimator", "problem", "unbiased", "bias_max_abs", "variance_trace",
            "evals_per_replicate", "mc_check", "backends_agree"}
    for r in rows:
        assert keys <= set(r)
        assert r["mc_check"] == "pass" and r["backends_agree"] is True
        assert r["bias_max_abs"] <= 1e-10
        assert "cuda" in r["backends_checked"]
    assert {r["distribution"] for r in rows} == {"bernoulli", "categorical"}
