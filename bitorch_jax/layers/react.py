"""ReActNet's learnable activations (Liu et al., "ReActNet: Towards Precise Binary Neural
Network with Generalized Activation Functions", 2020): the pure functions behind linen
and NNX ``RSign``/``RPReLU``. Mirror of :mod:`bitorch.layers.react` (same formulas).

The per-channel parameters (shape ``(C,)``) broadcast over the **last** axis (channels
last, Flax's layout; torch uses axis 1). With ``z = x + bias`` for ``rsign`` and
``z = x + bias_in`` for ``rprelu``, and the incoming gradient ``g``::

    rsign:   y = q(z) = +1 if z >= 0 else -1           (the "sign" quantizer; NaN stays NaN)
             dL/dx    = g where |z| <= t, else 0        (straight-through estimator with
                                                        gradient cancellation at threshold t;
                                                        t = 0 turns cancellation off)
             dL/dbias = dL/dx summed over every axis but the last

    rprelu:  y = z + bias_out           where z > 0
             y = slope * z + bias_out   where z <= 0   (torch's PReLU, then a shift)
             dL/dx        = g where z > 0, else slope * g
             dL/dbias_in  = dL/dx summed over every axis but the last
             dL/dslope    = (g * z where z <= 0, else 0) summed likewise
             dL/dbias_out = g summed likewise

``rsign`` takes any quantizer (``quantization``; ReActNet's paper uses ApproxSign's
gradient, registry name ``"approxsign"``), applied after the gradient cancellation exactly
as :func:`bitorch_jax.layers.q_activation` does. ``rprelu`` rounds ``slope * z`` before
adding ``bias_out`` (no fused multiply-add), as torch does. One difference from torch
remains: XLA on CPU flushes a subnormal ``x + bias_in`` to 0 (then ``z <= 0``), torch keeps
it (``z > 0``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_threshold
from bitorch_jax.layers.qactivation import q_activation, resolve_quantization
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["rsign", "rprelu", "check_channel_parameter"]


def check_channel_parameter(x: jax.Array, parameter: Any, name: str, where: str) -> jax.Array:
    """``parameter`` as a float array of shape ``(C,)``, ``C`` the size of ``x``'s last axis
    (``ValueError`` naming the parameter and both shapes otherwise)."""
    parameter = check_float_array(parameter, where)
    if jnp.ndim(x) < 1:
        raise ValueError(f"{where}: the input must have a channel axis (last), got a 0-d input")
    channels = jnp.shape(x)[-1]
    if jnp.shape(parameter) != (channels,):
        raise ValueError(
            f"{where}: {name} must have shape ({channels},) (one value per channel of the "
            f"input's last axis), got {tuple(jnp.shape(parameter))} for input shape "
            f"{tuple(jnp.shape(x))}"
        )
    return parameter


def rsign(
    x: jax.Array,
    bias: jax.Array,
    *,
    quantization: str | Quantization = "sign",
    gradient_cancellation_threshold: float = 1.0,
) -> jax.Array:
    """ReActNet's RSign: ``q(x + bias)`` with a per-channel ``bias`` ``(C,)`` on the last
    axis; the gradient is ``quantization``'s (straight-through for ``"sign"``), zeroed
    where ``|x + bias| > gradient_cancellation_threshold`` (module doc).

    >>> rsign(jnp.array([[0.3, -0.2]]), jnp.array([-0.5, 0.5]))
    Array([[-1.,  1.]], dtype=float32)
    """
    where = "rsign"
    quantizer = resolve_quantization(quantization, where)
    threshold = check_threshold(gradient_cancellation_threshold, where)
    x = check_float_array(x, where)
    bias = check_channel_parameter(x, bias, "bias", where)
    return q_activation(x + bias, quantizer, threshold)


@jax.custom_jvp
def _rounded(x: jax.Array) -> jax.Array:
    """``x`` itself, but XLA cannot contract the product that made it with a following
    add into one fused multiply-add (torch rounds the product, then the sum). The
    derivative is 1 everywhere (NaN included)."""
    return jnp.where(x == x, x, jnp.nan)


@_rounded.defjvp
def _rounded_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    return _rounded(primals[0]), tangents[0]


def rprelu(x: jax.Array, bias_in: jax.Array, slope: jax.Array, bias_out: jax.Array) -> jax.Array:
    """ReActNet's RPReLU: ``prelu(x + bias_in; slope) + bias_out``, every parameter
    per channel ``(C,)`` on the last axis (module doc for the gradients).

    >>> rprelu(jnp.array([[1.0, -2.0]]), jnp.zeros(2), jnp.full(2, 0.25), jnp.array([0.0, 1.0]))
    Array([[1. , 0.5]], dtype=float32)
    """
    where = "rprelu"
    x = check_float_array(x, where)
    bias_in = check_channel_parameter(x, bias_in, "bias_in", where)
    slope = check_channel_parameter(x, slope, "slope", where)
    bias_out = check_channel_parameter(x, bias_out, "bias_out", where)
    z = x + bias_in
    return jnp.where(z > 0, z, _rounded(slope * z)) + bias_out
