"""Framework-free VAE experiments: MNIST loaders, layers with hand-written backward passes on
NumPy (float64 reference), Numba CPU and Numba CUDA, Adam, and the categorical and binary VAEs
trained with any registered estimator through the two-phase contract.

The CUDA backend is imported lazily (``get_ops("cuda")``), so this package imports without
numba-cuda.
"""

from .data import (
    DATA_ENV,
    BatchStream,
    binarize,
    load_binarized_mnist,
    load_dataset,
    load_mnist_idx,
    read_idx,
    resolve_data_dir,
)
from .ops import CpuOps, NumpyOps, get_ops
from .vae import VAE, VAESpec, binary_spec, categorical_spec, init_params

__all__ = [
    "DATA_ENV",
    "VAE",
    "BatchStream",
    "CpuOps",
    "NumpyOps",
    "VAESpec",
    "binarize",
    "binary_spec",
    "categorical_spec",
    "get_ops",
    "init_params",
    "load_binarized_mnist",
    "load_dataset",
    "load_mnist_idx",
    "read_idx",
    "resolve_data_dir",
]
