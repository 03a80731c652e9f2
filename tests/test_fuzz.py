"""Bad input, as a hostile new user would give it, on every registered estimator and on the
oracle's public functions: a correct result or a documented exception (``ValueError`` or
``TypeError``) whose message names the argument, raised by our own validation, never a wrong
number and never a NumPy or Numba error from deep inside.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from reference import REGISTRY
from reference.contract import Answers, Queries

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"bernoulli": (3,), "categorical": (2, 3), "ksubset": (5,)}
PARAM_NAME = {"bernoulli": "phi", "categorical": "alpha", "ksubset": "theta"}


def _setup(name: str):
    est = REGISTRY[name]
    dist = est.distributions[-1]
    opts = dict(est.examples[-1])
    shape = SHAPES[dist]
    params = np.random.default_rng(0).normal(size=shape)
    K, C = (shape[0], 2) if dist != "categorical" else shape
    f = reference.random_table(K, C, seed=1)
    noise = est.draw_noise(np.random.default_rng(1), dist, shape, 3, **opts)
    return est, dist, opts, params, f, noise


def _raised_by_our_validation(exc: BaseException) -> bool:
    """The frame that raised is in reference/ or verify/ (a validation), not in a library."""
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return str(ROOT / "reference") in last.filename or str(ROOT / "verify") in last.filename


def _corruptions(name: str):
    est, dist, opts, params, f, noise = _setup(name)
    pname = PARAM_NAME[dist]
    first = est.noise[0].name
    out = {}

    def nan_params():
        p = params.copy()
        p.flat[0] = np.nan
        return est.estimate(dist, p, f, noise, **opts)

    def inf_params():
        p = params.copy()
        p.flat[-1] = np.inf
        return est.estimate(dist, p, f, noise, **opts)

    def wrong_event_shape():
        p = np.zeros(params.shape[:-1] + (params.shape[-1] + 1,))
        return est.estimate(dist, p, f, noise, **opts)

    def noise_out_of_range():
        bad = {k: v.copy() for k, v in noise.items()}
        bad[first].flat[0] = 1.0
        return est.estimate(dist, params, f, bad, **opts)

    def noise_nan():
        bad = {k: v.copy() for k, v in noise.items()}
        bad[first].flat[0] = np.nan
        return est.estimate(dist, params, f, bad, **opts)

    def noise_wrong_shape():
        bad = dict(noise)
        bad[first] = noise[first][..., :-1]
        return est.estimate(dist, params, f, bad, **opts)

    def noise_extra_key():
        return est.estimate(dist, params, f, {**noise, "extra": noise[first]}, **opts)

    def noise_zero_replicates():
        bad = {k: v[:0] for k, v in noise.items()}
        return est.estimate(dist, params, f, bad, **opts)

    def unknown_option():
        return est.estimate(dist, params, f, noise, **opts, not_an_option=1)

    def rng_as_int():
        return est.draw_noise(5, dist, params.shape, 3, **opts)

    def answers_nan():
        q = est.queries(dist, params, noise, **opts)
        a = reference.evaluate(f, q)
        fz = a.f_z.copy()
        if fz.size:
            fz.flat[0] = np.nan
        gy = None if a.grad_y is None else a.grad_y.copy()
        if gy is not None:
            gy.flat[0] = np.nan
        return est.combine(dist, params, q, Answers(fz, a.f_y, gy), **opts)

    def answers_wrong_shape():
        q = est.queries(dist, params, noise, **opts)
        a = reference.evaluate(f, q)
        return est.combine(dist, params, q, Answers(a.f_z[..., :0], a.f_y, a.grad_y), **opts)

    def queries_aux_dropped():
        q = est.queries(dist, params, noise, **opts)
        a = reference.evaluate(f, q)
        return est.combine(dist, params, Queries(q.z, {}, q.y), a, **opts)

    def objective_without_relaxed():
        def plain(z):
            return f(z)
        return est.estimate(dist, params, plain, noise, **opts)

    out = {
        "nan_params": (nan_params, pname), "inf_params": (inf_params, pname),
        "wrong_event_shape": (wrong_event_shape, "noise"),
        "noise_out_of_range": (noise_out_of_range, "noise"), "noise_nan": (noise_nan, "noise"),
        "noise_wrong_shape": (noise_wrong_shape, "noise"),
        "noise_extra_key": (noise_extra_key, "noise"),
        "noise_zero_replicates": (noise_zero_replicates, "replicate"),
        "unknown_option": (unknown_option, "not_an_option"), "rng_as_int": (rng_as_int, "rng"),
        "answers_nan": (answers_nan, "answers"), "answers_wrong_shape": (answers_wrong_shape, "answers"),
        "queries_aux_dropped": (queries_aux_dropped, "queries"),
        "objective_without_relaxed": (objective_without_relaxed, "relaxed"),
    }
    return out


KINDS = list(_corruptions("reinforce"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(REGISTRY))
def test_bad_input_is_refused_by_name(name, kind):
    fn, word = _corruptions(name)[kind]
    est, dist, opts, params, f, noise = _setup(name)
    q = est.queries(dist, params, noise, **opts)
    if kind == "objective_without_relaxed" and q.y is None:
        fn()  # needs no relaxation: a plain function is a valid objective
        return
    if kind == "queries_aux_dropped" and not q.aux:
        return  # nothing to drop
    if kind == "wrong_event_shape":
        # one more variable or category, with an objective that matches: the noise may still be
        # valid (then a correct result), else the error must name the noise
        p = np.zeros(params.shape[:-1] + (params.shape[-1] + 1,))
        K, C = (p.shape[0], 2) if dist != "categorical" else p.shape
        try:
            g = est.estimate(dist, p, reference.random_table(K, C, seed=2), noise, **opts)
        except (ValueError, TypeError) as exc:
            assert "noise" in str(exc) and _raised_by_our_validation(exc), str(exc)
        else:
            assert g.shape == (3,) + p.shape and np.all(np.isfinite(g))
        return
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    message = str(info.value)
    assert word in message, message
    assert _raised_by_our_validation(info.value), traceback.format_exception(info.value)[-3:]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_empty_batch_gives_empty_estimates(name):
    est, dist, opts, params, f, _ = _setup(name)
    empty = np.zeros((0,) + params.shape)
    noise = est.draw_noise(np.random.default_rng(0), dist, empty.shape, 2, **opts)
    for backend in ("numpy", "cpu"):
        g = est.estimate(dist, empty, f, noise, backend=backend, **opts)
        assert g.shape == (0, 2) + params.shape


# ------------------------------------------------------------- the oracle's entry points
_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.sampled_from([0.0, 1.0, -50.0, 50.0, 1e300]))


@given(dist=st.sampled_from(["bernoulli", "categorical"]),
       shape=st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple),
       values=st.lists(_VALUES, min_size=0, max_size=30))
def test_oracle_functions_on_arbitrary_arrays(dist, shape, values):
    """``exact_gradient``/``exact_expectation`` on arbitrary shapes and values: a finite answer
    of the right shape, or a ValueError/TypeError from our validation."""
    n = int(np.prod(shape)) if shape else 1
    arr = np.resize(np.array(values or [0.0]), n).reshape(shape)
    K = shape[0] if shape else 1
    C = 2 if dist == "bernoulli" else (shape[-1] if len(shape) >= 2 else 2)
    try:
        f = reference.random_table(max(K, 1), max(C, 2), seed=0,
                                   domain="binary" if dist == "bernoulli" else "categorical")
    except (ValueError, TypeError):
        return
    for fn in (verify.exact_gradient, verify.exact_expectation):
        try:
            out = fn(dist, arr, f)
        except (ValueError, TypeError) as exc:
            assert _raised_by_our_validation(exc), traceback.format_exception(exc)[-3:]
            continue
        assert np.all(np.isfinite(out))
        if fn is verify.exact_gradient:
            assert np.shape(out) == arr.shape


@given(R=st.integers(-2, 3), P=st.integers(1, 3),
       bad=st.sampled_from(["none", "nan_mean", "neg_bound", "shape"]))
def test_check_samples_on_bad_input(R, P, bad):
    mean, cov, eb = np.zeros(P), np.eye(P), 0.0
    if bad == "nan_mean":
        mean = np.full(P, np.nan)
    if bad == "neg_bound":
        eb = -1.0
    m = verify.Moments(mean, cov, "test", eb)
    # +-1 in turn: mean 0 and variance 1 exactly when R is even
    samples = np.resize([1.0, -1.0], (max(R, 0), 1)) * np.ones((1, P + (bad == "shape")))
    try:
        res = verify.check_samples(samples, m)
    except ValueError as exc:
        assert _raised_by_our_validation(exc)
        return
    assert bad == "none" and R >= 2  # everything else is refused
    if P == 1 and R == 2:
        assert res.passed


@pytest.mark.parametrize("kwargs,word", [({"R": 0}, "R"), ({"R_shared": 0}, "R_shared"),
                                         ({"batch": 0}, "batch"), ({"rtol": float("nan")}, "rtol"),
                                         ({"alpha": 2.0}, "alpha")])
def test_check_port_arguments(kwargs, word):
    pr = verify.make_problem("categorical", np.zeros((2, 3)), reference.random_table(2, 3))
    with pytest.raises(ValueError, match=word):
        verify.check_port(lambda *a, **k: None, "reinforce", pr, **kwargs)
