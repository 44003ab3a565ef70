"""Quantized convolutions: the implementation behind ``bitorch.layers.qconv1d/2d/3d``.

Three classes per dimension, as in bitorch 0.4.1:

* ``QConvNd_NoAct`` -- ``nn.ConvNd`` whose weight is quantized and whose input is padded
  with ``pad_value`` (the input is not quantized);
* ``QConvNdBase`` -- the same after a :class:`~bitorch.layers.QActivation` (the input is
  quantized after gradient cancellation, then padded, then convolved);
* ``QConvNd`` -- the layer to use (0.4.1's default implementation of ``QConvNdBase``).

``y = conv(pad(q_in(gc(x)), pad_value), q_w(weight)) (+ bias)``, with no padding of the
convolution's own. ``stride``, ``padding`` (an int, ints, ``(before, after)`` pairs,
``"same"`` or ``"valid"``), ``dilation`` and ``groups`` mean what they mean in
``nn.ConvNd``. ``None`` for a quantization, the threshold or ``pad_value`` means the layer
config's value (:mod:`bitorch.layers.config`: sign, sign, 1.0, ``padding_value`` -1.0,
itself a binary value); an explicit ``0`` is kept. The weight is initialised with
``xavier_normal_``, as in 0.4.1.

Attributes as in bitorch 0.4.1: ``_weight_quantize`` (the weight quantizer, a child
module), ``_pad_value`` and, for the ``Base``/plain classes, ``activation`` (whose
``activation_function`` is the input quantizer). ``weight_quantization``, ``pad_value``,
``input_quantization`` and ``gradient_cancellation_threshold`` read and set them.

Bias: ``bias`` defaults to ``False``, as in bitorch 0.4.1, whose convolutions refuse
``bias=True`` (an assertion) and whose ``state_dict`` holds only ``weight``; a 0.4.1
checkpoint therefore loads as it is. A binary convolution is normally followed by
BatchNorm, which has its own shift. ``bias=True`` is an extension here: the
(full-precision) bias is added after the convolution and initialised as ``nn.ConvNd``
does. ``padding_mode`` may only be ``"zeros"`` (the padding is always the constant
``pad_value``; 0.4.1 accepts the other modes and ignores them).

``output_scale=True`` (an extension, keyword-only, the last argument) adds XNOR-Net's
learnable per-output-channel scale: a parameter ``scale`` ``(out_channels,)`` initialised
to ones, multiplied onto the convolution before the bias (``state_dict`` key ``scale``).
``padding="same"`` needs stride 1 here, because ``nn.ConvNd`` refuses it with a larger
stride; bitorch_jax's ``QConv`` also accepts it with any stride (``jax.lax``'s ``"SAME"``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn import init

from bitorch.layers._util import InputActivation, PropertySetters, default, resolve_quantization
from bitorch.layers.qactivation import QActivation, activation_arguments
from bitorch.quantizations import Quantization
from bitorch_common.validation import check_bool, check_pad_value, explicit_padding

__all__ = [
    "QConv1d",
    "QConv2d",
    "QConv3d",
    "QConv1dBase",
    "QConv2dBase",
    "QConv3dBase",
    "QConv1d_NoAct",
    "QConv2d_NoAct",
    "QConv3d_NoAct",
    "check_pad_value",
    "explicit_padding",
]

IntOrTuple = int | tuple[int, ...]


class _QConvNoAct(PropertySetters):
    """The shared part of the ``QConvNd_NoAct`` classes (before ``nn.ConvNd`` in the MRO)."""

    _conv = staticmethod(F.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: str | IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        weight_quantization: str | Quantization | None = None,
        pad_value: float | None = None,
        output_scale: bool = False,
    ) -> None:
        where = type(self).__name__
        output_scale = check_bool(output_scale, "output_scale", where)
        if padding_mode != "zeros":
            raise TypeError(
                f"{where}: padding_mode={padding_mode!r} is not supported: the input is always "
                f"padded with the constant pad_value (only padding_mode='zeros', torch's "
                f"default, is accepted)"
            )
        weight_q = resolve_quantization(default(weight_quantization, "weight_quantization"), where)
        pad_value = check_pad_value(default(pad_value, "padding_value"), where)
        # The next class in the MRO is nn.Conv1d/2d/3d: its arguments, parameters and
        # state_dict keys are kept as they are.
        super().__init__(  # type: ignore[call-arg]
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            device=device, dtype=dtype,
        )  # fmt: skip
        pads = explicit_padding(self.padding, self.kernel_size, self.dilation, self.stride, where)
        # F.pad lists the last dimension first.
        self._pad = tuple(p for pair in reversed(pads) for p in pair)
        self._weight_quantize = weight_q
        self._pad_value = pad_value
        self.scale = (
            nn.Parameter(torch.ones(out_channels, device=device, dtype=self.weight.dtype))
            if output_scale
            else None
        )

    def reset_parameters(self) -> None:
        """``xavier_normal_`` for the weight (bitorch 0.4.1); the optional bias as in
        ``nn.ConvNd`` (uniform in ``+-1/sqrt(fan_in)``); the output ``scale`` to ones."""
        init.xavier_normal_(self.weight)
        if getattr(self, "scale", None) is not None:
            init.ones_(self.scale)
        if getattr(self, "bias", None) is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    @property
    def weight_quantization(self) -> Quantization:
        """The weight quantizer (``_weight_quantize``)."""
        return self._weight_quantize

    @weight_quantization.setter
    def weight_quantization(self, quantization: str | Quantization) -> None:
        self._weight_quantize = resolve_quantization(quantization, type(self).__name__)

    @property
    def pad_value(self) -> float:
        """The constant the input is padded with (``_pad_value``)."""
        return self._pad_value

    @pad_value.setter
    def pad_value(self, value: float) -> None:
        self._pad_value = check_pad_value(value, type(self).__name__)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad_value={self._pad_value}"

    def _apply_padding(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded with ``pad_value`` as ``padding`` says (0.4.1's method)."""
        if not any(self._pad):
            return x
        return F.pad(x, self._pad, mode="constant", value=self.pad_value)

    def _pad_and_convolve(self, x: torch.Tensor) -> torch.Tensor:
        """``conv(pad(x, pad_value), q_w(weight)) (+ bias)``: everything after the input's
        quantization."""
        if any(self._pad):
            x = F.pad(x, self._pad, mode="constant", value=self.pad_value)
        weight = self.weight_quantization(self.weight)
        y = self._conv(x, weight, None, self.stride, 0, self.dilation, self.groups)
        channel = (-1, *([1] * len(self.kernel_size)))
        if self.scale is not None:
            y = y * self.scale.view(channel)
        if self.bias is not None:
            y = y + self.bias.view(channel)
        return y

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (0.4.1's name)
        return self._pad_and_convolve(input)


class _QConvBase(InputActivation, _QConvNoAct):
    """The shared part of the ``QConvNdBase`` classes: a ``QActivation`` first."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: str | IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        input_quantization: str | Quantization | None = None,
        weight_quantization: str | Quantization | None = None,
        gradient_cancellation_threshold: float | None = None,
        pad_value: float | None = None,
        output_scale: bool = False,
    ) -> None:
        where = type(self).__name__
        activation = activation_arguments(
            input_quantization, gradient_cancellation_threshold, where
        )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode=padding_mode, device=device, dtype=dtype,
            weight_quantization=weight_quantization, pad_value=pad_value,
            output_scale=output_scale,
        )  # fmt: skip
        self.activation = QActivation(*activation)

    def forward(self, input_tensor: torch.Tensor) -> torch.Tensor:
        return self._pad_and_convolve(self.activation(input_tensor))


def _doc(n: int, kind: str) -> str:
    what = {
        "NoAct": "weight quantized, input padded with ``pad_value`` (not quantized)",
        "Base": "input quantized (after gradient cancellation), padded, convolved with the "
        "quantized weight",
        "": "the layer to use: ``QConv{n}dBase`` (bitorch 0.4.1's default implementation)",
    }[kind]
    return (
        f"{n}-d quantized convolution (``nn.Conv{n}d``): {what}. See :mod:`bitorch.layers.qconv`."
    )


class QConv1d_NoAct(_QConvNoAct, nn.Conv1d):  # noqa: N801 (0.4.1's name)
    __doc__ = _doc(1, "NoAct")
    _conv = staticmethod(F.conv1d)


class QConv2d_NoAct(_QConvNoAct, nn.Conv2d):  # noqa: N801
    __doc__ = _doc(2, "NoAct")
    _conv = staticmethod(F.conv2d)


class QConv3d_NoAct(_QConvNoAct, nn.Conv3d):  # noqa: N801
    __doc__ = _doc(3, "NoAct")
    _conv = staticmethod(F.conv3d)


class QConv1dBase(_QConvBase, QConv1d_NoAct):
    __doc__ = _doc(1, "Base")


class QConv2dBase(_QConvBase, QConv2d_NoAct):
    __doc__ = _doc(2, "Base")


class QConv3dBase(_QConvBase, QConv3d_NoAct):
    __doc__ = _doc(3, "Base")


class QConv1d(QConv1dBase):
    """1-d quantized convolution: ``nn.Conv1d`` with a quantized input and weight.

    >>> conv = QConv1d(1, 1, 2, padding=1)
    >>> with torch.no_grad():
    ...     _ = conv.weight.copy_(torch.tensor([[[0.5, -0.5]]]))
    >>> conv(torch.tensor([[[0.3, -0.2]]]))
    tensor([[[-2.,  2.,  0.]]], grad_fn=<ConvolutionBackward0>)
    """


class QConv2d(QConv2dBase):
    """2-d quantized convolution: ``nn.Conv2d`` with a quantized input and weight.

    >>> conv = QConv2d(1, 1, 1, padding=1)
    >>> with torch.no_grad():
    ...     _ = conv.weight.fill_(0.25)
    >>> conv(torch.tensor([[[[0.4]]]]))[0, 0]
    tensor([[-1., -1., -1.],
            [-1.,  1., -1.],
            [-1., -1., -1.]], grad_fn=<SelectBackward0>)
    """


class QConv3d(QConv3dBase):
    """3-d quantized convolution: ``nn.Conv3d`` with a quantized input and weight.

    >>> conv = QConv3d(2, 4, 3, padding="same", groups=2)
    >>> conv(torch.randn(1, 2, 5, 5, 5)).shape
    torch.Size([1, 4, 5, 5, 5])
    """
