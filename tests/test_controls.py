"""Learned controls of NVIL, REBAR and RELAX (reference.models.controls): their gradients against
finite differences of the records' own estimates, the per-data-point NVIL baseline against the
record called one data point at a time, checkpoints, and two training steps of each of the five
control-variate estimators on a tiny synthetic dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_layers import assert_fd, fd_grad
from test_vae import _cfg, _write_static, batch, tiny

from reference import REGISTRY
from reference.contract import Answers
from reference.estimators.control_variates import nvil_update
from reference.models.controls import (
    NVILControl,
    REBARControl,
    RELAXControl,
    make_control,
    variance_objective,
)


def _phase1(model, est_name, x, R, opts, seed=0):
    """Logits, the options in force, the queries and the answers, for a model with a control."""
    est = REGISTRY[est_name]
    xb = model.ops.asarray(x)
    logits = model.encoder_logits(x)
    o = model.control.options(model, x, xb, logits, opts)
    noise = est.draw_noise(np.random.default_rng(seed), "bernoulli", logits.shape, R, **o)
    q = est.queries("bernoulli", logits, noise, backend="numpy", **o)
    ans, _, _ = model.answer(q, xb, x.shape[0], False)
    return est, logits, o, q, ans


def test_nvil_baseline_gradient_matches_fd():
    rng = np.random.default_rng(0)
    ctl = NVILControl(6, rng, hidden=4)
    for k in ("b1", "b2"):
        ctl.params[k] = np.array(ctl.params[k] + rng.standard_normal(ctl.params[k].shape))
    x = batch(rng, 5)
    f = rng.standard_normal((5, 2, 3)) * 3
    grads = ctl.loss_grad(x, f, 0.7)
    for k in ("W1", "b1", "w2", "b2"):
        assert_fd(grads[k], fd_grad(lambda: ctl.loss(x, f, 0.7), ctl.params[k]))


def test_nvil_per_point_baseline_is_the_records_formula():
    """The control subtracts C_psi(x_b) from f_z and calls the record with baseline 0: the same
    as the record called on data point b alone with baseline C_psi(x_b)."""
    model, rng = tiny("binary-linear")
    model.control = NVILControl(6, rng, hidden=4)
    model.control.params["b2"] = np.array(-3.0)
    model.control.params.update(c=np.array(0.4), v=np.array(6.0))
    x = batch(rng, 4)
    est, logits, o, q, ans = _phase1(model, "nvil", x, 2, {"n": 3})
    g = model.control.combine(model, est, logits, q, ans, o, learn=False)
    base, _ = model.control.baseline(x)
    for b in range(4):
        sub = type(q)(q.z[b:b + 1])
        want = est.combine("bernoulli", logits[b:b + 1], sub, Answers(ans.f_z[b:b + 1]),
                           backend="numpy", n=3, baseline=float(base[b]), c=0.4, v=6.0)
        np.testing.assert_allclose(g[b:b + 1], want, rtol=1e-12, atol=1e-14)
    # learning: (c, v) follow Algorithm 1 on this batch's signals before they are used
    st = nvil_update(model.control.state_cv, ans.f_z - base[:, None, None])
    model.control.params["started"] = np.ones(())
    g2 = model.control.combine(model, est, logits, q, ans, o, learn=True)
    assert math.isclose(float(model.control.params["c"]), st.c)
    assert math.isclose(float(model.control.params["v"]), st.v)
    want = est.combine("bernoulli", logits, q, Answers(ans.f_z - base[:, None, None]),
                       backend="numpy", n=3, baseline=0.0, c=st.c, v=st.v)
    np.testing.assert_allclose(g2, want, rtol=1e-12)


def test_rebar_eta_gradient_matches_fd_of_the_records_estimate():
    model, rng = tiny("binary-linear")
    model.control = REBARControl(0.6)
    x = batch(rng, 3)
    est, logits, o, q, ans = _phase1(model, "rebar", x, 2, {"n": 2, "tau": 0.7})

    def record(eta):
        return est.combine("bernoulli", logits, q, ans, backend="numpy", **{**o, "eta": eta})

    g = model.control.combine(model, est, logits, q, ans, o, learn=False)
    np.testing.assert_allclose(g, record(0.6), rtol=1e-10, atol=1e-12)
    h = 1e-5
    fd = (variance_objective(record(0.6 + h)) - variance_objective(record(0.6 - h))) / (2 * h)
    d = REBARControl.eta_grad(g, record(1.0) - record(0.0))
    assert math.isclose(d, fd, rel_tol=1e-6, abs_tol=1e-9)
    model.control.combine(model, est, logits, q, ans, o, learn=True)
    assert float(model.control.params["eta"]) != 0.6  # one Adam step moved it


def test_relax_surrogate_gradient_matches_fd_of_the_records_estimate():
    model, rng = tiny("binary-linear")
    ctl = RELAXControl(6, 3, eta=0.8)
    for k in ("a0", "u", "w"):
        ctl.params[k] = np.array(ctl.params[k] + 0.5 * rng.standard_normal(ctl.params[k].shape))
    model.control = ctl
    x = batch(rng, 3)
    est, logits, o, q, ans = _phase1(model, "relax", x, 2, {"n": 2, "tau": 0.6})

    def objective():  # the record's estimate with the surrogate at the current parameters
        return variance_objective(est.combine("bernoulli", logits, q, ans, backend="numpy", **o))

    g = est.combine("bernoulli", logits, q, ans, backend="numpy", **o)
    grads = ctl.variance_grad(g, logits, q, 0.6)
    for k in ("eta", "a0", "u", "w"):
        assert_fd(grads[k], fd_grad(objective, ctl.params[k]), rtol=1e-6)
    # the surrogate's values and gradients are those of eta f + a0 + u.x + w.y
    y = q.aux["points"]
    vals, dvals = ctl.surrogate.relaxed(y)
    _, f, df = ctl.surrogate.last
    off = ctl.params["a0"] + x @ ctl.params["u"]
    np.testing.assert_allclose(vals, 0.8 * f + off[:, None, None] + y @ ctl.params["w"], rtol=1e-12)
    np.testing.assert_allclose(dvals, 0.8 * df + ctl.params["w"], rtol=1e-12)


@pytest.mark.parametrize("name", ["nvil", "rebar", "relax"])
def test_control_state_roundtrip_resumes_exactly(name):
    def fresh():
        model, _ = tiny("binary-linear", "numpy")
        model.control = make_control(name, model, np.random.default_rng(4), 1e-2, {})
        return model

    a, b = fresh(), fresh()
    xs = [batch(np.random.default_rng(10 + t), 4) for t in range(3)]
    opts = {"n": 2}
    for t in range(2):
        a.step(xs[t], name, np.random.default_rng([7, t]), opts)
    b.load_state(a.state())
    ea = a.step(xs[2], name, np.random.default_rng(9), opts)
    eb = b.step(xs[2], name, np.random.default_rng(9), opts)
    assert ea == eb
    for k, v in a.control.params.items():
        assert np.array_equal(b.control.params[k], v), k
    for k, v in a.params_host().items():
        assert np.array_equal(b.params_host()[k], v), k
    other, _ = tiny("binary-linear", "numpy")
    other.control = make_control("rebar" if name != "rebar" else "nvil", other,
                                 np.random.default_rng(4), 1e-2, {})
    with pytest.raises(ValueError, match="learned control"):
        other.load_state(a.state())


def test_make_control_errors():
    model, _ = tiny("binary-linear")
    with pytest.raises(ValueError, match="no learned control"):
        make_control("arm", model, np.random.default_rng(0), 1e-3, {})
    with pytest.raises(ValueError, match="baseline"):
        make_control("nvil", model, np.random.default_rng(0), 1e-3, {"baseline": 1.0})
    cat, _ = tiny("categorical")
    with pytest.raises(ValueError, match="binary VAE"):
        make_control("relax", cat, np.random.default_rng(0), 1e-3, {})


@pytest.mark.parametrize("estimator,options,learn", [
    ("nvil", {"n": 2}, True), ("muprop", {"n": 1}, False), ("rebar", {}, True),
    ("relax", {}, True), ("double_cv", {"n": 2}, False), ("nvil", {"n": 2}, False),
    ("rebar", {}, False), ("relax", {}, False)])
def test_each_control_variate_estimator_trains_two_steps(tmp_path, estimator, options, learn):
    """Two training steps of the binary linear VAE through train() on a tiny synthetic static
    dataset: finite log rows, the model moves, and a learned control's state moves."""
    from reference.models.train import train

    _write_static(tmp_path, np.random.default_rng(0))
    cfg = _cfg(tmp_path / "run", tmp_path, 2, model="binary", nonlinear=False, K=5,
               estimator=estimator, options=options, learn_control=learn)
    rows = train(cfg)
    assert [int(r["step"]) for r in rows] == [0, 2]
    for r in rows:
        assert all(math.isfinite(v) for v in r.values())
    with np.load(tmp_path / "run" / "checkpoint.npz") as st:
        assert int(st["t"]) == 2
        assert ("ctl:name" in st.files) == learn
        if learn:
            trained = [k for k in st.files if k.startswith("ctl:m:")]
            assert trained and any(np.any(st[k] != 0) for k in trained)  # Adam saw gradients
    assert rows[1]["test_elbo"] != rows[0]["test_elbo"]


def test_vae_table_rows_at_one_step_with_costs(tmp_path, capsys):
    from test_vae import _load_script

    from reference.models.train import train

    _write_static(tmp_path, np.random.default_rng(0))
    runs = tmp_path / "runs"
    for name, est, opts, learn in (("a", "arm", {}, False), ("r", "rebar", {"n": 2}, True)):
        train(_cfg(runs / name, tmp_path, 2, model="binary", nonlinear=False, K=5, estimator=est,
                   options=opts, learn_control=learn, eval_every=1))
    script = _load_script("vae_table")
    assert script.main([str(runs), "--step", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all("| 1 |" in line for line in lines[2:])
    for line, (est, opts) in zip(lines[2:], (("arm", {}), ("rebar", {"n": 2})), strict=True):
        c = REGISTRY[est].cost(5, 2, **opts)
        assert f"| {c.evals} ({c.grad_evals}) |" in line
    assert "(learned)" in lines[3] and "(learned)" not in lines[2]
    with pytest.raises(SystemExit):
        script.main([str(runs), "--step", "7"])
    assert "no row at step 7" in capsys.readouterr().err
