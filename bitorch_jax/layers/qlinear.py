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

__all__ = ["q_linear", "check_compute_dtype", "promote_operands", "scale_and_shift"]


def q_linear(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    input_quantization: str | Quantization = "sign",
    weight_quantization: str | Quantization = "sign",
    gradient_cancellation_threshold: float = 1.0,
    precision: Any = None,
    dtype: Any = None,
    preferred_element_type: Any = None,
    scale: jax.Array | None = None,
) -> jax.Array:
    """``q_in(gc(x)) @ q_w(kernel) (* scale) + bias``, bitorch's ``QLinear`` in Flax layout.

    ``kernel`` has shape ``(in_features, out_features)`` (the transpose of torch's
    ``weight``); ``bias`` has shape ``(out_features,)`` or is ``None`` and is not
    quantized. ``gc`` is gradient cancellation: identity forward, gradient zeroed where
    ``|x| > gradient_cancellation_threshold`` (``0`` turns it off). Quantizations are
    registry names or quantizer objects. ``scale`` (``(out_features,)`` or ``None``) is
    XNOR-Net's learnable per-output scale, multiplied onto the product before the bias.

    dtypes, as in ``flax.nnx.Linear``: ``dtype=None`` promotes ``x``, ``kernel``, ``scale``
    and ``bias`` to their common dtype, otherwise all are cast to ``dtype``; both
    quantizers see the promoted operands. ``precision`` and ``preferred_element_type`` go to
    ``jax.lax.dot_general`` (``HIGHEST`` rules out TF32 on GPU; ``jnp.float32`` sums the
    +-1 products of bfloat16 operands exactly, and the result keeps that dtype: cast it if
    you want bfloat16).

    >>> q_linear(jnp.array([[0.7, -1.5, 0.0]]), jnp.array([[0.2, -0.3], [-0.4, 0.5], [0.1, -0.6]]))
    Array([[ 3., -3.]], dtype=float32)
    """
    where = "q_linear"
    x = check_float_array(x, where)
    kernel = check_float_array(kernel, where)
    threshold = check_threshold(gradient_cancellation_threshold, where)
    input_quantization = resolve_quantization(input_quantization, where)
    weight_quantization = resolve_quantization(weight_quantization, where)
    dtype = check_compute_dtype(dtype, "dtype", where)
    preferred_element_type = check_compute_dtype(
        preferred_element_type, "preferred_element_type", where
    )
    if kernel.ndim != 2:
        raise ValueError(
            f"{where}: kernel must be 2-d (in_features, out_features), got shape {kernel.shape}"
        )
    if x.ndim < 1 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"{where}: input's last dimension must be in_features={kernel.shape[0]}, "
            f"got input shape {x.shape}"
        )
    scale = check_channel_vector(scale, "scale", kernel.shape[1], where)
    bias = check_channel_vector(bias, "bias", kernel.shape[1], where)
    x, kernel, scale, bias = promote_operands((x, kernel, scale, bias), dtype)
    xq = q_activation(x, input_quantization, threshold)
    wq = weight_quantization(kernel)
    y = jax.lax.dot_general(
        xq,
        wq,
        (((xq.ndim - 1,), (0,)), ((), ())),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return scale_and_shift(y, scale, bias)


def check_compute_dtype(dtype: Any, name: str, where: str) -> Any:
    """``None`` or a floating-point dtype (float16, bfloat16, float32, float64) as a NumPy
    dtype; anything else is a ``TypeError`` naming ``name``."""
    if dtype is None:
        return None
    try:
        resolved = jnp.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{where}: {name} must be a float dtype or None, got {dtype!r}") from error
    if not jnp.issubdtype(resolved, jnp.floating):
        raise TypeError(f"{where}: {name} must be a float dtype or None, got {resolved}")
    return resolved


def check_channel_vector(
    vector: jax.Array | None, name: str, features: int, where: str
) -> jax.Array | None:
    """A float ``(features,)`` array (a bias or an output scale) or ``None``."""
    if vector is None:
        return None
    vector = check_float_array(vector, where)
    if vector.shape != (features,):
        raise ValueError(f"{where}: {name} must have shape ({features},), got {vector.shape}")
    return vector


def promote_operands(arrays: tuple, dtype: Any) -> tuple:
    """``arrays`` (``None`` kept) cast to ``dtype``, or with ``dtype=None`` to their common
    dtype: flax's ``promote_dtype`` rule (float32 parameters with a bfloat16 input compute
    in float32)."""
    present = [a for a in arrays if a is not None]
    target = jnp.result_type(*present) if dtype is None else dtype
    return tuple(None if a is None else a.astype(target) for a in arrays)


def scale_and_shift(y: jax.Array, scale: jax.Array | None, bias: jax.Array | None) -> jax.Array:
    """``y * scale + bias`` over the last (feature) axis; each ``None`` is left out. ``y``
    keeps its dtype when it is the wider one (``preferred_element_type``), as in Flax."""
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y
