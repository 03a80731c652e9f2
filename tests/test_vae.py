"""The VAEs: gradients against finite differences and the exact oracle, the contract's queries
answered in one batched decoder call, CPU against the NumPy reference, CUDA (simulator without a
GPU) against CPU, checkpoints, and (slow) training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_layers import assert_fd, fd_grad

import verify
from reference import REGISTRY
from reference.contract import Queries
from reference.models import VAE, VAESpec, init_params
from reference.models import layers as L
from reference.objectives import TableObjective

TINY = {
    "categorical": VAESpec("categorical", K=2, C=3, D=6, enc_hidden=(5,), dec_hidden=(4,)),
    "binary": VAESpec("binary", K=3, C=2, D=6, enc_hidden=(4,), dec_hidden=(5,)),
    "binary-linear": VAESpec("binary", K=3, C=2, D=6, enc_hidden=(), dec_hidden=()),
}


def tiny(name: str, backend: str = "numpy", seed: int = 0, dtype=np.float64, scale: float = 2.0,
         threads=None):
    spec = TINY[name]
    rng = np.random.default_rng(seed)
    params = {k: scale * v for k, v in init_params(spec, rng).items()}
    params = {k: v + (0.3 * rng.standard_normal(v.shape) if k.endswith(".b") else 0)
              for k, v in params.items()}
    return VAE(spec, params, backend=backend, dtype=dtype, threads=threads), rng


def batch(rng, B: int, D: int = 6) -> np.ndarray:
    return (rng.random((B, D)) < 0.5).astype(np.float64)


def decoder_f(spec: VAESpec, params: dict, x: np.ndarray, inp: np.ndarray) -> np.ndarray:
    """Independent float64 decoder: ``f = log p(x | inp) + log p(z)`` for float inputs ``(N, width)``."""
    h = inp
    n = len(spec.dec_hidden) + 1
    for i in range(n):
        h = L.linear(h, params[f"dec{i}.W"], params[f"dec{i}.b"])
        if i < n - 1:
            h = L.leaky_relu(h, spec.slope)
    return L.bernoulli_loglik(h, x[None]) + spec.log_prior


def latent_input(spec: VAESpec, z: np.ndarray) -> np.ndarray:
    z2 = z.reshape(-1, spec.K)
    return L.onehot(z2, spec.C) if spec.model == "categorical" else z2.astype(float)


class DecoderObjective:
    """``f(z)`` of one data point through the float64 decoder, with its relaxed extension."""

    def __init__(self, model: VAE, x_row: np.ndarray) -> None:
        self.spec, self.x = model.spec, x_row
        self.params = model.params_host()
        self.K, self.C = self.spec.K, self.spec.C
        self.domain = "categorical" if self.spec.model == "categorical" else "binary"

    def __call__(self, z):
        z = np.asarray(z)
        return decoder_f(self.spec, self.params, self.x, latent_input(self.spec, z)).reshape(z.shape[:-1])

    def relaxed(self, y):
        """``f(y)`` and ``grad_y f`` by a hand-written float64 backward pass (its own check is
        :func:`test_relaxed_answers_match_fd`, against finite differences)."""
        y = np.asarray(y, dtype=float)
        flat = y.reshape(-1, self.spec.latent_width)
        n = len(self.spec.dec_hidden) + 1
        hs = [flat]
        for i in range(n):
            h = L.linear(hs[-1], self.params[f"dec{i}.W"], self.params[f"dec{i}.b"])
            hs.append(L.leaky_relu(h, self.spec.slope) if i < n - 1 else h)
        f = L.bernoulli_loglik(hs[-1], self.x[None]) + self.spec.log_prior
        d = L.bernoulli_loglik_grad(hs[-1], self.x[None])
        for i in range(n - 1, -1, -1):
            if i < n - 1:
                d = L.leaky_relu_backward(hs[i + 1], d, self.spec.slope)
            d = L.linear_backward(hs[i], self.params[f"dec{i}.W"], d)[0]
        return f.reshape(y.shape[:-2 if self.domain == "categorical" else -1]), d.reshape(y.shape)

    def table(self):
        Z = np.array(np.meshgrid(*[np.arange(self.C)] * self.K, indexing="ij")).reshape(self.K, -1).T
        return self(Z).reshape((self.C,) * self.K)


# ------------------------------------------------------------- finite differences of the model
@pytest.mark.parametrize("name", list(TINY))
def test_decoder_gradient_matches_fd(name):
    model, rng = tiny(name)
    spec = model.spec
    B, R, M = 2, 2, 3
    x = batch(rng, B)
    z = rng.integers(0, spec.C, (B, R, M, spec.K))
    _, grads, fmean = model.answer(Queries(z), model.ops.asarray(x), B, True)
    params = model.params_host()

    def loss():
        f = np.stack([decoder_f(spec, params, x[b], latent_input(spec, z[b])) for b in range(B)])
        return -float(f.mean())

    assert np.allclose(fmean.mean(), -loss(), rtol=1e-12)
    for k in params:
        if k.startswith("dec"):
            assert_fd(grads[k], fd_grad(loss, params[k]))


@pytest.mark.parametrize("name", list(TINY))
def test_encoder_backward_matches_fd(name):
    model, rng = tiny(name)
    x = batch(rng, 3)
    G = rng.standard_normal((3, model.spec.latent_width))
    grads = model.encoder_backward(model.encoder_forward(x), G)
    params = model.params_host()

    def loss():
        m = VAE(model.spec, params, backend="numpy")
        return float(np.sum(G * m.encoder_forward(x)[-1]))

    for k in params:
        if k.startswith("enc"):
            assert_fd(grads[k], fd_grad(loss, params[k]))


@pytest.mark.parametrize("name", ["categorical", "binary"])
def test_relaxed_answers_match_fd(name):
    model, rng = tiny(name)
    spec = model.spec
    B = 2
    x = batch(rng, B)
    shape = (B, 1, 2, spec.K, spec.C) if spec.model == "categorical" else (B, 1, 2, spec.K)
    y = rng.random(shape)
    if spec.model == "categorical":
        y /= y.sum(-1, keepdims=True)
    q = Queries(np.zeros((B, 1, 0, spec.K), np.int64), {}, y)
    ans, grads, _ = model.answer(q, x, B, True)
    params = model.params_host()
    for b in range(B):
        obj = DecoderObjective(model, x[b])
        f, g = obj.relaxed(y[b])
        assert np.allclose(ans.f_y[b], f, rtol=1e-12)
        assert np.allclose(ans.grad_y[b], g, rtol=1e-12, atol=1e-14)
        for r, m in np.ndindex(y.shape[1:3]):
            point = y[b, r, m].reshape(1, -1).copy()
            numeric = fd_grad(lambda p=point, xb=x[b]: float(decoder_f(spec, params, xb, p)[0]), point)
            assert_fd(ans.grad_y[b, r, m].reshape(1, -1), numeric)
    assert grads is not None and set(grads) == {k for k in model.names if k.startswith("dec")}


@pytest.mark.parametrize("name", ["categorical", "binary"])
def test_exact_elbo_gradient_matches_fd(name):
    """Exact ELBO by enumeration; its encoder gradient from the enumeration formula plus the
    analytic entropy gradient, backpropagated, against finite differences."""
    model, rng = tiny(name)
    spec = model.spec
    x = batch(rng, 2)
    params = model.params_host()

    def exact_elbo(m: VAE) -> tuple[float, np.ndarray]:
        logits = m.encoder_logits(x)
        total, dl = 0.0, np.zeros_like(logits)
        for b in range(x.shape[0]):
            domain = "categorical" if spec.model == "categorical" else "binary"
            pr = verify.make_problem(spec.dist, logits[b],
                                     TableObjective(DecoderObjective(m, x[b]).table(), domain))
            H = L.categorical_entropy(logits[b]) if spec.model == "categorical" else \
                L.bernoulli_entropy(logits[b])
            dH = L.categorical_entropy_grad(logits[b]) if spec.model == "categorical" else \
                L.bernoulli_entropy_grad(logits[b])
            total += verify.exact_expectation(pr) + H
            dl[b] = verify.exact_gradient(pr) + dH
        return total / x.shape[0], -dl / x.shape[0]

    _, dlogits = exact_elbo(model)
    grads = model.encoder_backward(model.encoder_forward(x), dlogits.reshape(x.shape[0], -1))
    for k in params:
        if k.startswith("enc"):
            numeric = fd_grad(lambda: -exact_elbo(VAE(spec, params, backend="numpy"))[0], params[k])
            assert_fd(grads[k], numeric)


# -------------------------------------------- the contract: one batched call, any estimator
def _cases():
    for est in REGISTRY.values():
        for name in ("categorical", "binary"):
            if TINY[name].dist in est.distributions:
                yield pytest.param(est, name, dict(est.examples[0]), id=f"{est.name}-{name}")


@pytest.mark.parametrize("est,name,opts", list(_cases()))
def test_batched_answers_equal_per_point_estimates(est, name, opts):
    """The VAE's estimates (queries of the whole batch through the decoder at once) equal the
    estimator run point by point on the decoder as an objective, on the same noise."""
    model, rng = tiny(name)
    B, R = 3, 2
    x = batch(rng, B)
    logits = model.encoder_logits(x)
    noise = est.draw_noise(rng, model.spec.dist, logits.shape, R, **opts)
    g, _, _ = model._estimate(est, logits, noise, opts, x, True)
    for b in range(B):
        want = est.estimate(model.spec.dist, logits[b], DecoderObjective(model, x[b]),
                            {k: v[b] for k, v in noise.items()}, **opts)
        assert np.allclose(g[b], want, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(want).max()))


def test_gradients_use_mean_of_replicates_plus_entropy():
    model, rng = tiny("categorical")
    x = batch(rng, 2)
    est = REGISTRY["reinforce_loo"]
    logits = model.encoder_logits(x)
    noise = est.draw_noise(np.random.default_rng(1), "categorical", logits.shape, 4, n=3)
    _, stats = model.gradients(x, "reinforce_loo", None, {"n": 3}, noise=noise)
    g = np.stack([est.estimate("categorical", logits[b], DecoderObjective(model, x[b]),
                               {"u": noise["u"][b]}, n=3) for b in range(2)])
    assert np.allclose(stats["dlogits"], -(g.mean(1) + L.categorical_entropy_grad(logits)) / 2, rtol=1e-10)


def test_errors():
    model, rng = tiny("binary")
    x = batch(rng, 2)
    cat_only = [e for e in REGISTRY.values() if "bernoulli" not in e.distributions]
    for est in cat_only[:1]:
        with pytest.raises(ValueError, match="needs 'bernoulli'"):
            model.step(x, est.name, rng)
    with pytest.raises(ValueError, match="unknown estimator"):
        model.step(x, "no-such-estimator", rng)
    with pytest.raises(TypeError, match="unknown options"):
        model.step(x, "reinforce_loo", rng, {"bogus": 1})
    with pytest.raises(ValueError, match="binary"):
        model.step(x + 0.5, "reinforce_loo", rng)
    with pytest.raises(ValueError, match="shape"):
        model.step(x[:, :5], "reinforce_loo", rng)
    with pytest.raises(ValueError, match="keys"):
        VAE(model.spec, {"enc0.W": np.zeros((6, 4))})
    with pytest.raises(ValueError, match="model"):
        VAESpec("gaussian", 2, 2)


# ------------------------------------------------------------------- backends and training
def run_steps(backend: str, name: str, steps: int, estimator: str = "reinforce_loo", opts=None,
              dtype=np.float64, threads=None):
    model, rng = tiny(name, backend, dtype=dtype, scale=1.0, threads=threads)
    data_rng = np.random.default_rng(11)
    elbos = []
    for t in range(steps):
        elbos.append(model.step(batch(data_rng, 4), estimator, np.random.default_rng([5, t]),
                                opts or {"n": 3}))
    return model, np.array(elbos)


@pytest.mark.parametrize("threads", [1, 2, 3], ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("name", list(TINY))
def test_cpu_training_matches_numpy_reference(name, threads):
    # with 2 or 3 threads the batch of 4 runs the decoder in blocks of data points side by
    # side (2 + 2, 1 + 1 + 2 points), the blocks' gradients summed, and Adam in groups
    ref, e_ref = run_steps("numpy", name, 4)
    cpu, e_cpu = run_steps("cpu", name, 4, threads=threads)
    assert cpu.ops.workers == threads and len(cpu.ops.blocks(4)) == threads
    assert np.allclose(e_cpu, e_ref, rtol=1e-10)
    for k, v in ref.params_host().items():
        assert np.allclose(cpu.params_host()[k], v, rtol=1e-9, atol=1e-12), k


def test_cpu_blocks_give_the_one_block_gradients():
    # the decoder's gradients summed over blocks of data points equal one block's to rounding,
    # on the paper's architecture (float64)
    from reference.models import categorical_spec

    spec = categorical_spec(4, K=3)
    params = init_params(spec, np.random.default_rng(2))
    x = (np.random.default_rng(3).random((6, 784)) < 0.2).astype(float)
    out = {}
    for threads in (1, 2, 4):
        model = VAE(spec, params, backend="cpu", dtype=np.float64, threads=threads)
        out[threads] = model.gradients(x, "reinforce_loo", np.random.default_rng(4), {"n": 3})
    for threads in (2, 4):
        assert np.isclose(out[threads][1]["elbo"], out[1][1]["elbo"], rtol=1e-12)
        assert np.allclose(out[threads][1]["dlogits"], out[1][1]["dlogits"], rtol=1e-12, atol=1e-15)
        for k, v in out[1][0].items():
            assert np.allclose(out[threads][0][k], v, rtol=1e-12, atol=1e-14), k
    with pytest.raises(ValueError, match="threads"):
        VAE(spec, params, backend="numpy", threads=2)
    with pytest.raises(ValueError, match="threads"):
        VAE(spec, params, backend="cpu", threads=0)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("estimator, opts, module, record", [
    ("reinforce_loo", {"n": 3}, "score_function", "CPU_LOO"),
    ("arsm", {}, "swap", "CPU_ARSM"),
    ("arsm_plus_ce", {}, "swap", "CPU_ARSM_PLUS_CE"),
])
def test_estimator_in_the_blocks_gives_the_numbers_of_one_call(estimator, opts, module, record,
                                                                threads, monkeypatch):
    # with serial twins the estimator's phases run in each block of data points beside the
    # encoder and decoder; the numbers must be bit for bit those of one call between the
    # blocks (its phases treat each data point alone, the noise is cut from one draw)
    import dataclasses
    import importlib

    from reference.models import categorical_spec

    spec = categorical_spec(4, K=3)
    params = init_params(spec, np.random.default_rng(2))
    x = (np.random.default_rng(3).random((7, 784)) < 0.2).astype(float)
    mod = importlib.import_module(f"reference.estimators.{module}.cpu")
    assert getattr(mod, record).serial_twins
    calls = []
    inner = VAE._gradients_in_blocks
    monkeypatch.setattr(VAE, "_gradients_in_blocks", lambda self, *a: calls.append(1) or inner(self, *a))
    out = []
    for twins in (True, False):
        monkeypatch.setattr(mod, record, dataclasses.replace(getattr(mod, record), serial_twins=twins))
        model = VAE(spec, params, backend="cpu", dtype=np.float32, threads=threads)
        out.append(model.gradients(x, estimator, np.random.default_rng(4), opts))
        assert len(calls) == 1  # the first run took the blocks' path, the second did not
    (g1, s1), (g2, s2) = out
    assert s1["elbo"] == s2["elbo"] and np.array_equal(s1["dlogits"], s2["dlogits"])
    for k in g2:
        assert np.array_equal(g1[k], g2[k]), k


def test_float32_cpu_training_tracks_float64():
    ref, e_ref = run_steps("numpy", "categorical", 3)
    f32, e_32 = run_steps("cpu", "categorical", 3, dtype=np.float32)
    assert np.allclose(e_32, e_ref, rtol=1e-5)


def test_state_roundtrip_resumes_exactly():
    a, _ = run_steps("cpu", "categorical", 2)
    b, rng = tiny("categorical", "cpu", scale=1.0)
    b.load_state(a.state())
    x = batch(rng, 4)
    ea = a.step(x, "reinforce_loo", np.random.default_rng(9), {"n": 3})
    eb = b.step(x, "reinforce_loo", np.random.default_rng(9), {"n": 3})
    assert ea == eb and a.t == b.t == 3
    for k, v in a.params_host().items():
        assert np.array_equal(b.params_host()[k], v)
    c, _ = tiny("binary", "cpu")
    with pytest.raises(ValueError, match="checkpoint"):
        c.load_state(a.state())


def test_evaluation_bounds():
    model, rng = tiny("categorical", "cpu", scale=1.0)
    x = batch(rng, 5)
    # exact log p(x) = log sum_z p(x|z) p(z) by enumeration bounds both estimates from above
    log_px = []
    for b in range(5):
        t = DecoderObjective(model, x[b]).table().ravel()
        log_px.append(np.log(np.exp(t - t.max()).sum()) + t.max())
    log_px = float(np.mean(log_px))
    iwae = model.iwae(x, np.random.default_rng(0), samples=2000, chunk=2)
    elbo = model.elbo(x, np.random.default_rng(0), samples=2000)
    logits = model.encoder_logits(x)
    exact_elbo = float(np.mean([
        verify.exact_expectation(verify.make_problem("categorical", logits[b], TableObjective(
            DecoderObjective(model, x[b]).table()))) + L.categorical_entropy(logits[b]) for b in range(5)]))
    assert exact_elbo < log_px
    # 9 configurations: 2000 samples estimate both nearly exactly (the spread of f is a few nats)
    assert abs(iwae - log_px) < 0.05 and abs(elbo - exact_elbo) < 0.1, (iwae, log_px, elbo, exact_elbo)
    var = model.grad_variance(x, "reinforce_loo", np.random.default_rng(1), {"n": 2}, replicates=8)
    assert var > 0 and math.isfinite(var)


@pytest.mark.slow
def test_training_improves_elbo_on_synthetic_data():
    """A small categorical VAE on synthetic binary images made of 4 prototypes with noise."""
    from reference.models import categorical_spec

    rng = np.random.default_rng(0)
    protos = rng.random((4, 64)) < 0.5
    def draw(n):
        x = protos[rng.integers(0, 4, n)]
        return (x ^ (rng.random((n, 64)) < 0.05)).astype(float)

    spec = categorical_spec(4, K=3, D=64, enc_hidden=(32,), dec_hidden=(32,))
    model = VAE(spec, init_params(spec, rng, draw(500).mean(0)), backend="cpu", lr=3e-3)
    test = draw(200)
    before = model.elbo(test, np.random.default_rng(1), samples=10)
    for t in range(300):
        model.step(draw(32), "reinforce_loo", np.random.default_rng([2, t]), {"n": 4})
    after = model.elbo(test, np.random.default_rng(1), samples=10)
    assert after > before + 5.0, (before, after)


# ---------------------------------------------------------------- CUDA (simulator without a GPU)
def test_cuda_matmul_all_transposes(small_cuda_grid):
    from numba import cuda

    from reference.models import _layers_cuda as G

    rng = np.random.default_rng(4)
    for ta in (False, True):
        for tb in (False, True):
            A = rng.standard_normal((6, 5) if ta else (5, 6))
            B = rng.standard_normal((7, 6) if tb else (6, 7))
            out = cuda.device_array((5, 7))
            G.matmul(cuda.to_device(A), cuda.to_device(B), out, ta, tb)
            want = (A.T if ta else A) @ (B.T if tb else B)
            assert np.allclose(out.copy_to_host(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["categorical", "binary-linear"])
def test_cuda_training_matches_cpu(name, small_cuda_grid):
    """A few training steps on a tiny model: the CUDA path (simulator here, the GPU when there
    is one) agrees with the CPU path on the same seed, in float64."""
    cpu, e_cpu = run_steps("cpu", name, 2)
    gpu, e_gpu = run_steps("cuda", name, 2)
    assert np.allclose(e_gpu, e_cpu, rtol=1e-10)
    for k, v in cpu.params_host().items():
        assert np.allclose(gpu.params_host()[k], v, rtol=1e-9, atol=1e-12), k
    x = batch(np.random.default_rng(2), 3)
    assert np.isclose(gpu.iwae(x, np.random.default_rng(0), samples=5),
                      cpu.iwae(x, np.random.default_rng(0), samples=5), rtol=1e-10)


def test_bench_vae_times_the_cuda_model(small_cuda_grid):
    """``bench_vae.py --backend cuda``'s pieces on a tiny model (simulator here, the GPU when
    there is one): our CUDA training step runs, every timed round ends with a device
    synchronization, and the GEMM rate comes from the CUDA model's own product."""
    import argparse

    script = _load_script("bench_vae")
    spec = TINY["categorical"]
    xs = [batch(np.random.default_rng(1), 2).astype(np.float32)]
    step = script.ours_stepper(argparse.Namespace(backend="cuda", lr=1e-3), spec,
                               init_params(spec, np.random.default_rng(0)), xs, "reinforce_loo",
                               {"n": 2})
    finished = []
    r = script.rates(step, 1, 2, 1, lambda: finished.append(script.synchronize("cuda")))
    assert len(r) == 2 and min(r) > 0 and len(finished) == 3  # after the warm-up and each round
    assert script.gemm_rate(3, repeat=1, backend="cuda", shape=(4, 5)) > 0


