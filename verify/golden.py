"""Golden vectors: language-neutral test files for ports (``python -m verify golden DIR``).

For every registered estimator, every example option set of its record (``examples``), every
distribution it supports and every built-in problem of that distribution
(:func:`verify.problems.builtin_problems`), :func:`write_golden` writes one ``.npz`` file and
an entry in ``DIR/manifest.json``. A port in any language that reads NumPy's ``.npz`` (a zip of
``.npy`` files) can test itself against them without Python, Numba or this package.

``manifest.json``: ``{"format": 1, "R": R, "seed": seed, "entries": [...]}``; each entry has
``estimator``, ``dist``, ``options`` (JSON; an option that is an object, such as RELAX's
``surrogate``, is written as ``{"type": class name, **its attributes}``), ``example`` (the
index of the option set in the record's ``examples``), ``problem`` (the
built-in problem's label), ``problem_source`` (Python that rebuilds it), ``file`` (the
``.npz`` name, relative to ``DIR``), ``moments_method`` and ``moments_error_bound`` (0 for
exact moments; else a bound on every entry's absolute error) and ``noise`` (the noise
specification: name, law, per-replicate shape, the documented use).

Each ``.npz`` holds float64 arrays unless stated (``event`` is ``(K,)`` for Bernoulli and
k-subset, ``(K, C)`` for categorical; no batch axes):

=====================  =============================================================
``params``             ``event``: logits or scores
``noise_<name>``       ``(R, *per_replicate)``: each primitive noise array
``configs``            int64 ``(C**K, K)``: every configuration, ``z_0`` slowest
``f``                  ``(C**K,)``: the objective at every configuration (``configs`` order)
``queries_z``          int64 ``(R, M, K)``: the configurations the reference queried
``relaxed_y``          ``(R, M2, *point)``: relaxed query points (only estimators that need
                       ``f`` and ``grad f`` there; their objectives are not tables, so the
                       answers are stored): ``relaxed_f`` ``(R, M2)`` and ``relaxed_grad``
                       ``(R, M2, *point)``
``estimates``          ``(R, *event)``: the NumPy reference's per-replicate estimates
``mean``, ``cov``      ``event`` and ``(P, P)``: the exact moments of one replicate
=====================  =============================================================

A port passes when it reproduces ``estimates`` from ``params``, the noise and the objective's
answers (``|port - estimates| <= rtol * max(|estimates|, |f|, |relaxed_grad|)`` with ``rtol``
about ``1e-12`` in float64, ``1e-4`` in float32, as :func:`verify.check_port` uses), and its
own-noise replicates agree with ``mean`` and ``cov``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

import numpy as np

from reference import REGISTRY
from reference._validate import seed_value
from reference.contract import evaluate

from .problems import builtin_problems

__all__ = ["golden_entries", "write_golden", "main"]


def _json_option(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **dataclasses.asdict(value)}
    attrs = {k: _json_option(v) for k, v in vars(value).items()} if hasattr(value, "__dict__") \
        else {"repr": repr(value)}
    return {"type": type(value).__name__, **attrs}


def golden_entries(names: list[str] | None = None) -> list[tuple[str, str, int, int, str]]:
    """``(estimator, dist, option index, problem index, problem label)`` for every file, in
    manifest order; ``names`` restricts to those registry names (``ValueError`` if unknown)."""
    if isinstance(names, str):  # "arm" would be read as the names "a", "r", "m"
        raise TypeError(f"names must be a list of registry names, got the string {names!r}")
    if names is not None:
        unknown = sorted(set(names) - set(REGISTRY))
        if unknown:
            raise ValueError(f"unknown estimators {unknown}; registered: {sorted(REGISTRY)}")
    problems: dict[str, list] = {}
    out = []
    for name, est in REGISTRY.items():
        if names is not None and name not in names:
            continue
        for dist in est.distributions:
            problems.setdefault(dist, builtin_problems(dist))
            for oi in range(len(est.examples)):
                for j, (label, _) in enumerate(problems[dist]):
                    out.append((name, dist, oi, j, label))
    return out


def write_golden(directory: str, *, R: int = 16, seed: int = 0,
                 names: list[str] | None = None, verbose: bool = False) -> dict[str, Any]:
    """Write the golden files and ``manifest.json`` into ``directory`` (created if needed);
    returns the manifest. Entry ``i`` draws its noise from ``default_rng([seed, i])``."""
    if isinstance(R, bool) or not isinstance(R, (int, np.integer)) or R < 1:
        raise ValueError(f"R must be a positive integer, got {R!r}")
    seed = seed_value(seed)
    golden_entries(names)  # unknown names refused before the directory is made
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"directory {directory!r} cannot be created: {exc}") from None
    problems: dict[str, list] = {}
    entries = []
    for i, (name, dist, oi, j, label) in enumerate(golden_entries(names)):
        est = REGISTRY[name]
        opts = dict(est.examples[oi])
        problem = problems.setdefault(dist, builtin_problems(dist))[j][1]
        noise = est.draw_noise(np.random.default_rng([seed, i]), dist, problem.params.shape, R,
                               **opts)
        q = est.queries(dist, problem.params, noise, **opts)
        a = evaluate(problem.objective, q)
        g = est.combine(dist, problem.params, q, a, **opts)
        m = est.exact_moments(dist, problem.params, problem.objective, **opts)
        K, C = problem.K, problem.C
        arrays = {"params": problem.params, "configs": problem.dist.enumerate_configs(K, C),
                  "f": problem.f_table().ravel(), "queries_z": q.z, "estimates": g,
                  "mean": m.mean, "cov": m.cov}
        arrays.update({f"noise_{k}": v for k, v in noise.items()})
        if q.y is not None:
            arrays.update(relaxed_y=q.y, relaxed_f=a.f_y, relaxed_grad=a.grad_y)
        fname = f"{i:04d}_{name}_{dist}_o{oi}_p{j}.npz"
        np.savez(os.path.join(directory, fname), **arrays)
        full = est.options(**opts)
        spec = [{"name": s.name, "law": s.law,
                 "shape": list(s.shape_for(problem.dist.name, K, C, full)), "doc": s.doc}
                for s in est.noise]
        entries.append({"estimator": name, "dist": dist,
                        "options": {k: _json_option(v) for k, v in opts.items()},
                        "example": oi,
                        "problem": label, "problem_source": problem.source(), "file": fname,
                        "moments_method": m.method, "moments_error_bound": m.error_bound,
                        "noise": spec})
        if verbose:
            print(f"{fname}: {m.method}", flush=True)
    manifest = {"format": 1, "R": int(R), "seed": int(seed), "entries": entries}
    with open(os.path.join(directory, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``python -m verify golden DIR [--R R] [--seed S] [--estimators NAME ...]``."""
    parser = argparse.ArgumentParser(prog="python -m verify golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="where to write manifest.json and the .npz files")
    parser.add_argument("--R", type=int, default=16, help="replicates of noise per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", nargs="*", help="only these registry names")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.R < 1:
        parser.error(f"--R must be >= 1, got {args.R}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    try:
        manifest = write_golden(args.directory, R=args.R, seed=args.seed, names=args.estimators,
                                verbose=not args.quiet)
    except (TypeError, ValueError, OSError) as exc:
        print(f"python -m verify golden: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(manifest['entries'])} entries to {args.directory}/manifest.json")
    return 0
