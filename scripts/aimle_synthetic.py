"""The synthetic k-subset experiment of the AIMLE paper (Minervini, Franceschi, Niepert, AAAI
2023, arXiv 2209.04862, section "synthetic experiments"), with exact gradients.

Problem: ``p_theta(z) ∝ exp(theta·z)`` over the ``binom(10, 5) = 252`` subsets of size 5 of 10
items; loss ``L(z) = ||z - b||^2`` with ``b`` uniform in [0, 1)^10. The exact gradient of
``E_p[L]`` comes from enumeration (:func:`verify.exact.ksubset_gradient`).

Estimators (all estimate ``grad_theta E_p[L]``):
* ``imle``: registry ``imle_ksubset``, Sum-of-Gamma noise, ``lambda = 1``.
* ``aimle``: registry ``aimle_ksubset``, two-sided target, adaptive ``lambda = beta ||theta|| /
  ||dy||`` (``beta = 1`` in part 1; adapted by
  :func:`reference.estimators.relaxation.numpy_reference.aimle_update` in part 2, target 2 non-zero
  entries per sample, step 0.01).
* ``simple``: registry ``simple`` (exact sample forward, exact marginals' Jacobian backward).
* ``ste``: straight-through on k-subsets (not a registry record): forward ``topk(theta +
  eps)`` with Sum-of-Gamma ``eps``, backward the identity, ``g = dy``.
* ``gumbel_softmax``: a Gumbel-Softmax-style relaxed k-subset (not a registry record):
  ``y = mu((theta + G) / tau)``, the exact marginals of the k-subset distribution with
  perturbed, tempered scores (tends to ``topk(theta + G)`` as ``tau -> 0``); ``g = (1/tau)
  Cov_{(theta+G)/tau}(z) dy(y)``; ``tau = 0.5``.
* ``reinforce_loo``: ``S >= 2`` exact samples, ``g = 1/(S-1) sum_i (L_i - Lbar)(z_i - mu)``
  (the k-subset score ``grad log p(z) = z - mu``).

Part 1: cosine similarity between the ``S``-sample estimate and the exact gradient for ``S`` in
{1, 2, 5, 10, 20, 50, 100}, mean and standard deviation over replicates. Part 2: SGD with
momentum on ``theta`` (``S = 10`` samples a step), optimality gap ``E_p[L] - min_z L(z)`` over
several seeds, all starting from the ``theta`` of part 1. Prints tables; saves a plot
(``--plot``, default ``aimle_synthetic.png``) when matplotlib is installed. Runs in about
three minutes on two cores (``--quick``: under one): ``python scripts/aimle_synthetic.py
[--quick]``. Work units: part 1 one per method, part 2 one per (method, seed), each with its own
generator seeded from its identity (``[seed, S]``, ``100 + s``); ``--workers N`` or
``--scheduler ADDRESS`` runs them on a Dask cluster, with the same numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for _cli when imported
import _cli  # noqa: E402
import numpy as np  # noqa: E402

from reference import get_estimator  # noqa: E402
from reference import ksubset as ks  # noqa: E402
from reference.contract import evaluate  # noqa: E402
from reference.estimators.ksubset_perturbation.numpy_reference import aimle_nonzeros  # noqa: E402
from reference.estimators.relaxation.numpy_reference import AIMLEState, aimle_update  # noqa: E402
from reference.objectives import SubsetQuadratic  # noqa: E402
from verify.exact import ksubset_expectation, ksubset_gradient, make_problem  # noqa: E402

N, K = 10, 5
SIZES = (1, 2, 5, 10, 20, 50, 100)
TAU_GS = 0.5


def _registry_estimate(name: str, theta: np.ndarray, obj, S: int, R: int,
                       rng: np.random.Generator, **opts) -> np.ndarray:
    est = get_estimator(name)
    noise = est.draw_noise(rng, "ksubset", theta.shape, R, k=K, S=S, **opts)
    return est.estimate("ksubset", theta, obj, noise, backend="cpu", k=K, S=S, **opts)


def estimate(method: str, theta: np.ndarray, obj, S: int, R: int, rng: np.random.Generator,
             beta: float = 1.0) -> np.ndarray:
    """``R`` replicates ``(R, n)`` of the ``S``-sample estimate of ``grad E_p[L]``."""
    if method == "imle":
        return _registry_estimate("imle_ksubset", theta, obj, S, R, rng, lambda_=1.0)
    if method == "aimle":
        return _registry_estimate("aimle_ksubset", theta, obj, S, R, rng, adaptive=True, beta=beta)
    if method == "simple":
        return _registry_estimate("simple", theta, obj, S, R, rng)
    if method == "ste":
        eps = ks.sum_of_gamma_noise(rng.random((R, S, 10, N)), K, 1.0)
        z = ks.top_k(theta + eps, K).astype(np.float64)
        return obj.relaxed(z)[1].mean(axis=1)
    if method == "gumbel_softmax":
        scores = (theta + ks.gumbel(rng.random((R * S, N)))) / TAU_GS
        y = ks.marginals(scores, K)
        dy = obj.relaxed(y)[1]
        g = np.einsum("mij,mj->mi", ks.covariance(scores, K), dy) / TAU_GS
        return g.reshape(R, S, N).mean(axis=1)
    if method == "reinforce_loo":
        if S < 2:
            return np.full((R, N), np.nan)
        z = ks.sample(theta, rng.random((R, S, N)), K)
        f = obj(z)
        w = (f - f.mean(axis=1, keepdims=True)) / (S - 1)
        return np.einsum("rs,rsn->rn", w, z - ks.marginals(theta, K))
    raise ValueError(method)


METHODS = ("imle", "aimle", "simple", "ste", "gumbel_softmax", "reinforce_loo")


def cosine_row(m: str, theta: np.ndarray, obj, R: int, seed: int) -> np.ndarray:
    """``(len(SIZES), 2)``: mean and std of the cosine for method ``m`` at every ``S`` (the
    generator of ``S`` is ``default_rng([seed, S])``, whatever else runs)."""
    grad = ksubset_gradient(make_problem("ksubset", theta, obj), K)
    rows = []
    for S in SIZES:
        g = estimate(m, theta, obj, S, R, np.random.default_rng([seed, S]))
        norm = np.linalg.norm(g, axis=1) * np.linalg.norm(grad)
        cos = np.where(norm > 0, g @ grad / np.where(norm > 0, norm, 1), 0.0)
        cos[np.isnan(g).any(axis=1)] = np.nan  # REINFORCE-LOO needs S >= 2
        rows.append((np.mean(cos), np.std(cos)))
    return np.array(rows)


def cosine_table(theta: np.ndarray, obj, R: int, seed: int) -> dict[str, np.ndarray]:
    return {m: cosine_row(m, theta, obj, R, seed) for m in METHODS}


def optimise(method: str, theta0: np.ndarray, obj, steps: int, S: int, lr: float, seed: int,
             best: float) -> np.ndarray:
    """SGD with momentum 0.9 on the exact objective's parameters; returns the gap per step."""
    rng = np.random.default_rng(seed)
    theta, velocity = theta0.copy(), np.zeros_like(theta0)
    state = AIMLEState(beta=1.0, nnz_ema=2.0)
    gaps = np.empty(steps)
    aimle = get_estimator("aimle_ksubset")
    for t in range(steps):
        if method == "aimle":
            opts = dict(k=K, S=S, adaptive=True, beta=state.beta)
            noise = aimle.draw_noise(rng, "ksubset", theta.shape, 1, **opts)
            q = aimle.queries("ksubset", theta, noise, backend="cpu", **opts)
            a = evaluate(obj, q)
            g = aimle.combine("ksubset", theta, q, a, backend="cpu", **opts)[0]
            state = aimle_update(state, aimle_nonzeros("ksubset", theta, q, a, **opts),
                                 target_nnz=2.0, step=0.01)
        else:
            g = estimate(method, theta, obj, S, 1, rng)[0]
        velocity = 0.9 * velocity - lr * g
        theta = theta + velocity
        gaps[t] = ksubset_expectation(make_problem("ksubset", theta, obj), K) - best
    return gaps


