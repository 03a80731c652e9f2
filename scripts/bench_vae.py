"""Training steps per second of the categorical VAE: our Numba path against PyTorch, on the CPU
(default) or on a GPU (``--backend cuda``: our Numba CUDA kernels against PyTorch on the same
device).

Both train the same model (K = 20, C = 10 by default, encoder 784-512-256-KC, decoder
KC-256-512-784, LeakyReLU(0.2), float32, Adam) on the same batches, in the same process and
with the same number of threads, and take a full training step each (encoder forward, the
estimator, the decoder on every queried configuration, both backward passes, Adam). With more
than one thread, ours runs blocks of data points side by side, one BLAS thread each
(:class:`reference.models.ops.CpuOps`); PyTorch uses its own intra-op threads:

* REINFORCE-LOO (``n`` = C by default): PyTorch draws the samples itself (inverse CDF from
  uniforms) and gets the encoder gradient from the surrogate
  ``sum_i (f_i - fbar) / (n - 1) log q(z_i)`` by autograd; the decoder input is the one-hot
  matrix times the first weight matrix.
* Other registered estimators (``arsm`` when it is registered): PyTorch runs the networks and
  autograd; the estimator's two phases come from our registry's CPU backend on NumPy views.

PyTorch is optional (``pip install torch``); without it (or, with ``--backend cuda``, without
a CUDA build of it) only our numbers are printed. On the GPU every timed round ends with a
device synchronization on both sides (kernel launches return before the work is done), and
the estimator's two phases run on the host in both (the logits go to the host and the queried
configurations back, as in our CUDA model).

Against the machine's limit: the step's matrix-product work (``step_flops``: 2 m k n per
product, forward and backward, for the encoder on ``B`` rows and the decoder on the ``N`` rows
of configurations the estimator queried, counted in an untimed step; the decoder's one-hot
first layer is a gather, not a product, and counts nothing; the encoder's first layer skips
the zero pixels, so it counts 2 per nonzero pixel and output, about 13% of a dense product on
binarized MNIST) is divided by the best float32
matrix-product rate measured in the same run on the decoder's largest product
(``N x 512 @ 512 x 784``): NumPy's BLAS on the CPU, our own CUDA matrix-product kernel (the one
the CUDA model uses) on the GPU. The column ``of GEMM`` is that fraction for our step: the share of
the machine's dense-algebra rate that the whole step reaches.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for _threads
import _cli  # noqa: E402
from _threads import early_env  # noqa: E402  (before NumPy and Numba)

early_env(sys.argv[1:])

import numpy as np  # noqa: E402

from reference.models import VAE, categorical_spec, init_params, load_dataset  # noqa: E402
from reference.models import layers as L  # noqa: E402
from reference.registry import REGISTRY, get_estimator  # noqa: E402


def batches(args: argparse.Namespace, rng: np.random.Generator) -> list[np.ndarray]:
    data = args.data or os.environ.get("DGV_DATA")
    if data:
        train, _, dynamic = load_dataset(data, "static" if args.dataset == "static" else "dynamic")
        idx = rng.choice(train.shape[0], (64, args.batch_size))
        x = train[idx]
        if dynamic:
            x = rng.random(x.shape) < x / 255.0
        return [b.astype(np.float32) for b in x]
    print("no --data / $DGV_DATA: synthetic binary images (speed does not depend on the data)")
    return [(rng.random((args.batch_size, 784)) < 0.13).astype(np.float32)
            for _ in range(64)]


def synchronize(backend: str) -> None:
    """Wait for our queued CUDA work (nothing on the CPU)."""
    if backend == "cuda":
        from numba import cuda

        cuda.synchronize()


def ours_stepper(args, spec, params, xs, est: str, opts: dict):
    """A function ``step(t)`` running our training step on batch ``t`` (backend ``args.backend``)."""
    model = VAE(spec, params, backend=args.backend, dtype=np.float32, lr=args.lr)

    def step(t: int) -> None:
        model.step(xs[t % len(xs)], est, np.random.default_rng([1, t]), opts)

    return step


def torch_model(torch, spec, params):
    nn = torch.nn

    def lin(name):
        W, b = params[f"{name}.W"], params[f"{name}.b"]
        layer = nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(W.T.astype(np.float32)))
            layer.bias.copy_(torch.from_numpy(b.astype(np.float32)))
        return layer

    act = nn.LeakyReLU(spec.slope)
    enc = nn.Sequential(lin("enc0"), act, lin("enc1"), act, lin("enc2"))
    dec = nn.Sequential(lin("dec0"), act, lin("dec1"), act, lin("dec2"))
    return enc, dec


def torch_stepper(torch, args, spec, params, xs, est_name: str, opts: dict, device: str = "cpu"):
    """A function ``step(t)`` running the PyTorch training step on batch ``t`` on ``device``."""
    F = torch.nn.functional
    enc, dec = torch_model(torch, spec, params)
    enc, dec = enc.to(device), dec.to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=args.lr)
    K, C = spec.K, spec.C
    est = get_estimator(est_name)

    def f_of(z, x_rep):  # z (N, K) long -> f (N,) = log p(x|z) + log p(z)
        onehot = F.one_hot(z, C).to(torch.float32).reshape(z.shape[0], K * C)
        logits = dec(onehot)
        return -F.binary_cross_entropy_with_logits(logits, x_rep, reduction="none").sum(1) + spec.log_prior

    def step_loo(x, t):
        n = opts["n"]
        B = x.shape[0]
        logits = enc(x).reshape(B, K, C)
        logp = torch.log_softmax(logits, -1)
        with torch.no_grad():  # inverse CDF from uniforms, as in reference.distributions
            u = torch.from_numpy(np.random.default_rng([1, t]).random((B, n, K)).astype(np.float32)
                                 ).to(device)
            cdf = torch.cumsum(torch.softmax(logits, -1), -1)[:, None]  # (B, 1, K, C)
            z = torch.clamp((u[..., None] >= cdf).sum(-1), max=C - 1)  # (B, n, K)
        f = f_of(z.reshape(B * n, K), x.repeat_interleave(n, 0)).reshape(B, n)
        logq = torch.gather(logp[:, None].expand(B, n, K, C), 3, z[..., None])[..., 0].sum(-1)
        fd = f.detach()
        w = (fd - fd.mean(1, keepdim=True)) / (n - 1)
        H = -(logp.exp() * logp).sum((1, 2))
        loss = -((w * logq).sum(1) + f.mean(1) + H).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_registry(x, t):
        B = x.shape[0]
        logits = enc(x).reshape(B, K, C)
        lg = logits.detach().double().cpu().numpy()
        noise = est.draw_noise(np.random.default_rng([1, t]), "categorical", lg.shape, 1, **opts)
        q = est.queries("categorical", lg, noise, backend="cpu", **opts)
        _, R, M, _ = q.z.shape
        z = torch.from_numpy(q.z.reshape(B * R * M, K)).to(device)
        f = f_of(z, x.repeat_interleave(R * M, 0))
        from reference.contract import Answers

        g = est.combine("categorical", lg, q, Answers(f.detach().double().cpu().numpy().reshape(B, R, M)),
                        backend="cpu", **opts)
        dl = -(g.mean(1) + L.categorical_entropy_grad(lg)) / B
        opt.zero_grad(set_to_none=True)
        (-f.mean()).backward(retain_graph=False)
        logits.backward(torch.from_numpy(dl.astype(np.float32)).to(device))
        opt.step()

    fn = step_loo if est_name == "reinforce_loo" else step_registry
    tx = [torch.from_numpy(x).to(device) for x in xs]

    def step(t: int) -> None:
        fn(tx[t % len(tx)], t)

    return step


def step_flops(spec, B: int, N: int, density: float = 1.0) -> float:
    """Floating-point operations of the matrix products of one training step: encoder on ``B``
    rows (forward, weight gradients, input gradients below the first layer; the first layer
    counts only the ``density`` share of its inputs that are nonzero, the products it does),
    decoder on ``N`` rows (the same; its first layer is a product only for relaxed or binary
    inputs)."""
    enc, dec = spec.layer_sizes()
    total = 0.0
    for i, (a, b) in enumerate(zip(enc[:-1], enc[1:], strict=True)):
        total += 2.0 * B * a * b * (3 if i > 0 else 2 * density)
    for i, (a, b) in enumerate(zip(dec[:-1], dec[1:], strict=True)):
        if i == 0 and spec.model == "categorical":
            continue  # the one-hot layer: a gather of K rows, no product
        total += 2.0 * N * a * b * (3 if i > 0 else 2)
    return total


def decoder_rows(model, x, est: str, opts: dict) -> int:
    """Rows the decoder sees in one step (counted on an untimed step)."""
    seen = []
    forward = model.decoder_forward

    def counting(inp, discrete):
        seen.append(int(np.shape(inp)[0]))
        return forward(inp, discrete)

    model.decoder_forward = counting
    try:
        model.gradients(x, est, np.random.default_rng([1, 0]), opts)
    finally:
        del model.decoder_forward
    return sum(seen)


def gemm_rate(N: int, repeat: int = 5, backend: str = "cpu", shape: tuple[int, int] = (512, 784)
              ) -> float:
    """Best float32 matrix-product rate (FLOP/s) on ``(N, I) @ (I, O)``, ``(I, O) = shape``:
    NumPy's BLAS, or with ``backend="cuda"`` the CUDA model's own matrix-product kernel on
    device arrays."""
    rng = np.random.default_rng(0)
    I, O = shape
    a = rng.standard_normal((N, I)).astype(np.float32)
    b = rng.standard_normal((I, O)).astype(np.float32)
    out = np.empty((N, O), dtype=np.float32)
    if backend == "cuda":
        from numba import cuda

        from reference.models._layers_cuda import matmul

        a, b, out = cuda.to_device(a), cuda.to_device(b), cuda.to_device(out)

        def product() -> None:
            matmul(a, b, out)
    else:
        def product() -> None:
            np.dot(a, b, out=out)
    product()
    synchronize(backend)
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(5):
            product()
        synchronize(backend)
        best = max(best, 5 * 2.0 * N * I * O / (time.perf_counter() - t0))
    return best


def rates(step, warmup: int, rounds: int, per_round: int, finish=lambda: None) -> list[float]:
    """Steps per second of ``rounds`` timed rounds of ``per_round`` steps, after ``warmup`` steps;
    ``finish()`` (a device synchronization) ends the warm-up and every round, inside its time."""
    for t in range(warmup):
        step(t)
    finish()
    out, t = [], warmup
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            step(t)
            t += 1
        finish()
        out.append(per_round / (time.perf_counter() - t0))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--C", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=8,
                   help="timing rounds, alternating ours and PyTorch; the best round is reported")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data", default=None)
    p.add_argument("--dataset", choices=("static", "dynamic"), default="static")
    p.add_argument("--estimators", nargs="*", default=["reinforce_loo", "arsm"])
    p.add_argument("--threads", type=int, default=None,
                   help="threads for BLAS, Numba and PyTorch (default: all cores)")
    p.add_argument("--backend", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: our CUDA model against PyTorch on the same GPU")
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "repeats", "threads"):
        _cli.at_least(p, "--" + name.replace("_", "-"), getattr(args, name), 1)
    _cli.at_least(p, "--warmup", args.warmup, 0)
    _cli.at_least(p, "--C", args.C, 2)
    _cli.positive_finite(p, "--lr", args.lr)
    unknown = sorted(set(args.estimators) - set(REGISTRY))
    if unknown:
        p.error(f"unknown --estimators {unknown}; registered: {sorted(REGISTRY)}")
    C = args.C
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install torch): timing our CPU path only")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count())
    device = "cpu"
    if args.backend == "cuda":
        from numba import cuda

        if not cuda.is_available():
            print("error: --backend cuda needs a CUDA GPU (numba.cuda.is_available() is False)",
                  file=sys.stderr)
            return 2
        name = cuda.get_current_device().name
        device = "cuda, " + (name.decode() if isinstance(name, bytes) else str(name))
        if torch is not None and not torch.cuda.is_available():
            print("this PyTorch has no CUDA: timing our CUDA path only")
            torch = None
    if torch is not None:
        torch.set_num_threads(threads)
    spec = categorical_spec(C)
    rng = np.random.default_rng(0)
    params = init_params(spec, rng)
    try:
        xs = batches(args, rng)
    except (FileNotFoundError, ValueError) as exc:  # a missing or corrupt data file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"categorical VAE K={spec.K} C={C}, batch {args.batch_size}, float32, {device}, "
          f"{threads} threads" + (f", torch {torch.__version__}" if torch is not None else ""))
    torch_device = "cuda" if args.backend == "cuda" else "cpu"

    def torch_finish() -> None:
        if torch_device == "cuda":
            torch.cuda.synchronize()

    def ours_finish() -> None:
        synchronize(args.backend)

    print(f"{'estimator':<16}{'options':<10}{'ours steps/s':>14}{'torch steps/s':>15}{'ratio':>8}"
          f"{'GFLOP/step':>12}{'of GEMM':>9}")
    for name in args.estimators:
        if name not in REGISTRY:
            print(f"{name:<16}skipped: not registered")
            continue
        opts = {"n": C} if name == "reinforce_loo" else {}
        mine = ours_stepper(args, spec, params, xs, name, opts)
        N = decoder_rows(VAE(spec, params, backend="cpu", dtype=np.float32, lr=args.lr), xs[0],
                         name, opts)
        flops = step_flops(spec, args.batch_size, N, float(np.mean([np.mean(x != 0) for x in xs])))
        peak = gemm_rate(N, backend=args.backend)
        other = (torch_stepper(torch, args, spec, params, xs, name, opts, torch_device)
                 if torch is not None else None)
        r_ours, r_torch = [], []
        for _ in range(args.repeats):  # alternate, so that a busy machine slows both alike
            r_ours += rates(mine, args.warmup if not r_ours else 0, 1, args.steps, ours_finish)
            if other is not None:
                r_torch += rates(other, args.warmup if not r_torch else 0, 1, args.steps,
                                 torch_finish)
        ours = max(r_ours)
        if other is not None:
            theirs = max(r_torch)
            print(f"{name:<16}{str(opts):<10}{ours:14.2f}{theirs:15.2f}{ours / theirs:8.2f}"
                  f"{flops / 1e9:12.2f}{ours * flops / peak:9.2f}"
                  f"   (medians {np.median(r_ours):.2f} / {np.median(r_torch):.2f}; "
                  f"GEMM {peak / 1e9:.1f} GFLOP/s, decoder rows {N})")
        else:
            print(f"{name:<16}{str(opts):<10}{ours:14.2f}{'-':>15}{'-':>8}"
                  f"{flops / 1e9:12.2f}{ours * flops / peak:9.2f}"
                  f"   (GEMM {peak / 1e9:.1f} GFLOP/s, decoder rows {N})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
