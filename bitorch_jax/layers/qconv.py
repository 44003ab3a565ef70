"""Quantized N-d convolution: the pure function shared by linen ``QConv`` and NNX ``QConv``.

Mirror of :mod:`bitorch.layers.qconv` in Flax layout (input ``N, *spatial, C``; kernel
``*spatial, C_in / groups, C_out``). The input is quantized (after gradient
cancellation), padded with ``pad_value`` (default ``-1.0``) by ``jnp.pad``, and convolved
with the quantized kernel by ``jax.lax.conv_general_dilated`` (the ring is padded one
element wider and cropped again by the convolution's padding of ``-1``: the same
operands, on XLA:CPU's faster padded-convolution path; see the comment in
:func:`q_conv`). The number of
spatial dimensions is ``kernel.ndim - 2``. An output scale and the bias, if given, are
applied after the convolution (in that order) and are not quantized. ``"same"`` padding
follows ``jax.lax``'s ``"SAME"`` for any stride (computed from the input's size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import (
    check_pad_value,
    check_threshold,
    explicit_padding,
    is_int,
    spatial_tuple,
)
from bitorch_jax.layers.qactivation import q_activation, resolve_quantization
from bitorch_jax.layers.qlinear import (
    check_channel_vector,
    check_compute_dtype,
    promote_operands,
    scale_and_shift,
)
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["q_conv", "check_pad_value", "explicit_padding", "spatial_tuple"]

PaddingLike = str | int | Sequence[int] | Sequence[tuple[int, int]]


def q_conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: PaddingLike = 0,
    kernel_dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
    pad_value: float = -1.0,
    input_quantization: str | Quantization = "sign",
    weight_quantization: str | Quantization = "sign",
    gradient_cancellation_threshold: float = 1.0,
    precision: Any = None,
    dtype: Any = None,
    preferred_element_type: Any = None,
    scale: jax.Array | None = None,
) -> jax.Array:
    """bitorch's quantized convolution, N-d by the kernel's rank.

    ``y = conv(pad(q_in(gc(x)), pad_value), q_w(kernel)) (* scale) (+ bias)``. ``x`` is
    ``(N, *spatial, C_in)`` or unbatched ``(*spatial, C_in)``; ``kernel`` is
    ``(*kernel_size, C_in / feature_group_count, C_out)``; ``bias`` is ``(C_out,)`` or
    ``None``; ``scale`` (XNOR-Net's per-output-channel scale) is ``(C_out,)`` or ``None``.
    ``gc`` zeroes the gradient where ``|x| > gradient_cancellation_threshold`` (``0`` turns
    it off). ``padding="same"`` (any case) is ``jax.lax``'s ``"SAME"`` for every stride,
    padded with ``pad_value``. ``dtype``, ``precision`` and ``preferred_element_type`` as in
    :func:`~bitorch_jax.layers.q_linear` (``None`` promotes the operands to their common
    dtype; the last two go to ``jax.lax.conv_general_dilated``).

    >>> q_conv(jnp.array([[[0.3], [-0.2]]]), jnp.array([[[0.5]], [[-0.5]]]), padding=1)
    Array([[[-2.],
            [ 2.],
            [ 0.]]], dtype=float32)
    """
    where = "q_conv"
    x = check_float_array(x, where)
    kernel = check_float_array(kernel, where)
    threshold = check_threshold(gradient_cancellation_threshold, where)
    input_quantization = resolve_quantization(input_quantization, where)
    weight_quantization = resolve_quantization(weight_quantization, where)
    pad_value = check_pad_value(pad_value, where)
    dtype = check_compute_dtype(dtype, "dtype", where)
    preferred_element_type = check_compute_dtype(
        preferred_element_type, "preferred_element_type", where
    )
    if kernel.ndim < 3:
        raise ValueError(
            f"{where}: kernel must be (*kernel_size, in_features / groups, out_features) with "
            f"at least one spatial dimension, got shape {kernel.shape}"
        )
    n = kernel.ndim - 2
    kernel_size = kernel.shape[:n]
    strides = spatial_tuple(strides, n, "strides", where, minimum=1)
    dilation = spatial_tuple(kernel_dilation, n, "kernel_dilation", where, minimum=1)
    if not is_int(feature_group_count) or feature_group_count < 1:
        raise ValueError(
            f"{where}: feature_group_count must be an int >= 1, got {feature_group_count!r}"
        )
    explicit_padding(padding, kernel_size, dilation, strides, where)  # checks the form
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(
            f"{where}: a {n}-d kernel needs input (N, *spatial, C) or (*spatial, C) with "
            f"{n} spatial dimensions, got input shape {x.shape}"
        )
    spatial = x.shape[-n - 1 : -1]
    pads = explicit_padding(padding, kernel_size, dilation, strides, where, spatial)
    in_features, out_features = kernel.shape[-2] * feature_group_count, kernel.shape[-1]
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{where}: input has {x.shape[-1]} channels, the kernel expects {kernel.shape[-2]} "
            f"x feature_group_count {feature_group_count} = {in_features}"
        )
    if out_features % feature_group_count:
        raise ValueError(
            f"{where}: out_features {out_features} is not divisible by feature_group_count "
            f"{feature_group_count}"
        )
    for size, (lo, hi), k, d in zip(spatial, pads, kernel_size, dilation, strict=True):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(
                f"{where}: padded input {tuple(spatial)} + padding {pads} is smaller than the "
                f"dilated kernel {tuple(kernel_size)} (dilation {dilation})"
            )
    scale = check_channel_vector(scale, "scale", out_features, where)
    bias = check_channel_vector(bias, "bias", out_features, where)
    x, kernel, scale, bias = promote_operands((x, kernel, scale, bias), dtype)

    unbatched = x.ndim == n + 1
    if unbatched:
        x = x[None]
    xq = q_activation(x, input_quantization, threshold)
    conv_padding = ((0, 0),) * n
    if any(p for pair in pads for p in pair):
        # XLA:CPU runs a convolution with some padding on a faster path than an unpadded
        # ("VALID") one: measured (jax 0.10, 2 cores) on 3x3 convolutions of ±1 operands,
        # forward + backward, 64->64 at 64x32x32 stride 1: 331 vs 169 ms; stride 2: 121 vs
        # 90 ms; 128->128 at 64x16x16: 200 vs 112 ms. So the pad_value ring is padded one
        # element wider by jnp.pad and cropped again by the convolution's padding of -1:
        # the same operands, bit-identical results (tests/jax/test_qconv_ring.py). Without
        # padding the plain VALID convolution is the faster one (1x1: 53 vs 65 ms).
        ring = tuple((lo + 1, hi + 1) for lo, hi in pads)
        xq = jnp.pad(xq, ((0, 0), *ring, (0, 0)), constant_values=pad_value)
        conv_padding = ((-1, -1),) * n
    wq = weight_quantization(kernel)
    spatial_axes = tuple(range(1, n + 1))
    dimension_numbers = jax.lax.ConvDimensionNumbers(
        lhs_spec=(0, n + 1, *spatial_axes),
        rhs_spec=(n + 1, n, *range(n)),
        out_spec=(0, n + 1, *spatial_axes),
    )
    y = jax.lax.conv_general_dilated(
        xq,
        wq,
        window_strides=strides,
        padding=conv_padding,
        rhs_dilation=dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    y = scale_and_shift(y, scale, bias)
    return y[0] if unbatched else y
