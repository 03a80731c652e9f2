"""Layers of the VAEs with hand-written backward passes: the NumPy reference (float64).

Every function mirrors one formula; the Numba CPU twins are in ``_layers_cpu`` and the CUDA
twins in ``_layers_cuda``, with the same names. Rows are data points (or latent
configurations), so a batch is an array ``(N, D)``. Weights are stored ``(D_in, D_out)``.

* Linear: ``y = x W + b``; backward ``dx = dy W^T``, ``dW = x^T dy``, ``db = sum_n dy_n``.
* LeakyReLU with slope ``s`` in ``(0, 1)`` (0.2 in the papers): ``h = a if a > 0 else s a``;
  backward ``da = dh * (1 if h > 0 else s)`` (the sign of ``h`` is the sign of ``a``, so the
  backward pass needs only the output).
* One-hot linear (the categorical decoder's first layer): ``z`` of ``K`` categories in
  ``[0, C)`` is the one-hot vector ``e(z)`` of length ``K C`` (entry ``k C + z_k`` is 1), and
  ``y = e(z) W + b = b + sum_k W[k C + z_k]``; backward ``dW[k C + z_k] += dy`` (a
  scatter-add), ``db = sum_n dy_n``.
* Bernoulli log-likelihood on logits ``l``: ``log p(x | l) = sum_d x_d l_d - softplus(l_d)``,
  ``softplus(l) = max(l, 0) + log1p(exp(-|l|))``; ``d/dl = x - sigmoid(l)``. Row ``n`` of the
  logits is scored against data row ``n // G`` (``G`` configurations per data point).
* Entropy of a factorial categorical ``q`` with logits ``alpha`` ``(..., K, C)``:
  ``H = -sum_k sum_c p_kc log p_kc``; ``dH/dalpha_kc = -p_kc (log p_kc + H_k)``, where ``H_k``
  is the entropy of dimension ``k``.
* Entropy of a factorial Bernoulli with logits ``phi`` ``(..., K)``:
  ``H = sum_k softplus(phi_k) - sigmoid(phi_k) phi_k``; ``dH/dphi_k = -sigmoid'(phi_k) phi_k``
  with ``sigmoid' = sigmoid (1 - sigmoid)``.
* Adam (Kingma & Ba 2015, arXiv 1412.6980), descent on a loss, step ``t >= 1``:
  ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
  ``p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
"""

from __future__ import annotations

import numpy as np

from ..distributions import log_sigmoid, log_softmax, sigmoid, softmax

__all__ = [
    "linear",
    "linear_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "onehot",
    "onehot_linear",
    "onehot_linear_backward",
    "softplus",
    "bernoulli_loglik",
    "bernoulli_loglik_grad",
    "categorical_entropy",
    "categorical_entropy_grad",
    "categorical_entropy_and_grad",
    "bernoulli_entropy",
    "bernoulli_entropy_grad",
    "adam_update",
]


def linear(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y = x W + b``: x ``(N, I)``, W ``(I, O)``, b ``(O,)`` -> ``(N, O)``."""
    return x @ W + b


def linear_backward(x: np.ndarray, W: np.ndarray, dy: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dW, db) = (dy W^T, x^T dy, sum_n dy_n)``."""
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


def leaky_relu(a: np.ndarray, slope: float) -> np.ndarray:
    """``h = a`` where ``a > 0``, else ``slope * a``."""
    return np.where(a > 0, a, slope * a)


def leaky_relu_backward(h: np.ndarray, dh: np.ndarray, slope: float) -> np.ndarray:
    """``da = dh`` where ``h > 0``, else ``slope * dh`` (``h`` the layer's output)."""
    return np.where(h > 0, dh, slope * dh)


def onehot(z: np.ndarray, C: int) -> np.ndarray:
    """``e(z)``: z int ``(N, K)`` -> float64 ``(N, K C)``, entry ``k C + z_k`` equal to 1."""
    N, K = z.shape
    out = np.zeros((N, K * C))
    out[np.arange(N)[:, None], np.arange(K) * C + z] = 1.0
    return out


def onehot_linear(z: np.ndarray, W: np.ndarray, b: np.ndarray, C: int) -> np.ndarray:
    """``y = e(z) W + b``: z int ``(N, K)``, W ``(K C, O)`` -> ``(N, O)``."""
    return onehot(z, C) @ W + b


def onehot_linear_backward(z: np.ndarray, dy: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """``(dW, db) = (e(z)^T dy, sum_n dy_n)``."""
    return onehot(z, C).T @ dy, dy.sum(axis=0)


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``."""
    return -log_sigmoid(-x)


def _rows(x: np.ndarray, N: int) -> np.ndarray:
    G = N // x.shape[0]
    if G * x.shape[0] != N:
        raise ValueError(f"{N} logit rows are not a multiple of {x.shape[0]} data rows")
    return np.repeat(x, G, axis=0)


def bernoulli_loglik(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``sum_d x_d l_d - softplus(l_d)`` per row: logits ``(N, D)``, x ``(B, D)``, ``N = B G``;
    row ``n`` uses data row ``n // G``. Returns ``(N,)``."""
    xr = _rows(x, logits.shape[0])
    return (xr * logits - softplus(logits)).sum(axis=1)


def bernoulli_loglik_grad(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``d/dl log p(x | l) = x - sigmoid(l)``, shape of ``logits``."""
    return _rows(x, logits.shape[0]) - sigmoid(logits)


def categorical_entropy(alpha: np.ndarray) -> np.ndarray:
    """``H = -sum_k sum_c p_kc log p_kc`` over the last two axes of ``alpha`` ``(..., K, C)``."""
    logp = log_softmax(alpha)
    return -(np.exp(logp) * logp).sum(axis=(-2, -1))


def categorical_entropy_grad(alpha: np.ndarray) -> np.ndarray:
    """``dH/dalpha_kc = -p_kc (log p_kc + H_k)``, shape of ``alpha``."""
    logp = log_softmax(alpha)
    p = softmax(alpha)
    Hk = -(p * logp).sum(axis=-1, keepdims=True)
    return -p * (logp + Hk)


def categorical_entropy_and_grad(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, dH/dalpha)`` of :func:`categorical_entropy` and :func:`categorical_entropy_grad`
    from one log-softmax (``p = exp(log p)``): what a training step needs, at half the cost."""
    logp = log_softmax(alpha)
    p = np.exp(logp)
    Hk = -(p * logp).sum(axis=-1, keepdims=True)
    return Hk[..., 0].sum(axis=-1), -p * (logp + Hk)


def bernoulli_entropy(phi: np.ndarray) -> np.ndarray:
    """``H = sum_k softplus(phi_k) - sigmoid(phi_k) phi_k`` over the last axis."""
    return (softplus(phi) - sigmoid(phi) * phi).sum(axis=-1)


def bernoulli_entropy_grad(phi: np.ndarray) -> np.ndarray:
    """``dH/dphi_k = -sigmoid(phi_k) sigmoid(-phi_k) phi_k``."""
    return -sigmoid(phi) * sigmoid(-phi) * phi


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float,
                b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    """One Adam step in place on ``p``, ``m``, ``v`` (descent on the loss whose gradient is ``g``)."""
    m *= b1
    m += (1.0 - b1) * g
    v *= b2
    v += (1.0 - b2) * g * g
    mhat = m / (1.0 - b1**t)
    vhat = v / (1.0 - b2**t)
    p -= lr * mhat / (np.sqrt(vhat) + eps)