# ------------------------------------------------------------------- training loop and scripts
def _write_static(path, rng, n_train: int = 40, n_test: int = 12) -> None:
    protos = rng.random((3, 784)) < 0.3
    def draw(n):
        return (protos[rng.integers(0, 3, n)] ^ (rng.random((n, 784)) < 0.05)).astype(np.uint8)
    np.savez(path / "binarized_mnist.npz", train=np.packbits(draw(n_train), axis=1),
             valid=np.packbits(draw(4), axis=1), test=np.packbits(draw(n_test), axis=1))


def _cfg(out, data, steps, **kw):
    from reference.models.train import TrainConfig

    base = dict(out=str(out), data=str(data), model="categorical", estimator="reinforce_loo",
                options={"n": 2}, C=2, K=4, dataset="static", steps=steps, batch_size=4, eval_every=2,
                iwae_subset=5, iwae_samples=3, var_replicates=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_log_and_resumes_exactly(tmp_path):
    from reference.models.train import LOG_COLUMNS, read_log, train

    _write_static(tmp_path, np.random.default_rng(0))
    straight = train(_cfg(tmp_path / "a", tmp_path, 6))
    assert [int(r["step"]) for r in straight] == [0, 2, 4, 6]
    with open(tmp_path / "a" / "log.csv") as fh:
        assert tuple(fh.readline().strip().split(",")) == LOG_COLUMNS
    for r in straight:
        assert all(math.isfinite(r[k]) for k in LOG_COLUMNS)
        # no inequality between test_elbo (all 12 test points) and test_iwae100 (the first 5)
        # holds: they average different points; both bounds are tested exactly against log p(x)
        # in the test of VAE.iwae and VAE.elbo above
        assert r["grad_var"] >= 0
    train(_cfg(tmp_path / "b", tmp_path, 3))  # stops at step 3 (a row and a checkpoint there)
    resumed = train(_cfg(tmp_path / "b", tmp_path, 6))
    assert [int(r["step"]) for r in resumed] == [0, 2, 3, 4, 6]
    for a, b in zip(straight, [r for r in resumed if r["step"] != 3], strict=True):
        for k in ("test_elbo", "test_iwae100", "grad_var"):
            assert a[k] == b[k], (k, a, b)
    assert read_log(tmp_path / "b" / "log.csv") == resumed
    with pytest.raises(ValueError, match="different run"):
        train(_cfg(tmp_path / "b", tmp_path, 8, lr=0.5))


def test_ctrl_c_saves_and_the_same_command_resumes_exactly(tmp_path, monkeypatch):
    """SIGINT in the middle of a run: the step in progress finishes, the checkpoint is written
    at that step, and the resumed run's rows equal those of an uninterrupted run."""
    import os
    import signal

    from reference.models import vae as vae_module
    from reference.models.train import read_log, train

    _write_static(tmp_path, np.random.default_rng(0))
    straight = train(_cfg(tmp_path / "a", tmp_path, 6))
    real_step = vae_module.VAE.step
    calls = [0]

    def step_then_interrupt(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == 3:  # a Ctrl-C arrives during step 3, not an evaluation step
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(vae_module.VAE, "step", step_then_interrupt)
    stopped = train(_cfg(tmp_path / "b", tmp_path, 6))
    assert stopped.interrupted and [int(r["step"]) for r in stopped] == [0, 2]
    with np.load(tmp_path / "b" / "checkpoint.npz") as st:
        assert int(st["step"]) == 3
    monkeypatch.setattr(vae_module.VAE, "step", real_step)
    resumed = train(_cfg(tmp_path / "b", tmp_path, 6))
    assert not resumed.interrupted
    assert [int(r["step"]) for r in resumed] == [0, 2, 4, 6]
    for a, b in zip(straight, resumed, strict=True):
        for k in ("train_elbo", "test_elbo", "test_iwae100", "grad_var"):
            assert a[k] == b[k], (k, a, b)
    assert read_log(tmp_path / "b" / "log.csv") == resumed


def test_a_cut_last_log_line_is_dropped_and_the_run_resumes(tmp_path):
    from reference.models.train import read_log, train

    _write_static(tmp_path, np.random.default_rng(0))
    straight = train(_cfg(tmp_path / "a", tmp_path, 4))
    train(_cfg(tmp_path / "b", tmp_path, 2))
    log = tmp_path / "b" / "log.csv"
    text = log.read_text()
    log.write_text(text + "4,0,-5")  # a crash while a line was being written
    assert [int(r["step"]) for r in read_log(log)] == [0, 2]
    resumed = train(_cfg(tmp_path / "b", tmp_path, 4))
    assert [int(r["step"]) for r in resumed] == [0, 2, 4]
    assert [r["test_elbo"] for r in resumed] == [r["test_elbo"] for r in straight]
    log.write_text(text.replace("\n2,", "\nxx,", 1) + "4,0,-5,1,1,1,1,1\n")
    with pytest.raises(ValueError, match="line 3 is corrupt"):
        read_log(log)
    (tmp_path / "junk.csv").write_text("not,a,log\n")
    with pytest.raises(ValueError, match="not a training log"):
        read_log(tmp_path / "junk.csv")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing_entry"])
def test_a_corrupt_checkpoint_is_named(tmp_path, damage):
    from reference.models.train import train

    _write_static(tmp_path, np.random.default_rng(0))
    train(_cfg(tmp_path / "b", tmp_path, 2))
    ckpt = tmp_path / "b" / "checkpoint.npz"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a zip file at all")
    else:
        with np.load(ckpt) as st:
            state = {k: st[k] for k in st.files if k != "stream"}
        np.savez(ckpt, **state)
    with pytest.raises(ValueError, match="corrupt or not a checkpoint"):
        train(_cfg(tmp_path / "b", tmp_path, 4))


def test_train_errors_name_the_missing_files(tmp_path, monkeypatch):
    from reference.models.train import train

    monkeypatch.delenv("DGV_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="binarized_mnist.npz"):
        train(_cfg(tmp_path / "o", tmp_path, 2))
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        train(_cfg(tmp_path / "o", tmp_path, 2, dataset="dynamic"))


def _load_script(name: str):
    import importlib.util
    import os
    from pathlib import Path

    layer = os.environ.get("NUMBA_THREADING_LAYER")
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if layer is None:  # the script's default for its own process; leave this one as it was
        os.environ.pop("NUMBA_THREADING_LAYER", None)
    return mod


def test_train_vae_script(tmp_path, capsys):
    script = _load_script("train_vae")
    _write_static(tmp_path, np.random.default_rng(1))
    out = tmp_path / "run"
    rc = script.main(["--model", "binary", "--K", "5", "--estimator", "disarm", "--steps", "2",
                      "--eval-every", "1", "--batch-size", "4", "--data", str(tmp_path), "--out", str(out),
                      "--iwae-subset", "3", "--iwae-samples", "2", "--var-replicates", "2", "--no-progress"])
    assert rc == 0 and (out / "log.csv").exists() and (out / "checkpoint.npz").exists()
    assert "step=2" in capsys.readouterr().out
    rc = script.main(["--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing"), "--steps", "1"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--out", str(out), "--option", "n"])


@pytest.mark.parametrize("flags,words", [
    (["--K", "0"], "--K must be >= 1"),
    (["--lr", "nan"], "--lr must be a positive finite"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--option", "n=abc"], "must be an integer"),
    (["--option", "zz=1"], "unknown options"),
    (["--C", "1"], "--C must be >= 2"),
    (["--iwae-subset", "-3"], "--iwae-subset must be >= 0"),
    (["--estimator", "ar"], "takes ('bernoulli',)"),
    (["--estimator", "nope"], "unknown --estimator"),
    (["--model", "binary", "--estimator", "arm", "--learn-control"], "has no learned part"),
    (["--estimator", "nvil", "--learn-control", "--option", "baseline=1.0"], "drop --option baseline"),
])
def test_train_vae_flags_are_checked_before_any_work(flags, words, tmp_path, capsys, monkeypatch):
    script = _load_script("train_vae")
    monkeypatch.setattr(script, "train", lambda *a, **k: pytest.fail("work was done"))
    with pytest.raises(SystemExit) as exc:
        script.main(["--out", str(tmp_path / "o"), "--data", str(tmp_path), *flags])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_train_vae_unwritable_out_is_refused_first(tmp_path, capsys, monkeypatch):
    script = _load_script("train_vae")
    monkeypatch.setattr(script, "train", lambda *a, **k: pytest.fail("work was done"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        script.main(["--out", str(blocker / "sub"), "--data", str(tmp_path)])
    assert exc.value.code == 2 and "not a writable directory" in capsys.readouterr().err


def test_training_progress_bar_is_tqdm(tmp_path, capsys):
    """The bar (tqdm on stderr) counts steps from 0, and from the checkpoint's step on resume;
    ``progress=False`` prints none."""
    from reference.models.train import train

    _write_static(tmp_path, np.random.default_rng(0))
    train(_cfg(tmp_path / "r", tmp_path, 2, progress=True))
    err = capsys.readouterr().err
    assert "reinforce_loo: 100%" in err and "2/2" in err and "elbo" in err
    train(_cfg(tmp_path / "r", tmp_path, 4, progress=True))  # resumes at step 2
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert "2/4" in lines[0] and "4/4" in lines[-1]
    train(_cfg(tmp_path / "q", tmp_path, 2, progress=False))
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_figure1_script_reduced(tmp_path, capsys):
    """The Figure 1 command end to end at a toy size: every registered estimator of the paper's
    comparison runs, unregistered ones are named as skipped, the CSV aggregates over seeds."""
    fig = _load_script("figure1")
    _write_static(tmp_path, np.random.default_rng(2))
    real = fig.runs_for
    fig.runs_for = lambda C: real(C) + [("NOPE", "no_such_estimator", {})]
    rc = fig.main(["--out", str(tmp_path / "f"), "--data", str(tmp_path), "--dataset", "static", "--C", "2",
                   "--seeds", "2", "--steps", "2", "--batch-size", "4", "--eval-every", "1",
                   "--iwae-subset", "3", "--var-replicates", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "skipped (not registered): NOPE (no_such_estimator)" in out
    import csv

    with open(tmp_path / "f" / "figure1.csv") as fh:
        rows = list(csv.DictReader(fh))
    labels = {r["estimator"] for r in rows}
    want = {label for label, name, _ in real(2) if name in REGISTRY}
    assert labels == want and all(r["n_seeds"] == "2" for r in rows)
    assert {int(r["step"]) for r in rows} == {0, 1, 2}


def test_a_cpu_model_with_blocks_pickles():
    # Dask sends objects that hold a model: the copy runs the same step (its own threads)
    import pickle

    model, rng = tiny("categorical", "cpu", scale=1.0, threads=2)
    x = batch(rng, 4)
    model.step(x, "reinforce_loo", np.random.default_rng(1), {"n": 3})
    copy = pickle.loads(pickle.dumps(model))
    ga, _ = model.gradients(x, "reinforce_loo", np.random.default_rng(2), {"n": 3})
    gb, _ = copy.gradients(x, "reinforce_loo", np.random.default_rng(2), {"n": 3})
    assert copy.ops.workers == 2 and set(ga) == set(gb)
    assert all(np.array_equal(ga[k], gb[k]) for k in ga)
