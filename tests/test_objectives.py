"""Objectives: NumPy and jitted evaluation agree; extensions agree with f and have the right gradient."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from reference import BinaryQuadratic, JitObjective, TableObjective, random_table
from reference.distributions import Distribution
from reference.objectives import evaluate_all_jit


@pytest.mark.parametrize("K,C,domain", [(1, 2, "binary"), (3, 2, "binary"), (2, 3, "categorical"),
                                        (3, 4, "categorical")])
def test_table_numpy_and_jit_agree(K, C, domain):
    obj = random_table(K, C, seed=K * 10 + C, domain=domain)
    Z = Distribution.enumerate_configs(K, C)
    vals = obj(Z)
    assert np.array_equal(vals, obj.values_table.ravel())
    assert np.array_equal(evaluate_all_jit(obj.jit_fn, obj.jit_data, K, C), vals)


@pytest.mark.parametrize("K,C,domain", [(3, 2, "binary"), (2, 3, "categorical")])
def test_multilinear_extension(K, C, domain, rng):
    obj = random_table(K, C, seed=3, domain=domain)
    Z = Distribution.enumerate_configs(K, C)
    y_vertices = Z.astype(float) if domain == "binary" else np.eye(C)[Z]
    val, _ = obj.relaxed(y_vertices)
    assert np.allclose(val, obj(Z), atol=1e-14)
    y = rng.random((K,)) if domain == "binary" else rng.dirichlet(np.ones(C), size=K)
    _, grad = obj.relaxed(y)
    h = 1e-6
    for idx in np.ndindex(y.shape):
        e = np.zeros_like(y)
        e[idx] = h
        fd = (obj.relaxed(y + e)[0] - obj.relaxed(y - e)[0]) / (2 * h)
        assert abs(fd - grad[idx]) < 1e-8


def test_quadratic_toy():
    obj = BinaryQuadratic(3, 0.49)
    z = np.array([[0, 1, 1], [0, 0, 0]])
    assert np.allclose(obj(z), [0.49**2 + 2 * 0.51**2, 3 * 0.49**2])
    assert np.allclose(obj.table().ravel(), obj(Distribution.enumerate_configs(3, 2)))
    val, grad = obj.relaxed(np.array([0.2, 0.5, 1.0]))
    assert np.allclose(grad, 2 * (np.array([0.2, 0.5, 1.0]) - 0.49))


@njit
def _count_ones(z, data):
    return data[0] * np.sum(z)


def test_user_jit_objective():
    obj = JitObjective(_count_ones, [2.0], K=4, C=3)
    Z = Distribution.enumerate_configs(4, 3)
    assert np.array_equal(obj(Z), 2.0 * Z.sum(1))
    assert obj.table().shape == (3,) * 4
    with pytest.raises(TypeError, match="njit"):
        JitObjective(lambda z, d: 0.0, [0.0], 2, 2)


def test_bad_objectives():
    with pytest.raises(ValueError, match="shape"):
        TableObjective(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        TableObjective(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        random_table(2, 2)(np.array([0, 2]))
    with pytest.raises(ValueError, match="last axis"):
        random_table(2, 2)(np.array([0, 1, 1]))
