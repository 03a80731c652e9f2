"""Compile every registered CUDA kernel to PTX without a GPU: ``python -m reference.ptx``.

Needs numba-cuda with the CUDA compiler libraries from PyPI (``numba-cuda[cu13]``) and must
run without ``NUMBA_ENABLE_CUDASIM``. Exits non-zero and names the kernel if any fails.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import SimpleNamespace

#: CUDA modules outside the registry's records whose kernels must compile too
EXTRA_CUDA_MODULES = ("reference.models._layers_cuda",)


def compile_all(cc: tuple[int, int] = (9, 0)) -> dict[str, int]:
    """Compile each kernel in ``reference._cuda.PTX_KERNELS``; returns name -> PTX size."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise RuntimeError("PTX compilation needs the real CUDA target; unset NUMBA_ENABLE_CUDASIM")
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    # Device functions ask the current device for its compute capability when a kernel that
    # calls them is typed (numba-cuda 0.30); without a GPU we answer with the target's.
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)

    from .registry import REGISTRY

    for est in REGISTRY.values():
        importlib.import_module(est.backends["cuda"].partition(":")[0])
    for module in EXTRA_CUDA_MODULES:
        importlib.import_module(module)
    from ._cuda import PTX_KERNELS

    sizes = {}
    for name, (fn, signatures) in PTX_KERNELS.items():
        for sig in signatures:
            ptx, _ = cuda.compile_ptx(fn, sig, cc=cc)
            sizes[f"{name}{tuple(str(a) for a in sig)}"] = len(ptx)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 for sm_90")
    args = parser.parse_args(argv)
    major, minor = (int(x) for x in args.cc.split("."))
    sizes = compile_all((major, minor))
    for name, size in sizes.items():
        print(f"ok  sm_{major}{minor}  {size:8d} bytes  {name}")
    print(f"{len(sizes)} kernel signatures compiled to PTX for sm_{major}{minor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
