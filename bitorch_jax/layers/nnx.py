"""Flax NNX layers of bitorch_jax. The math lives in the pure functions of
:mod:`bitorch_jax.layers`; these modules only hold hyperparameters and parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_common.validation import (
    check_pad_value,
    check_positive_int,
    check_threshold,
    explicit_padding,
    spatial_tuple,
)
from bitorch_jax.layers.qactivation import q_activation, resolve_quantization
from bitorch_jax.layers.qconv import PaddingLike, q_conv
from bitorch_jax.layers.qlinear import q_linear
from bitorch_jax.quantizations import Quantization

__all__ = ["QActivation", "QConv", "QLinear"]

_LECUN_NORMAL = nnx.initializers.lecun_normal()
_ZEROS = nnx.initializers.zeros_init()


class QActivation(nnx.Module):
    """Quantize the input after gradient cancellation (NNX).

    ``activation`` is a registry name or a quantizer object; the gradient is zeroed where
    ``|x| > gradient_cancellation_threshold`` (``0`` turns cancellation off).

    >>> import jax.numpy as jnp
    >>> QActivation("sign", gradient_cancellation_threshold=1.0)(jnp.array([-2.0, 0.5]))
    Array([-1.,  1.], dtype=float32)
    """

    def __init__(
        self,
        activation: str | Quantization = "sign",
        *,
        gradient_cancellation_threshold: float = 0.0,
    ) -> None:
        self.activation = resolve_quantization(activation, "QActivation")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QActivation"
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_activation(x, self.activation, self.gradient_cancellation_threshold)


class QLinear(nnx.Module):
    """bitorch's ``QLinear`` for NNX: ``q_in(gc(x)) @ q_w(kernel) + bias``.

    The math is :func:`bitorch_jax.layers.q_linear`. Parameters: ``kernel``
    ``(in_features, out_features)`` and, with ``use_bias``, ``bias`` ``(out_features,)``.
    ``gradient_cancellation_threshold=0`` turns gradient cancellation off.

    >>> layer = QLinear(3, 2, use_bias=False, rngs=nnx.Rngs(0))
    >>> layer.kernel[...] = jnp.array([[0.2, -0.3], [-0.4, 0.5], [0.1, -0.6]])
    >>> layer(jnp.array([[0.7, -1.5, 0.0]]))
    Array([[ 3., -3.]], dtype=float32)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Callable[..., jax.Array] = _LECUN_NORMAL,
        bias_init: Callable[..., jax.Array] = _ZEROS,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = check_positive_int(in_features, "in_features", "QLinear")
        self.out_features = check_positive_int(out_features, "out_features", "QLinear")
        self.input_quantization = resolve_quantization(input_quantization, "QLinear")
        self.weight_quantization = resolve_quantization(weight_quantization, "QLinear")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QLinear"
        )
        self.precision = precision
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (in_features, out_features), param_dtype)
        )
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_linear(
            x,
            self.kernel[...],
            None if self.bias is None else self.bias[...],
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
        )


class QConv(nnx.Module):
    """bitorch's quantized convolution for NNX, N-d by ``len(kernel_size)``.

    The math is :func:`bitorch_jax.layers.q_conv`: the input (``N, *spatial, C`` or
    unbatched) is quantized after gradient cancellation, padded with ``pad_value``, and
    convolved (VALID) with the quantized kernel
    ``(*kernel_size, in_features / groups, out_features)``. ``padding`` is an int, ints,
    ``(before, after)`` pairs, ``"same"`` or ``"valid"``, default ``0`` as in bitorch;
    ``use_bias`` defaults to ``False`` (see :mod:`bitorch.layers.qconv`).

    >>> conv = QConv(1, 1, (2,), padding=1, rngs=nnx.Rngs(0))
    >>> conv.kernel[...] = jnp.array([[[0.5]], [[-0.5]]])
    >>> conv(jnp.array([[[0.3], [-0.2]]]))[0, :, 0]
    Array([-2.,  2.,  0.], dtype=float32)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: Sequence[int],
        *,
        strides: int | Sequence[int] = 1,
        padding: PaddingLike = 0,
        kernel_dilation: int | Sequence[int] = 1,
        feature_group_count: int = 1,
        use_bias: bool = False,
        pad_value: float = -1.0,
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Callable[..., jax.Array] = _LECUN_NORMAL,
        bias_init: Callable[..., jax.Array] = _ZEROS,
        rngs: nnx.Rngs,
    ) -> None:
        where = "QConv"
        if isinstance(kernel_size, (int, str)) or not isinstance(kernel_size, Sequence):
            raise TypeError(
                f"{where}: kernel_size must be a tuple of ints, one per spatial dimension "
                f"(e.g. (3,) for 1-d, (3, 3) for 2-d), got {kernel_size!r}"
            )
        n = len(kernel_size)
        self.kernel_size = spatial_tuple(tuple(kernel_size), n, "kernel_size", where, minimum=1)
        self.strides = spatial_tuple(strides, n, "strides", where, minimum=1)
        self.kernel_dilation = spatial_tuple(
            kernel_dilation, n, "kernel_dilation", where, minimum=1
        )
        self.padding = explicit_padding(
            padding, self.kernel_size, self.kernel_dilation, self.strides, where
        )
        self.in_features = check_positive_int(in_features, "in_features", where)
        self.out_features = check_positive_int(out_features, "out_features", where)
        groups = check_positive_int(feature_group_count, "feature_group_count", where)
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"{where}: in_features {in_features} and out_features {out_features} must be "
                f"divisible by feature_group_count {groups}"
            )
        self.feature_group_count = groups
        self.pad_value = check_pad_value(pad_value, where)
        self.input_quantization = resolve_quantization(input_quantization, where)
        self.weight_quantization = resolve_quantization(weight_quantization, where)
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, where
        )
        self.precision = precision
        shape = (*self.kernel_size, in_features // groups, out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape, param_dtype))
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_conv(
            x,
            self.kernel[...],
            None if self.bias is None else self.bias[...],
            strides=self.strides,
            padding=self.padding,
            kernel_dilation=self.kernel_dilation,
            feature_group_count=self.feature_group_count,
            pad_value=self.pad_value,
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
        )
