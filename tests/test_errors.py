"""Bad input gets a clear error, never a wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from reference import Answers, Queries, get_estimator, random_table

LOO = get_estimator("reinforce_loo")
RF = get_estimator("reinforce")


def test_loo_needs_two_samples():
    with pytest.raises(ValueError, match="n >= 2"):
        LOO.options(n=1)
    with pytest.raises(ValueError, match="n >= 2"):
        LOO.draw_noise(np.random.default_rng(0), "bernoulli", (3,), 4, n=1)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_nan_logits(backend):
    alpha = np.zeros((2, 3))
    alpha[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LOO.estimate("categorical", alpha, random_table(2, 3), {"u": np.zeros((4, 2, 2))},
                     backend=backend, n=2)


def test_single_category():
    with pytest.raises(ValueError, match="C >= 2"):
        LOO.estimate("categorical", np.zeros((2, 1)), random_table(2, 2), {"u": np.zeros((4, 2, 2))})


@pytest.mark.parametrize("u_shape", [(4, 3, 2), (4, 2), (4, 2, 3), (2, 4, 2, 2)])
def test_noise_of_wrong_shape(u_shape):
    with pytest.raises(ValueError, match=r"noise\['u'\] must have shape"):
        LOO.queries("categorical", np.zeros((2, 3)), {"u": np.zeros(u_shape)}, n=2)


def test_noise_names_and_range():
    with pytest.raises(ValueError, match="takes noise"):
        LOO.queries("bernoulli", np.zeros(2), {"v": np.zeros((4, 2, 2))}, n=2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        LOO.queries("bernoulli", np.zeros(2), {"u": np.full((4, 2, 2), 1.0)}, n=2)
    with pytest.raises(TypeError, match="mapping"):
        LOO.queries("bernoulli", np.zeros(2), np.zeros((4, 2, 2)), n=2)


def test_wrong_logit_shape_for_distribution():
    with pytest.raises(ValueError, match="at least 1 axes|K >= 1"):
        RF.queries("bernoulli", np.zeros(0), {"u": np.zeros((4, 1, 0))})


def test_unknown_names():
    with pytest.raises(TypeError, match="unknown options"):
        LOO.options(m=3)
    with pytest.raises(ValueError, match="unknown estimator"):
        get_estimator("no-such-estimator")
    with pytest.raises(ValueError, match="backend"):
        LOO.backend("tpu")
    with pytest.raises(ValueError, match="unknown distribution"):
        RF.distribution("poisson")


def test_combine_checks_answers():
    alpha = np.zeros((2, 3))
    noise = {"u": np.random.default_rng(1).random((4, 2, 2))}
    q = LOO.queries("categorical", alpha, noise, n=2)
    with pytest.raises(ValueError, match="answers.f_z must have shape"):
        LOO.combine("categorical", alpha, q, Answers(np.zeros((4, 3))), n=2)
    with pytest.raises(ValueError, match="NaN"):
        LOO.combine("categorical", alpha, q, Answers(np.full((4, 2), np.nan)), n=2)
    bad = Queries(q.z + 5)
    with pytest.raises(ValueError, match=r"entries must lie in \[0, 3\)"):
        LOO.combine("categorical", alpha, bad, Answers(np.zeros((4, 2))), n=2)


def test_objective_answer_shape_checked():
    alpha = np.zeros((2, 3))
    noise = {"u": np.random.default_rng(1).random((4, 2, 2))}
    with pytest.raises(ValueError, match="objective returned shape"):
        LOO.estimate("categorical", alpha, lambda z: np.zeros(3), noise, n=2)


def test_bad_replicate_count():
    with pytest.raises(ValueError, match="replicates"):
        LOO.draw_noise(np.random.default_rng(0), "bernoulli", (3,), 0)
