"""Quantized N-d convolution: the pure function shared by linen ``QConv`` and NNX ``QConv``.

Mirror of :mod:`bitorch.layers.qconv` in Flax layout (input ``N, *spatial, C``; kernel
``*spatial, C_in / groups, C_out``). The input is quantized (after gradient
cancellation), padded with ``pad_value`` (default ``-1.0``) by ``jnp.pad``, and convolved
with the quantized kernel by a ``VALID`` ``jax.lax.conv_general_dilated``. The number of
spatial dimensions is ``kernel.ndim - 2``. The bias, if given, is added after the
convolution and is not quantized.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from bitorch_jax.layers.qactivation import check_threshold, q_activation, resolve_quantization
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["q_conv", "check_pad_value", "explicit_padding", "spatial_tuple"]

PaddingLike = str | int | Sequence[int] | Sequence[tuple[int, int]]


def check_pad_value(pad_value: Any, where: str) -> float:
    """The constant the quantized input is padded with: a finite real number."""
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, float)):
        raise TypeError(f"{where}: pad_value must be a real number, got {type(pad_value).__name__}")
    if not math.isfinite(pad_value):
        raise ValueError(f"{where}: pad_value must be finite, got {pad_value!r}")
    return float(pad_value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def spatial_tuple(value: Any, n: int, name: str, where: str, *, minimum: int) -> tuple[int, ...]:
    """An int (repeated ``n`` times) or a sequence of ``n`` ints, each ``>= minimum``."""
    values = (value,) * n if _is_int(value) else value
    if (
        isinstance(values, str)
        or not isinstance(values, Sequence)
        or len(values) != n
        or not all(_is_int(v) for v in values)
    ):
        raise TypeError(f"{where}: {name} must be an int or {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return tuple(values)


def explicit_padding(
    padding: PaddingLike,
    kernel_size: Sequence[int],
    kernel_dilation: Sequence[int],
    strides: Sequence[int],
    where: str,
) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per spatial dimension.

    ``padding`` is an int, ``n`` ints (symmetric), ``n`` ``(before, after)`` pairs, or
    ``"same"``/``"valid"`` (either case). ``"same"`` needs stride 1 (as in torch) and pads
    ``dilation * (kernel - 1)`` in total per dimension, the odd element after.
    """
    n = len(kernel_size)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * n
        if mode == "same":
            if any(s != 1 for s in strides):
                raise ValueError(
                    f"{where}: padding='same' needs strides 1 (as in torch), got {tuple(strides)}"
                )
            totals = [d * (k - 1) for k, d in zip(kernel_size, kernel_dilation, strict=True)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(
            f"{where}: padding must be an int, a sequence, 'same' or 'valid', got {padding!r}"
        )
    if _is_int(padding):
        padding = (padding,) * n
    if isinstance(padding, Sequence) and len(padding) == n:
        pairs = []
        for p in padding:
            if _is_int(p):
                pairs.append((p, p))
            elif isinstance(p, Sequence) and len(p) == 2 and all(_is_int(v) for v in p):
                pairs.append((p[0], p[1]))
            else:
                break
        else:
            if any(v < 0 for pair in pairs for v in pair):
                raise ValueError(f"{where}: padding must be >= 0, got {padding!r}")
            return tuple(pairs)
    raise TypeError(
        f"{where}: padding must be an int, {n} ints, {n} (before, after) pairs, 'same' or "
        f"'valid', got {padding!r}"
    )


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
) -> jax.Array:
    """bitorch's quantized convolution, N-d by the kernel's rank.

    ``y = conv(pad(q_in(gc(x)), pad_value), q_w(kernel)) (+ bias)``. ``x`` is
    ``(N, *spatial, C_in)`` or unbatched ``(*spatial, C_in)``; ``kernel`` is
    ``(*kernel_size, C_in / feature_group_count, C_out)``; ``bias`` is ``(C_out,)`` or
    ``None``. ``gc`` zeroes the gradient where ``|x| > gradient_cancellation_threshold``
    (``0`` turns it off). Arrays of different float dtypes are promoted to their common
    dtype. ``precision`` goes to the convolution (``HIGHEST`` on GPU rules out TF32).

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
    if kernel.ndim < 3:
        raise ValueError(
            f"{where}: kernel must be (*kernel_size, in_features / groups, out_features) with "
            f"at least one spatial dimension, got shape {kernel.shape}"
        )
    n = kernel.ndim - 2
    kernel_size = kernel.shape[:n]
    strides = spatial_tuple(strides, n, "strides", where, minimum=1)
    dilation = spatial_tuple(kernel_dilation, n, "kernel_dilation", where, minimum=1)
    if not _is_int(feature_group_count) or feature_group_count < 1:
        raise ValueError(
            f"{where}: feature_group_count must be an int >= 1, got {feature_group_count!r}"
        )
    pads = explicit_padding(padding, kernel_size, dilation, strides, where)
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(
            f"{where}: a {n}-d kernel needs input (N, *spatial, C) or (*spatial, C) with "
            f"{n} spatial dimensions, got input shape {x.shape}"
        )
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
    spatial = x.shape[-n - 1 : -1]
    for size, (lo, hi), k, d in zip(spatial, pads, kernel_size, dilation, strict=True):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(
                f"{where}: padded input {tuple(spatial)} + padding {pads} is smaller than the "
                f"dilated kernel {tuple(kernel_size)} (dilation {dilation})"
            )
    arrays = [x, kernel]
    if bias is not None:
        bias = check_float_array(bias, where)
        if bias.shape != (out_features,):
            raise ValueError(f"{where}: bias must have shape ({out_features},), got {bias.shape}")
        arrays.append(bias)
    dtype = jnp.result_type(*arrays)

    unbatched = x.ndim == n + 1
    if unbatched:
        x = x[None]
    xq = q_activation(x.astype(dtype), input_quantization, threshold)
    if any(p for pair in pads for p in pair):
        xq = jnp.pad(xq, ((0, 0), *pads, (0, 0)), constant_values=pad_value)
    wq = weight_quantization(kernel.astype(dtype))
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
        padding=((0, 0),) * n,
        rhs_dilation=dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
    )
    if bias is not None:
        y = y + bias.astype(dtype)
    return y[0] if unbatched else y
