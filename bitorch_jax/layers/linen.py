"""Flax linen layers of bitorch_jax. The math lives in the pure functions of
:mod:`bitorch_jax.layers`; these modules only hold hyperparameters and parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bitorch_common.validation import (
    check_kernel_size,
    check_pad_value,
    check_threshold,
    explicit_padding,
    spatial_tuple,
)
from bitorch_jax.layers.qactivation import q_activation, resolve_quantization
from bitorch_jax.layers.qconv import PaddingLike, q_conv
from bitorch_jax.layers.qlinear import q_linear
from bitorch_jax.quantizations import Quantization

__all__ = ["QActivation", "QConv", "QDense"]


class QActivation(nn.Module):
    """Quantize the input after gradient cancellation (linen).

    ``activation`` is a registry name or a quantizer object; the gradient is zeroed where
    ``|x| > gradient_cancellation_threshold`` (``0`` turns cancellation off).

    >>> import jax.numpy as jnp
    >>> act = QActivation("sign", gradient_cancellation_threshold=1.0)
    >>> act.apply({}, jnp.array([-2.0, 0.5]))
    Array([-1.,  1.], dtype=float32)
    """

    activation: str | Quantization = "sign"
    gradient_cancellation_threshold: float = 0.0

    def __post_init__(self) -> None:
        check_threshold(self.gradient_cancellation_threshold, "QActivation")
        resolve_quantization(self.activation, "QActivation")
        super().__post_init__()

    def __call__(self, x: jax.Array) -> jax.Array:
        quantization = resolve_quantization(self.activation, "QActivation")
        return q_activation(x, quantization, self.gradient_cancellation_threshold)


def _kw(default: Any) -> Any:
    """A keyword-only dataclass field (hyperparameters after the Flax-positional ones)."""
    return dataclasses.field(default=default, kw_only=True)


class QDense(nn.Module):
    """bitorch's ``QLinear`` for linen: ``q_in(gc(x)) @ q_w(kernel) + bias``.

    The math is :func:`bitorch_jax.layers.q_linear`. Parameters: ``kernel``
    ``(in_features, features)`` and, with ``use_bias``, ``bias`` ``(features,)``.
    Everything after ``features`` is keyword-only. ``gradient_cancellation_threshold=0``
    turns gradient cancellation off.

    >>> layer = QDense(2, use_bias=False)
    >>> variables = {"params": {"kernel": jnp.array([[0.2, -0.3], [-0.4, 0.5], [0.1, -0.6]])}}
    >>> layer.apply(variables, jnp.array([[0.7, -1.5, 0.0]]))
    Array([[ 3., -3.]], dtype=float32)
    """

    features: int
    use_bias: bool = _kw(True)
    input_quantization: str | Quantization = _kw("sign")
    weight_quantization: str | Quantization = _kw("sign")
    gradient_cancellation_threshold: float = _kw(1.0)
    param_dtype: Any = _kw(jnp.float32)
    precision: Any = _kw(None)
    kernel_init: Callable[..., jax.Array] = _kw(nn.initializers.lecun_normal())
    bias_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())

    def __post_init__(self) -> None:
        check_threshold(self.gradient_cancellation_threshold, "QDense")
        resolve_quantization(self.input_quantization, "QDense")
        resolve_quantization(self.weight_quantization, "QDense")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel", self.kernel_init, (jnp.shape(x)[-1], self.features), self.param_dtype
        )
        bias = None
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return q_linear(
            x,
            kernel,
            bias,
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
        )


class QConv(nn.Module):
    """bitorch's quantized convolution for linen, N-d by ``len(kernel_size)``.

    The math is :func:`bitorch_jax.layers.q_conv`: the input (``N, *spatial, C`` or
    unbatched) is quantized after gradient cancellation, padded with ``pad_value``, and
    convolved (VALID) with the quantized kernel ``(*kernel_size, C_in / groups, features)``.
    ``padding`` is an int, ints, ``(before, after)`` pairs, ``"same"`` or ``"valid"``, and
    defaults to ``0`` as in bitorch (not Flax's ``"SAME"``); ``use_bias`` defaults to
    ``False`` (see :mod:`bitorch.layers.qconv`). Everything after ``kernel_size`` is
    keyword-only.

    >>> layer = QConv(1, (2,), padding=1)
    >>> variables = {"params": {"kernel": jnp.array([[[0.5]], [[-0.5]]])}}
    >>> layer.apply(variables, jnp.array([[[0.3], [-0.2]]]))[0, :, 0]
    Array([-2.,  2.,  0.], dtype=float32)
    """

    features: int
    kernel_size: Sequence[int]
    strides: int | Sequence[int] = _kw(1)
    padding: PaddingLike = _kw(0)
    kernel_dilation: int | Sequence[int] = _kw(1)
    feature_group_count: int = _kw(1)
    use_bias: bool = _kw(False)
    pad_value: float = _kw(-1.0)
    input_quantization: str | Quantization = _kw("sign")
    weight_quantization: str | Quantization = _kw("sign")
    gradient_cancellation_threshold: float = _kw(1.0)
    param_dtype: Any = _kw(jnp.float32)
    precision: Any = _kw(None)
    kernel_init: Callable[..., jax.Array] = _kw(nn.initializers.lecun_normal())
    bias_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())

    def __post_init__(self) -> None:
        kernel_size = check_kernel_size(self.kernel_size, "QConv")
        n = len(kernel_size)
        strides = spatial_tuple(self.strides, n, "strides", "QConv", minimum=1)
        dilation = spatial_tuple(self.kernel_dilation, n, "kernel_dilation", "QConv", minimum=1)
        explicit_padding(self.padding, kernel_size, dilation, strides, "QConv")
        check_pad_value(self.pad_value, "QConv")
        check_threshold(self.gradient_cancellation_threshold, "QConv")
        resolve_quantization(self.input_quantization, "QConv")
        resolve_quantization(self.weight_quantization, "QConv")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = self.feature_group_count
        in_features = jnp.shape(x)[-1]
        if not isinstance(groups, int) or groups < 1 or in_features % groups:
            raise ValueError(
                f"QConv: input channels {in_features} must be divisible by "
                f"feature_group_count {groups!r}"
            )
        shape = (*self.kernel_size, in_features // groups, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = None
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return q_conv(
            x,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            kernel_dilation=self.kernel_dilation,
            feature_group_count=groups,
            pad_value=self.pad_value,
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
        )
