"""Mutation testing by hand: realistic one-line bugs in the formula, kernel and oracle modules,
each run against the tests that should catch it; prints the kill rate and the survivors.

    python scripts/mutation_test.py [--only SUBSTRING] [--json OUT] [--timeout 600]

Each mutant is applied to a fresh copy of the tracked tree (the working tree is never
touched), then its tests run with ``pytest -x``: a failing run kills the mutant, a passing
run lets it survive, a run past ``--timeout`` counts as killed (reported as such). A small
driver of our own rather than mutmut: the mutants are chosen to be the bugs a porter or a
maintainer actually makes (off-by-one in a denominator, a flipped comparison at a CDF step, a
lost factor in a weight, a disabled validation), and each carries the tests that own it, so a
run takes minutes, not hours. Survivors are listed with the reason each is harmless or the
test that now kills it in ``KNOWN_SURVIVORS``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


def _t(*args: str) -> tuple[str, ...]:
    return args


MUTANTS = [
    # ---------------------------------------------------------------- samplers (kernels)
    Mutant("categorical CDF step < -> <= (kernels)", "reference/_core.py",
           "if threshold < running:", "if threshold <= running:",
           _t("tests/test_trust.py", "-k", "boundaries")),
    Mutant("Bernoulli threshold < -> <= (kernels)", "reference/_core.py",
           "z[k] = 1 if u[k] < sigmoid(phi[k]) else 0", "z[k] = 1 if u[k] <= sigmoid(phi[k]) else 0",
           _t("tests/test_trust.py", "-k", "boundaries")),
    # ------------------------------------------------------------------ score function
    Mutant("LOO weight 1/(n-1) -> 1/n (kernels)", "reference/estimators/score_function/device.py",
           "return (f[i] - fbar) / (n - 1)", "return (f[i] - fbar) / n",
           _t("tests/test_registry.py", "-k", "reinforce_loo and cpu")),
    Mutant("LOO weight 1/(n-1) -> 1/n (NumPy reference)",
           "reference/estimators/score_function/numpy_reference.py",
           "return (f_z - f_z.mean(axis=-1, keepdims=True)) / (n - 1)",
           "return (f_z - f_z.mean(axis=-1, keepdims=True)) / n",
           _t("tests/test_moments_score.py", "tests/test_registry.py", "-k", "reinforce_loo or loo")),
    # --------------------------------------------------------------- augment-REINFORCE
    Mutant("ARM weight u - 1/2 -> 1/2 - u (kernels)", "reference/estimators/augment_reinforce/device.py",
           "acc += (f[2 * i] - f[2 * i + 1]) * (u[i, k] - 0.5)",
           "acc += (f[2 * i] - f[2 * i + 1]) * (0.5 - u[i, k])",
           _t("tests/test_registry.py", "-k", "arm and cpu")),
    Mutant("DisARM sigma(|phi|) -> sigma(phi) (kernels)", "reference/estimators/augment_reinforce/device.py",
           "s = sigmoid(abs(phi[k]))", "s = sigmoid(phi[k])",
           _t("tests/test_registry.py", "-k", "disarm and cpu")),
    Mutant("DisARM factor 1/2 -> 1 (kernels)", "reference/estimators/augment_reinforce/device.py",
           "acc += 0.5 * (f[2 * i] - f[2 * i + 1]) * w", "acc += (f[2 * i] - f[2 * i + 1]) * w",
           _t("tests/test_registry.py", "-k", "disarm and cpu")),
    # ---------------------------------------------------------------------------- swap
    Mutant("Dirichlet from -log1p(-u) -> -log(u) (kernels)", "reference/estimators/swap/device.py",
           "e = -math.log1p(-float(u[c]))", "e = -math.log(max(float(u[c]), 1e-300))",
           _t("tests/test_registry.py", "-k", "ars and cpu and not plus")),
    # ------------------------------------------------------------------- relaxation
    Mutant("straight-through binary p(1-p) -> p (kernels)", "reference/estimators/relaxation/device.py",
           "acc += p * (1.0 - p) * dy[i, k]", "acc += p * dy[i, k]",
           _t("tests/test_registry.py", "-k", "straight_through and bernoulli and cpu")),
    Mutant("straight-through binary p(1-p) -> p (NumPy reference)",
           "reference/estimators/relaxation/numpy_reference.py",
           "return (p * (1.0 - p) * dy).mean(axis=2)", "return (p * dy).mean(axis=2)",
           _t("tests/test_perturbation.py", "tests/test_registry.py", "-k", "straight_through")),
    Mutant("Gumbel-Softmax temperature dropped in the soft sample (kernels)",
           "reference/estimators/relaxation/device.py",
           "e = math.exp((alpha[k, c] + gumbel(u[k, c])) / tau - m)",
           "e = math.exp((alpha[k, c] + gumbel(u[k, c])) - m * tau)",
           _t("tests/test_registry.py", "-k", "gumbel_softmax and categorical and cpu")),
    # ------------------------------------------------------------------- st_variants
    Mutant("ReinMax 1/2 J(pi_0) -> J(pi_0) (kernels)", "reference/estimators/st_variants/device.py",
           "out[k, c] += 2.0 * p1 * (dy[s_, k, c] - d1) - 0.5 * p0 * (dy[s_, k, c] - d0)",
           "out[k, c] += 2.0 * p1 * (dy[s_, k, c] - d1) - p0 * (dy[s_, k, c] - d0)",
           _t("tests/test_registry.py", "-k", "reinmax and cpu")),
    # ------------------------------------------------------------------- k-subset DP
    Mutant("log-add-exp loses its log1p (k-subset DP)", "reference/ksubset.py",
           "return m + math.log1p(math.exp(lo - m))", "return m + math.exp(lo - m)",
           _t("tests/test_ksubset.py")),
    # ------------------------------------------------------------------------- oracle
    Mutant("exact gradient drops p(1-p) (Bernoulli)", "verify/exact.py",
           "return p[:, 1] * p[:, 0] * (m[:, 1] - m[:, 0])", "return p[:, 1] * (m[:, 1] - m[:, 0])",
           _t("tests/test_exact.py")),
    Mutant("score matrix sign of -p", "verify/exact.py",
           "S = np.where(onehot, others[None], -p[None])", "S = np.where(onehot, others[None], p[None])",
           _t("tests/test_moments_score.py", "tests/test_trust.py", "-k", "moments")),
    Mutant("REINFORCE covariance / n -> / (n - 1)", "verify/moments/score_function.py",
           "cov = _weighted_gram(dev, q) / n", "cov = _weighted_gram(dev, q) / max(n - 1, 1)",
           _t("tests/test_moments_score.py")),
    Mutant("LOO U-statistic 2(n-2) -> 2(n-1)", "verify/moments/score_function.py",
           "cov = 2.0 / (n * (n - 1)) * (2 * (n - 2) * sigma1 + sigma2)",
           "cov = 2.0 / (n * (n - 1)) * (2 * (n - 1) * sigma1 + sigma2)",
           _t("tests/test_moments_score.py")),
    Mutant("swap oracle drops a polarization term", "verify/moments/swap.py",
           "second[k, :, k2, :] = (t1[:, None] + t2[None, :] - t3 - t4) / (2 * C)",
           "second[k, :, k2, :] = (t1[:, None] + t2[None, :] - t3) / (2 * C)",
           _t("tests/test_swap.py", "-k", "not search and not slow")),
    # ------------------------------------------- issue 16: accuracy, bounds, budgets
    Mutant("binary covariance uncentred again", "verify/moments/augment_reinforce.py",
           "        A[h:] = f * wbar_t - mean[h:, None]",
           "        A[h:] = f * wbar_t - 0.0 * mean[h:, None]",
           _t("tests/test_certificates.py", "-k", "binary")),
    Mutant("SIMPLE: 1 - mu by subtraction", "verify/moments/ksubset_perturbation.py",
           "    not_mu = p @ ~Zb  # 1 - mu without cancellation", "    not_mu = 1.0 - mu",
           _t("tests/test_certificates.py", "-k", "simple")),
    Mutant("ST variants: Jacobian product by the cancelling form", "verify/moments/st_variants.py",
           '    return y * np.einsum("...d,...cd->...c", y, dy[..., :, None] - dy[..., None, :])',
           "    return y * (dy - (y * dy).sum(axis=-1, keepdims=True))",
           _t("tests/test_certificates.py", "-k", "reinmax or gst")),
    Mutant("double CV p(1-p) by subtraction", "verify/moments/control_variates.py",
           "        pq = np.exp(log_sigmoid(pr.params) + log_sigmoid(-pr.params))",
           "        pq = sigmoid(pr.params) * (1 - sigmoid(pr.params))",
           _t("tests/test_certificates.py", "-k", "double_cv")),
    Mutant("Gumbel-Softmax RQMC without the defensive mixture", "verify/moments/relaxation.py",
           "    return shift, np.where(np.exp(-shift) < eps, eps, 0.0)",
           "    return shift, np.zeros_like(shift)",
           _t("tests/test_certificates.py", "-k", "rqmc_bounds")),
    Mutant("k-subset RQMC without the resolution floor", "verify/moments/ksubset_perturbation.py",
           "                       m.error_bound + floor,", "                       m.error_bound,",
           _t("tests/test_certificates.py", "-k", "ksubset")),
    # (a mutant that lets an oversized problem through exhausts the machine's memory, as the
    # first run's "memory budget never refuses" did: this one freezes the limit instead)
    Mutant("memory limit frozen at its default (not configurable)", "verify/exact.py",
           "    if mem > MAX_MEMORY_BYTES:", "    if mem > 8 * 2**30:",
           _t("tests/test_budgets.py", "-k", "configurable")),
    Mutant("CUDA Bernoulli sampler compares with <= (hard noise)", "reference/_core.py",
           "z[k] = 1 if u[k] < sigmoid(phi[k]) else 0", "z[k] = 1 if u[k] <= sigmoid(phi[k]) else 0",
           _t("tests/test_cuda_hard_noise.py", "-k", "bernoulli")),
    # -------------------------------------------------------------- statistics, ports
    Mutant("rank threshold > -> >= (whitening)", "verify/stats.py",
           "keep = lam > _RANK_RTOL * lam_max if lam_max > 0 else np.zeros(P, bool)",
           "keep = lam >= 0.0 if lam_max > 0 else np.zeros(P, bool)",
           _t("tests/test_stats_and_port.py", "tests/test_trust.py", "-k", "check_samples or stats")),
    Mutant("port tolerance 1000x looser", "verify/port.py",
           "tol = rtol * max(float(np.abs(ref).max()), 1e-300)",
           "tol = 1e3 * rtol * max(float(np.abs(ref).max()), 1e-300)",
           _t("tests/test_trust.py", "-k", "port_checker")),
    Mutant("port checker stacks identical batch elements", "verify/port.py",
           "        params[1:] += shift", "        params[1:] += 0.0 * shift",
           _t("tests/test_trust.py", "-k", "port_checker")),
    # ---------------------------------------------------------------------- validation
    Mutant("phase 2 no longer checks that queries belong", "reference/contract.py",
           "        if B:\n            self._check_queries_belong",
           "        if False:\n            self._check_queries_belong",
           _t("tests/test_trust.py", "-k", "combine_refuses")),
    Mutant("float_array lets NaN through", "reference/_validate.py",
           "    if not np.all(np.isfinite(out)):", "    if False:",
           _t("tests/test_errors.py", "tests/test_fuzz.py", "-k", "nan")),
    Mutant("check_samples accepts NaN moments", "verify/stats.py",
           "    _check_finite_moments(moments)", "    pass",
           _t("tests/test_trust.py", "-k", "non_finite")),
]

#: survivors seen, with the reason each is harmless (or the test added since); the one survivor
#: of the first run, "port tolerance 1000x looser", is killed since by
#: tests/test_trust.py::test_port_checker_catches_a_relative_error_of_1e_9 (now also 1e-11)
KNOWN_SURVIVORS: dict[str, str] = {}


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run(mutants: list[Mutant], timeout: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        _copy_tree(tree)
        env = dict(os.environ, PYTHONPATH=str(tree), CI="true", NUMBA_CACHE_DIR=str(Path(tmp) / "nc"),
                   PYTHONDONTWRITEBYTECODE="1")
        for m in mutants:
            target = tree / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                rows.append({"mutant": m.name, "status": "NOT APPLIED (snippet not found once)"})
                print(f"{'not applied':10s} {m.name}", flush=True)
                continue
            target.write_text(original.replace(m.old, m.new))
            t0 = time.perf_counter()
            try:
                # "slow or not slow": a mutant's killing tests run even where marked slow
                # (the default run deselects those)
                out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                      "-m", "slow or not slow", *m.tests], cwd=tree, env=env,
                                     capture_output=True, text=True, timeout=timeout, check=False)
                status = "killed" if out.returncode == 1 else ("survived" if out.returncode == 0
                                                               else f"error (pytest exit {out.returncode})")
                tail = out.stdout.strip().splitlines()[-1:] if out.stdout else []
            except subprocess.TimeoutExpired:
                status, tail = "killed (timeout)", []
            finally:
                target.write_text(original)
            secs = time.perf_counter() - t0
            rows.append({"mutant": m.name, "file": m.path, "status": status, "seconds": round(secs, 1),
                         "tests": " ".join(m.tests), "last_line": tail[0] if tail else ""})
            print(f"{status:10s} {secs:6.1f}s  {m.name}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="run the mutants whose name contains this")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant (> 0)")
    args = ap.parse_args(argv)
    if not args.timeout > 0:
        ap.error("--timeout must be > 0")
    chosen = [m for m in MUTANTS if args.only is None or args.only in m.name]
    if not chosen:
        ap.error(f"no mutant matches --only {args.only!r}")
    if args.json:  # before an hour of mutants, not after it
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import _cli

        _cli.writable_dir(ap, "--json's folder", str(Path(args.json).resolve().parent))
    rows = run(chosen, args.timeout)
    applied = [r for r in rows if not r["status"].startswith("NOT APPLIED")]
    killed = [r for r in applied if r["status"].startswith("killed")]
    survivors = [r for r in applied if r["status"] == "survived"]
    errors = [r for r in applied if r["status"].startswith("error")]
    rate = len(killed) / len(applied) if applied else 0.0
    print(f"\n{len(killed)} of {len(applied)} mutants killed ({100 * rate:.0f}%); "
          f"{len(survivors)} survived, {len(errors)} errors, {len(rows) - len(applied)} not applied")
    for r in survivors:
        print(f"  survivor: {r['mutant']} ({r['file']}): "
              f"{KNOWN_SURVIVORS.get(r['mutant'], 'no reason recorded: add a test')}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if not errors and len(rows) == len(applied) else 1


if __name__ == "__main__":
    sys.exit(main())
