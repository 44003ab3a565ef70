"""Flax NNX building blocks of the model zoo, laid out like their torch counterparts.

Each piece takes NHWC input (or ``(N, C)``) and keeps torch's semantics and parameter
names, so that a model's NNX state paths are its torch ``state_dict`` keys
(``bitorch_jax.convert.torch_to_nnx`` needs no name map):

* :class:`Sequential` -- an ``nnx.List`` whose items are called in order: its state
  paths are ``0.kernel``, ``1.scale``, ... as torch's ``0.weight``, ``1.weight``;
* :class:`BatchNorm` -- torch's ``BatchNorm1d/2d``: torch's momentum convention, unbiased
  running variance, ``use_running_average`` switched by ``model.eval()``/``model.train()``;
* :class:`Conv2d`, :class:`Linear`, :class:`QConv2d` -- ``nnx.Conv``/``nnx.Linear``/
  :class:`bitorch_jax.layers.nnx.QConv` called with torch's arguments and defaults;
* :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`AdaptiveAvgPool2d` -- torch's pooling
  (``-inf`` padding for max, ``count_include_pad``, ``ceil_mode``);
* :class:`Flatten` -- flattens in torch's NCHW order, so a following ``Linear`` takes the
  torch weight as it is;
* :class:`ReLU`, :class:`Tanh`, :class:`Identity`, :class:`Dropout`,
  :class:`ShapePrintDebug` (a pass-through, keeping 0.4.1's module indices).

>>> import jax.numpy as jnp
>>> rngs = nnx.Rngs(0)
>>> net = Sequential(Conv2d(3, 4, 3, padding=1, rngs=rngs), BatchNorm(4), ReLU(),
...                  AdaptiveAvgPool2d(1), Flatten(), Linear(4, 2, rngs=rngs))
>>> net(jnp.ones((5, 8, 8, 3))).shape
(5, 2)
>>> sorted(".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(net)))[:3]
['0.bias', '0.kernel', '1.bias']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bitorch_common.validation import (
    check_bool,
    check_positive_int,
    check_positive_real,
    explicit_padding,
    is_real,
    spatial_tuple,
)
from bitorch_jax.layers.nnx import PadModule, QConv
from bitorch_jax.quantizations import Quantization

__all__ = [
    "Sequential",
    "BatchNorm",
    "Conv2d",
    "Linear",
    "QConv2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Flatten",
    "ReLU",
    "Tanh",
    "Identity",
    "Dropout",
    "ShapePrintDebug",
    "get_initial_layers",
    "IMAGENET_INPUT_SHAPE",
    "IMAGENET_CLASSES",
]

IMAGENET_INPUT_SHAPE = (1, 3, 224, 224)
IMAGENET_CLASSES = 1000


class Sequential(nnx.List):
    """torch's ``nn.Sequential`` for NNX: the layers, called in order.

    An ``nnx.List``, so the state path of layer ``i``'s ``kernel`` is ``i.kernel``
    (torch: ``i.weight``).

    >>> import jax.numpy as jnp
    >>> Sequential(ReLU(), Tanh())(jnp.array([-1.0, 1.0]))
    Array([0.       , 0.7615942], dtype=float32)
    """

    def __init__(self, *layers: Any) -> None:
        super().__init__(layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self:
            x = layer(x)
        return x


class BatchNorm(nnx.Module):
    """torch's ``BatchNorm1d``/``BatchNorm2d`` for NNX, over the last (channel) axis.

    Input ``(N, C)`` or ``(N, ..., C)`` (NHWC). Parameters ``scale`` (torch ``weight``,
    ones) and ``bias`` (zeros) when ``affine``; ``BatchStat`` ``mean`` (zeros) and ``var``
    (ones), torch's ``running_mean``/``running_var``.

    Conventions (torch's, not ``nnx.BatchNorm``'s):

    * ``momentum`` is the weight of the *batch* statistic:
      ``new = (1 - momentum) * old + momentum * batch`` (torch default 0.1; ``nnx.BatchNorm``
      uses ``momentum_nnx = 1 - momentum``, default 0.99);
    * training normalises with the batch mean and the *biased* batch variance; with
      ``unbiased_running_var=True`` (torch) the running variance is updated with the
      unbiased one, ``var * n / (n - 1)`` for ``n`` values per channel; ``False`` gives
      ``nnx.BatchNorm``'s biased update;
    * ``eps`` (torch's name; default 1e-5) is added to the variance.

    ``use_running_average``: normalise with the running statistics and leave them as they
    are (evaluation); ``model.eval()`` / ``model.train()`` set it. Training needs more than
    one value per channel (``ValueError``, as torch). ``rngs`` is accepted, and unused, so
    that it can be called as ``nnx.BatchNorm``.

    >>> import jax.numpy as jnp
    >>> bn = BatchNorm(1, momentum=0.5)
    >>> bn(jnp.array([[1.0], [3.0]]))[:, 0]
    Array([-0.999995,  0.999995], dtype=float32)
    >>> bn.mean[...], bn.var[...]  # (0 + 2) / 2 and (1 + 2) / 2 (unbiased batch variance 2)
    (Array([1.], dtype=float32), Array([1.5], dtype=float32))
    """

    def __init__(
        self,
        num_features: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        unbiased_running_var: bool = True,
        use_running_average: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        where = "BatchNorm"
        self.num_features = check_positive_int(num_features, "num_features", where)
        self.eps = check_positive_real(eps, "eps", where)
        if not is_real(momentum):
            raise TypeError(f"{where}: momentum must be a real number, got {momentum!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(
                f"{where}: momentum must be in [0, 1] (torch's convention: the weight of the "
                f"batch statistic), got {momentum!r}"
            )
        self.momentum = float(momentum)
        self.affine = check_bool(affine, "affine", where)
        self.unbiased_running_var = check_bool(unbiased_running_var, "unbiased_running_var", where)
        self.use_running_average = check_bool(use_running_average, "use_running_average", where)
        self.dtype = dtype
        shape = (num_features,)
        self.scale = nnx.Param(jnp.ones(shape, param_dtype)) if affine else None
        self.bias = nnx.Param(jnp.zeros(shape, param_dtype)) if affine else None
        self.mean = nnx.BatchStat(jnp.zeros(shape, param_dtype))
        self.var = nnx.BatchStat(jnp.ones(shape, param_dtype))

    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        """Normalise ``x``; ``use_running_average`` (if given) overrides the attribute for
        this call, as in ``nnx.BatchNorm``."""
        if use_running_average is None:
            use_running_average = self.use_running_average
        if x.ndim < 2 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"BatchNorm: expected input (N, ..., {self.num_features}) (channels last), "
                f"got shape {tuple(x.shape)}"
            )
        dtype = self.dtype or jnp.result_type(x, self.mean[...])
        x = x.astype(dtype)
        if use_running_average:
            mean = self.mean[...].astype(dtype)
            var = self.var[...].astype(dtype)
        else:
            axes = tuple(range(x.ndim - 1))
            n = math.prod(x.shape[:-1])
            if n < 2:
                raise ValueError(
                    f"BatchNorm: training needs more than 1 value per channel, got input "
                    f"shape {tuple(x.shape)}"
                )
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)  # biased: normalisation
            batch_var = var * (n / (n - 1)) if self.unbiased_running_var else var
            m = self.momentum
            old_mean, old_var = self.mean[...], self.var[...]
            self.mean[...] = ((1 - m) * old_mean + m * mean).astype(old_mean.dtype)
            self.var[...] = ((1 - m) * old_var + m * batch_var).astype(old_var.dtype)
        y = (x - mean) / jnp.sqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale[...].astype(dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(dtype)
        return y


class Conv2d(nnx.Conv):
    """``nnx.Conv`` called as torch's ``nn.Conv2d(in_channels, out_channels,
    kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)``.

    Input NHWC; ``kernel`` is HWIO ``(kh, kw, in/groups, out)`` (torch ``weight`` OIHW,
    transposed by the converter); ``padding`` is zeros, as torch's.

    >>> import jax.numpy as jnp
    >>> Conv2d(3, 8, 3, stride=2, padding=1, rngs=nnx.Rngs(0))(jnp.ones((1, 8, 8, 3))).shape
    (1, 4, 4, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        where = "Conv2d"
        kernel = spatial_tuple(kernel_size, 2, "kernel_size", where, minimum=1)
        strides = spatial_tuple(stride, 2, "stride", where, minimum=1)
        dilations = spatial_tuple(dilation, 2, "dilation", where, minimum=1)
        pads = explicit_padding(padding, kernel, dilations, strides, where)
        super().__init__(
            check_positive_int(in_channels, "in_channels", where),
            check_positive_int(out_channels, "out_channels", where),
            kernel,
            strides=strides,
            padding="SAME" if pads is None else pads,
            kernel_dilation=dilations,
            feature_group_count=check_positive_int(groups, "groups", where),
            use_bias=check_bool(bias, "bias", where),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )


class Linear(nnx.Linear):
    """``nnx.Linear`` called as torch's ``nn.Linear(in_features, out_features, bias=True)``;
    ``kernel`` is ``(in, out)`` (torch ``weight`` transposed).

    >>> import jax.numpy as jnp
    >>> Linear(3, 2, rngs=nnx.Rngs(0))(jnp.ones((4, 3))).shape
    (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        where = "Linear"
        super().__init__(
            check_positive_int(in_features, "in_features", where),
            check_positive_int(out_features, "out_features", where),
            use_bias=check_bool(bias, "bias", where),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )


class QConv2d(QConv):
    """:class:`bitorch_jax.layers.nnx.QConv` called as bitorch's ``QConv2d(in_channels,
    out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=False,
    input_quantization=..., weight_quantization=..., ...)`` (bitorch's layer-config
    defaults: sign, sign, pad value -1, gradient cancellation threshold 1).

    For bitorch's ``QConv2d_NoAct`` pass ``input_quantization="identity",
    gradient_cancellation_threshold=0``.

    >>> import jax.numpy as jnp
    >>> QConv2d(4, 8, 3, padding=1, rngs=nnx.Rngs(0))(jnp.ones((1, 5, 5, 4))).shape
    (1, 5, 5, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = False,
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        pad_value: float = -1.0,
        gradient_cancellation_threshold: float = 1.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            spatial_tuple(kernel_size, 2, "kernel_size", "QConv2d", minimum=1),
            strides=stride,
            padding=padding,
            kernel_dilation=dilation,
            feature_group_count=groups,
            use_bias=bias,
            pad_value=pad_value,
            input_quantization=input_quantization,
            weight_quantization=weight_quantization,
            gradient_cancellation_threshold=gradient_cancellation_threshold,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )


