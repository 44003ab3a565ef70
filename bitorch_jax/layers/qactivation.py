"""Quantized activation with bitorch's gradient cancellation: the pure functions.

Mirror of :mod:`bitorch.layers.qactivation`. The Flax classes in
:mod:`bitorch_jax.layers.linen` and :mod:`bitorch_jax.layers.nnx` only call these.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from bitorch_common.validation import check_threshold, is_traced, unwrap_variable
from bitorch_jax.quantizations import _REGISTRY as quantization_registry
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = [
    "gradient_cancellation",
    "q_activation",
    "check_threshold",
    "threshold_is_valid",
    "resolve_quantization",
]


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


@jax.custom_vjp
def _traced_gradient_cancellation(x: jax.Array, threshold: jax.Array) -> jax.Array:
    return x


def _traced_gradient_cancellation_fwd(
    x: jax.Array, threshold: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    # The rules of the concrete path, decided on the device: ``threshold`` in its own
    # dtype decides "off" (0) and validity, the one rounded to x's dtype is compared.
    threshold = jnp.asarray(threshold)
    on = threshold > 0
    cancel = on & (jnp.abs(x) > threshold.astype(x.dtype))
    return x, (cancel, ~threshold_is_valid(threshold))


def _traced_gradient_cancellation_bwd(
    res: tuple[jax.Array, jax.Array], g: jax.Array
) -> tuple[jax.Array, None]:
    cancel, invalid = res
    grad = jnp.where(cancel, jnp.zeros((), g.dtype), g)
    return jnp.where(invalid, jnp.full((), jnp.nan, g.dtype), grad), None


_traced_gradient_cancellation.defvjp(
    _traced_gradient_cancellation_fwd, _traced_gradient_cancellation_bwd
)


def threshold_is_valid(threshold: jax.Array) -> jax.Array:
    """The run-time rule of a traced threshold: finite and ``>= 0`` (a bool 0-d array)."""
    return jnp.isfinite(threshold) & (threshold >= 0)


def gradient_cancellation(x: jax.Array, threshold: Any) -> jax.Array:
    """Identity forward; the gradient is zeroed where ``|x| > threshold``.

    ``y = x``; ``dy/dx = 0`` where ``|x| > threshold`` (strict), else ``1``; a NaN input
    passes the gradient. ``threshold == 0`` turns cancellation off (returns ``x``).
    Saves a boolean mask.

    ``threshold`` is a real number, a 0-d real array or an ``nnx.Variable`` holding one;
    concrete values are checked (finite, ``>= 0``: ``ValueError`` otherwise). A traced
    threshold (e.g. read from an ``nnx.Variable`` inside ``nnx.jit``, so that a schedule
    compiles once) gives the same gradient bit for bit; an invalid one (negative,
    infinite, NaN) makes the whole gradient NaN, and under
    ``checkify.checkify(f, errors=checkify.user_checks)`` it is reported as the error
    ``"gradient_cancellation: gradient_cancellation_threshold must be finite and >= 0
    ..."`` (SPEC.md "Traced hyperparameters"). The threshold gets no gradient.

    >>> jax.grad(lambda x: gradient_cancellation(x, 1.0).sum())(jnp.array([-2.0, 0.5, 1.0]))
    Array([0., 1., 1.], dtype=float32)
    >>> f = jax.jit(lambda t: jax.grad(lambda x: gradient_cancellation(x, t).sum())(
    ...     jnp.array([-2.0, 0.5])))
    >>> f(1.0), f(-1.0)
    (Array([0., 1.], dtype=float32), Array([nan, nan], dtype=float32))
    """
    threshold = check_threshold(threshold, "gradient_cancellation")
    x = check_float_array(x, "gradient_cancellation")
    threshold = unwrap_variable(threshold)
    if is_traced(threshold):
        checkify.debug_check(
            threshold_is_valid(threshold),
            "gradient_cancellation: gradient_cancellation_threshold must be finite and >= 0 "
            "(0 turns cancellation off), got {threshold}",
            threshold=threshold,
        )
        return _traced_gradient_cancellation(x, threshold)
    threshold = float(threshold)
    if threshold == 0:
        return x
    return _gradient_cancellation(x, threshold)


def q_activation(x: jax.Array, quantization: Quantization, threshold: Any) -> jax.Array:
    """``quantization(x)`` after :func:`gradient_cancellation` with ``threshold`` (a
    number, a 0-d array or an ``nnx.Variable``; may be traced)."""
    return quantization(gradient_cancellation(x, threshold))
