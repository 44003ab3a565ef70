"""Quantized fully connected layer: the pure function shared by linen ``QDense`` and NNX
``QLinear``. Mirror of :mod:`bitorch.layers.qlinear`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_threshold
from bitorch_jax.layers.qactivation import q_activation, resolve_quantization
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["q_linear"]


def q_linear(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    input_quantization: str | Quantization = "sign",
    weight_quantization: str | Quantization = "sign",
    gradient_cancellation_threshold: float = 1.0,
    precision: Any = None,
) -> jax.Array:
    """``q_in(gc(x)) @ q_w(kernel) + bias``, bitorch's ``QLinear`` in Flax layout.

    ``kernel`` has shape ``(in_features, out_features)`` (the transpose of torch's
    ``weight``); ``bias`` has shape ``(out_features,)`` or is ``None`` and is not
    quantized. ``gc`` is gradient cancellation: identity forward, gradient zeroed where
    ``|x| > gradient_cancellation_threshold`` (``0`` turns it off). Quantizations are
    registry names or quantizer objects. Arrays of different float dtypes are promoted to
    their common dtype first. ``precision`` is passed to the matrix product (use
    ``jax.lax.Precision.HIGHEST`` on GPU to rule out TF32).

    >>> q_linear(jnp.array([[0.7, -1.5, 0.0]]), jnp.array([[0.2, -0.3], [-0.4, 0.5], [0.1, -0.6]]))
    Array([[ 3., -3.]], dtype=float32)
    """
    where = "q_linear"
    x = check_float_array(x, where)
    kernel = check_float_array(kernel, where)
    threshold = check_threshold(gradient_cancellation_threshold, where)
    input_quantization = resolve_quantization(input_quantization, where)
    weight_quantization = resolve_quantization(weight_quantization, where)
    if kernel.ndim != 2:
        raise ValueError(
            f"{where}: kernel must be 2-d (in_features, out_features), got shape {kernel.shape}"
        )
    if x.ndim < 1 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"{where}: input's last dimension must be in_features={kernel.shape[0]}, "
            f"got input shape {x.shape}"
        )
    arrays = [x, kernel]
    if bias is not None:
        bias = check_float_array(bias, where)
        if bias.shape != (kernel.shape[1],):
            raise ValueError(
                f"{where}: bias must have shape ({kernel.shape[1]},), got {bias.shape}"
            )
        arrays.append(bias)
    dtype = jnp.result_type(*arrays)
    xq = q_activation(x.astype(dtype), input_quantization, threshold)
    wq = weight_quantization(kernel.astype(dtype))
    y = jnp.matmul(xq, wq, precision=precision)
    if bias is not None:
        y = y + bias.astype(dtype)
    return y