def _pool_geometry(
    size: int, kernel: int, stride: int, pad: int, ceil_mode: bool
) -> tuple[int, int]:
    """torch's pooled length and the right padding that gives it with a VALID window."""
    span = size + 2 * pad - kernel
    if span < 0:
        raise ValueError(
            f"pooling: kernel {kernel} is larger than the padded input ({size} + 2 * {pad})"
        )
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:  # the last window must start inside
            out -= 1
    else:
        out = span // stride + 1
    right = max((out - 1) * stride + kernel - size - pad, 0)
    return out, right


class _Pool2d(nnx.Module):
    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None,
        padding: int | Sequence[int],
        ceil_mode: bool,
        where: str,
    ) -> None:
        self.kernel_size = spatial_tuple(kernel_size, 2, "kernel_size", where, minimum=1)
        self.stride = (
            self.kernel_size
            if stride is None
            else spatial_tuple(stride, 2, "stride", where, minimum=1)
        )
        self.padding = spatial_tuple(padding, 2, "padding", where, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(
                f"{where}: padding {self.padding} must be at most half of kernel_size "
                f"{self.kernel_size}"
            )
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode", where)

    def _geometry(self, x: jax.Array, where: str) -> list[tuple[int, int]]:
        if x.ndim != 4:
            raise ValueError(f"{where}: expected NHWC input (4-d), got shape {tuple(x.shape)}")
        return [
            _pool_geometry(size, k, s, p, self.ceil_mode)
            for size, k, s, p in zip(
                x.shape[1:3], self.kernel_size, self.stride, self.padding, strict=True
            )
        ]

    def _reduce(self, x: jax.Array, init: Any, op: Any, rights: Sequence[int]) -> jax.Array:
        pads = [(0, 0), *((p, r) for p, r in zip(self.padding, rights, strict=True)), (0, 0)]
        return jax.lax.reduce_window(
            x, init, op, (1, *self.kernel_size, 1), (1, *self.stride, 1), pads
        )


class MaxPool2d(_Pool2d):
    """torch's ``nn.MaxPool2d(kernel_size, stride=None, padding=0, ceil_mode=False)`` on
    NHWC input (padding is ``-inf``: it never wins).

    >>> import jax.numpy as jnp
    >>> MaxPool2d(2)(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        *,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, "MaxPool2d")

    def __call__(self, x: jax.Array) -> jax.Array:
        geometry = self._geometry(x, "MaxPool2d")
        # a Python scalar init lets JAX recognise the max monoid (reduce_window_max, which
        # has a VJP); a dtype-typed array init takes the generic reduce_window, which has none
        return self._reduce(x, -float("inf"), jax.lax.max, [r for _, r in geometry])


class AvgPool2d(_Pool2d):
    """torch's ``nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True)`` on NHWC input.

    The divisor of a window is its size clipped to the padded input (the zero padding
    counts when ``count_include_pad``; the extra room of ``ceil_mode`` never does), as
    in torch.

    >>> import jax.numpy as jnp
    >>> AvgPool2d(2)(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    Array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, "AvgPool2d")
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad", "AvgPool2d")

    def _divisor(self, size: int, out: int, axis: int) -> np.ndarray:
        k, s, p = self.kernel_size[axis], self.stride[axis], self.padding[axis]
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)
        if not self.count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        return end - start

    def __call__(self, x: jax.Array) -> jax.Array:
        geometry = self._geometry(x, "AvgPool2d")
        # Python 0.0: the sum monoid (reduce_window_sum, differentiable), see MaxPool2d
        summed = self._reduce(x, 0.0, jax.lax.add, [r for _, r in geometry])
        (h_out, _), (w_out, _) = geometry
        divisor = np.outer(self._divisor(x.shape[1], h_out, 0), self._divisor(x.shape[2], w_out, 1))
        return summed / jnp.asarray(divisor[None, :, :, None], x.dtype)