def _cosine_unit(m: str, b: np.ndarray, theta: np.ndarray, R: int, seed: int) -> np.ndarray:
    return cosine_row(m, theta, SubsetQuadratic(b), R, seed)


def _optimise_unit(m: str, b: np.ndarray, theta0: np.ndarray, steps: int, seed: int,
                   best: float) -> np.ndarray:
    return optimise(m, theta0, SubsetQuadratic(b), steps, 10, 0.05, seed, best)


def experiment(R: int, steps: int, seeds: int, seed: int, args: argparse.Namespace):
    """``(best, cos, curves)``: part 1's cosines per method and part 2's gap curves per method
    (``(seeds, steps)``), every piece a work unit run where ``args`` says."""
    from verify.parallel import Unit

    rng = np.random.default_rng(seed)
    b = rng.random(N)
    theta = rng.standard_normal(N)
    best = float(SubsetQuadratic(b)(ks.enumerate_subsets(N, K)).min())
    # part 2 starts from part 1's theta, not 0: the adaptive rule lambda = beta ||theta|| /
    # ||dy|| gives lambda = 0 there, and AIMLE (like the authors' code) then returns a zero
    # gradient for ever
    units = [Unit(f"cosine {m} R={R} seed={seed}", _cosine_unit, (m, b, theta, R, seed))
             for m in METHODS]
    units += [Unit(f"optimise {m} steps={steps} seed={100 + s} of {seed}", _optimise_unit,
                   (m, b, theta, steps, 100 + s, best)) for m in METHODS for s in range(seeds)]
    out = dict(_cli.iter_results(units, args, ordered=False))
    cos = {m: out[f"cosine {m} R={R} seed={seed}"] for m in METHODS}
    curves = {m: np.array([out[f"optimise {m} steps={steps} seed={100 + s} of {seed}"]
                           for s in range(seeds)]) for m in METHODS}
    return best, cos, curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer replicates, steps and seeds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="aimle_synthetic.png", help="where to save the plot")
    _cli.add_cluster_flags(parser)
    args = parser.parse_args(argv)
    _cli.check_cluster(parser, args)
    _cli.at_least(parser, "--seed", args.seed, 0)
    _cli.writable_dir(parser, "--plot's folder", os.path.dirname(os.path.abspath(args.plot)))
    R, steps, seeds = (50, 100, 2) if args.quick else (200, 300, 5)
    t0 = time.time()
    best, cos, curves = experiment(R, steps, seeds, args.seed, args)

    print(f"Part 1: cosine(estimate, exact gradient), n={N}, k={K}, {R} replicates "
          "(mean ± std)")
    print("S".rjust(6) + "".join(f"{m:>20s}" for m in METHODS))
    for i, S in enumerate(SIZES):
        cells = "".join(f"{cos[m][i, 0]:>12.3f} ± {cos[m][i, 1]:5.3f}" if not math.isnan(cos[m][i, 0])
                        else f"{'n/a':>20s}" for m in METHODS)
        print(f"{S:6d}{cells}")

    print(f"\nPart 2: SGD (momentum 0.9, lr 0.05, S=10), optimality gap E[L] - min L "
          f"(min L = {best:.4f}), {seeds} seeds")
    marks = [steps // 10, steps // 3, steps - 1]
    print("method".rjust(16) + "".join(f"{'step ' + str(t + 1):>20s}" for t in marks))
    for m in METHODS:
        c = curves[m]
        print(f"{m:>16s}" + "".join(f"{c[:, t].mean():>12.4f} ± {c[:, t].std():5.3f}" for t in marks))
    print(f"\n(total {time.time() - t0:.1f} s)")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return 0
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for m in METHODS:
        ax[0].errorbar(SIZES, cos[m][:, 0], yerr=cos[m][:, 1], label=m, capsize=2)
        ax[1].plot(curves[m].mean(axis=0), label=m)
    ax[0].set(xscale="log", xlabel="samples S", ylabel="cosine similarity")
    ax[1].set(yscale="log", xlabel="step", ylabel="optimality gap")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"saved {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
