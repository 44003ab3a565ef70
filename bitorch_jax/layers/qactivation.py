"""Quantized activation with bitorch's gradient cancellation: the pure functions.

Mirror of :mod:`bitorch.layers.qactivation`. The Flax classes in
:mod:`bitorch_jax.layers.linen` and :mod:`bitorch_jax.layers.nnx` only call these.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_threshold
from bitorch_jax.quantizations import _REGISTRY as quantization_registry
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["gradient_cancellation", "q_activation", "check_threshold", "resolve_quantization"]


def resolve_quantization(quantization: str | Quantization, where: str) -> Quantization:
    """A quantizer given by registry name (built with its defaults) or as an instance."""
    return quantization_registry.resolve(quantization, where)


@jax.custom_vjp
def _gradient_cancellation(x: jax.Array, threshold: Any) -> jax.Array:
    return x


def _gradient_cancellation_fwd(x: jax.Array, threshold: Any) -> tuple[jax.Array, jax.Array]:
    return x, jnp.abs(x) > jnp.asarray(threshold, x.dtype)


def _gradient_cancellation_bwd(cancel: jax.Array, g: jax.Array) -> tuple[jax.Array, None]:
    return jnp.where(cancel, jnp.zeros((), g.dtype), g), None


_gradient_cancellation.defvjp(_gradient_cancellation_fwd, _gradient_cancellation_bwd)


def gradient_cancellation(x: jax.Array, threshold: float) -> jax.Array:
    """Identity forward; the gradient is zeroed where ``|x| > threshold``.

    ``y = x``; ``dy/dx = 0`` where ``|x| > threshold`` (strict), else ``1``; a NaN input
    passes the gradient. ``threshold == 0`` turns cancellation off (returns ``x``).
    Saves a boolean mask.

    >>> jax.grad(lambda x: gradient_cancellation(x, 1.0).sum())(jnp.array([-2.0, 0.5, 1.0]))
    Array([0., 1., 1.], dtype=float32)
    """
    threshold = check_threshold(threshold, "gradient_cancellation")
    x = check_float_array(x, "gradient_cancellation")
    if threshold == 0:
        return x
    return _gradient_cancellation(x, threshold)


def q_activation(x: jax.Array, quantization: Quantization, threshold: float) -> jax.Array:
    """``quantization(x)`` after :func:`gradient_cancellation` with ``threshold``."""
    return quantization(gradient_cancellation(x, threshold))