class AdaptiveAvgPool2d(nnx.Module):
    """torch's ``nn.AdaptiveAvgPool2d(output_size)`` on NHWC input: output cell ``i`` of
    an axis of length ``L`` averages ``[floor(i * L / out), ceil((i + 1) * L / out))``.

    >>> import jax.numpy as jnp
    >>> AdaptiveAvgPool2d(1)(jnp.arange(8.0).reshape(1, 2, 2, 2))[0, 0, 0]
    Array([3., 4.], dtype=float32)
    """

    def __init__(self, output_size: int | Sequence[int]) -> None:
        self.output_size = spatial_tuple(
            output_size, 2, "output_size", "AdaptiveAvgPool2d", minimum=1
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(
                f"AdaptiveAvgPool2d: expected NHWC input (4-d), got shape {tuple(x.shape)}"
            )
        if self.output_size == (1, 1):
            return jnp.mean(x, axis=(1, 2), keepdims=True)
        (h, w), (oh, ow) = x.shape[1:3], self.output_size

        def bounds(length: int, out: int, i: int) -> tuple[int, int]:
            return (i * length) // out, -(-((i + 1) * length) // out)

        rows = []
        for i in range(oh):
            h0, h1 = bounds(h, oh, i)
            cells = []
            for j in range(ow):
                w0, w1 = bounds(w, ow, j)
                cells.append(jnp.mean(x[:, h0:h1, w0:w1, :], axis=(1, 2)))
            rows.append(jnp.stack(cells, axis=1))
        return jnp.stack(rows, axis=1)


class Flatten(nnx.Module):
    """torch's ``nn.Flatten()`` (``start_dim=1``) for channels-last input: ``(N, H, W,
    C)`` is flattened in torch's ``C, H, W`` order, so a following :class:`Linear` takes
    the converted torch weight unchanged.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)  # NHWC
    >>> Flatten()(x)  # C, H, W order
    Array([[0., 2., 4., 6., 1., 3., 5., 7.]], dtype=float32)
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim > 2:
            x = jnp.moveaxis(x, -1, 1)
        return x.reshape(x.shape[0], -1)


class ReLU(nnx.Module):
    """``max(x, 0)`` (torch's ``nn.ReLU``)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x)


class Tanh(nnx.Module):
    """``tanh(x)`` (torch's ``nn.Tanh``)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(x)


class Identity(nnx.Module):
    """The input, unchanged (torch's ``nn.Identity``; also stands for an empty
    ``nn.Module()`` placeholder)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


class ShapePrintDebug(Identity):
    """bitorch's ``ShapePrintDebug``: a pass-through without parameters, kept so that a
    model's layer indices equal bitorch 0.4.1's (it prints nothing here)."""


class Dropout(nnx.Dropout):
    """``nnx.Dropout`` called as torch's ``nn.Dropout(p=0.5)``; ``model.eval()`` turns it
    off (``deterministic``).

    >>> import jax.numpy as jnp
    >>> Dropout(0.5, rngs=nnx.Rngs(0), deterministic=True)(jnp.ones(3))
    Array([1., 1., 1.], dtype=float32)
    """

    def __init__(
        self, p: float = 0.5, *, deterministic: bool = False, rngs: nnx.Rngs | None = None
    ) -> None:
        if not is_real(p) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        super().__init__(rate=float(p), deterministic=deterministic, rngs=rngs)


def get_initial_layers(
    variant: Any,
    input_channels: int,
    output_channels: int,
    *,
    rngs: nnx.Rngs,
    param_dtype: Any = jnp.float32,
) -> list[nnx.Module]:
    """The NNX twin of :func:`bitorch.models.common_layers.get_initial_layers`: the same
    layers in the same order for ``variant`` (``(224, 224)``/``"imagenet"``,
    ``"quicknet_stem"``, ``"grouped_stem"`` or anything else: one 3x3 convolution).

    BatchNorms use torch's ``momentum=0.9`` as in bitorch 0.4.1.

    >>> [type(m).__name__ for m in get_initial_layers("imagenet", 3, 8, rngs=nnx.Rngs(0))]
    ['Conv2d', 'BatchNorm', 'ReLU', 'MaxPool2d']
    """

    def conv(cin: int, cout: int, k: int, **kwargs: Any) -> Conv2d:
        return Conv2d(cin, cout, k, bias=False, param_dtype=param_dtype, rngs=rngs, **kwargs)

    def bn(channels: int) -> BatchNorm:
        return BatchNorm(channels, momentum=0.9, param_dtype=param_dtype)

    layers: list[nnx.Module] = []
    imagenet = variant == (224, 224) or variant == "imagenet"
    if imagenet:
        layers.append(conv(input_channels, output_channels, 7, stride=2, padding=3))
    elif variant == "quicknet_stem":
        if output_channels % 4 != 0:
            raise ValueError(
                f"quicknet_stem: output_channels must be divisible by 4, got {output_channels}"
            )
        stem = output_channels // 4
        layers += [
            PadModule(padding_right=1, padding_bottom=1),
            conv(input_channels, stem, 3, stride=2),
            bn(stem),
            ReLU(),
            PadModule(padding_right=1, padding_bottom=1),
            conv(stem, stem, 3, stride=2, groups=stem),
            bn(stem),
            conv(stem, output_channels, 1),
            bn(output_channels),
        ]
    elif variant == "grouped_stem":
        width = output_channels // 2
        layers += [
            conv(input_channels, width, 3, stride=2, padding=1),
            bn(width),
            ReLU(),
            conv(width, width, 3, padding=1, groups=4),
            bn(width),
            ReLU(),
            conv(width, output_channels, 3, padding=1, groups=8),
        ]
    else:
        layers.append(conv(input_channels, output_channels, 3, padding=1))
    if imagenet or variant == "grouped_stem":
        layers += [bn(output_channels), ReLU(), MaxPool2d(3, 2, 1)]
    return layers
