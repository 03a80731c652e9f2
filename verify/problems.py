"""Built-in problems (DESIGN.md section 7) used by the tests, the report and the scripts."""

from __future__ import annotations

import numpy as np

from reference.objectives import binary_quadratic, categorical_toy, random_table

from .exact import Problem, make_problem

__all__ = ["builtin_problems", "TOY_TS"]

#: the binary toy's targets: close to 0.5 the two outcomes differ little and variance dominates
TOY_TS = (0.45, 0.49, 0.499, 0.501)


def _logits(shape: tuple[int, ...], seed: int, scale: float = 1.5) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape)


def builtin_problems(dist: str) -> list[tuple[str, Problem]]:
    """Labelled problems for ``"bernoulli"`` or ``"categorical"`` logits, or ``"ksubset"``
    scores (deterministic; the subset size ``k`` is the estimators' option)."""
    if dist == "bernoulli":
        out = [(f"quadratic K=4 t={t}", make_problem(dist, np.zeros(4), binary_quadratic(4, t)))
               for t in TOY_TS]
        out.append(("random table K=4", make_problem(dist, _logits((4,), 1), random_table(4, 2, 1))))
        extreme = np.array([-30.0, 0.0, 12.0, 30.0])
        out.append(("random table K=4, logits up to 30",
                    make_problem(dist, extreme, random_table(4, 2, 2))))
        return out
    if dist == "categorical":
        return [
            ("random table K=2 C=3", make_problem(dist, _logits((2, 3), 3), random_table(2, 3, 3))),
            ("random table K=3 C=4", make_problem(dist, _logits((3, 4), 4), random_table(3, 4, 4))),
            ("random table K=2 C=3, logits up to 30",
             make_problem(dist, np.array([[-30.0, 0.0, 30.0], [5.0, -12.0, 0.5]]),
                          random_table(2, 3, 5))),
            ("toy K=1 C=10", make_problem(dist, np.zeros((1, 10)), categorical_toy(10))),
        ]
    if dist == "ksubset":
        # k is an estimator option (records' examples use k <= 3), so every problem has n >= 4
        from reference.objectives import SubsetQuadratic

        b5 = np.random.default_rng(6).random(5)
        return [
            ("subset quadratic n=5", make_problem(dist, _logits((5,), 6), SubsetQuadratic(b5))),
            ("random table n=4", make_problem(dist, _logits((4,), 7), random_table(4, 2, 7))),
            ("subset quadratic n=6, scores up to 30",
             make_problem(dist, np.array([30.0, -30.0, 0.0, 2.0, -1.0, 29.0]),
                          SubsetQuadratic(np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.2])))),
        ]
    raise ValueError(f"no built-in problems for {dist!r}")
