"""Framework adapters: turn a PyTorch or JAX implementation of an estimator into a *port*.

A port is the NumPy callable the port checker takes::

    port(params, noise, objective, dist="bernoulli" | "categorical", **options)
        -> float64 array of shape (*batch, R, *param_shape)

* sample level: ``noise`` is our dict of noise arrays (see the estimator's noise
  specification); the framework code must map it to samples exactly as documented.
* distribution level: ``noise=None`` and the keywords ``R`` (replicates) and ``seed``; the
  framework code draws its own randomness.

:mod:`verify.adapters.torch` (extra ``torch``) and :mod:`verify.adapters.jax` (extra
``jax``) each provide ``make_port(fn, dtype=...)``, which converts arrays on the way in and
out, and an objective wrapper that exposes ``f(z)`` at configurations and the differentiable
extension ``f(y)`` (with its gradient from ``objective.relaxed``) to the framework's
automatic differentiation, so that straight-through, Gumbel-Softmax or REBAR-style code can
call ``f`` on tensors and backpropagate through it.

This package imports neither framework: import the submodule you need.
"""

__all__: list[str] = []
