"""Quantized convolutions (bitorch's ``QConv1d``, ``QConv2d``, ``QConv3d``).

The input is quantized (after gradient cancellation), then padded with ``pad_value``
(default ``-1.0``, so the padding is itself a binary value), then convolved with the
quantized weight, with no padding of its own. ``stride``, ``dilation`` and ``groups``
mean what they mean in ``nn.ConvNd``.

Bias: ``bias`` defaults to ``False``, as in bitorch 0.4.1, whose convolutions refuse
``bias=True`` (an assertion) and whose ``state_dict`` holds only ``weight``; a 0.4.1
checkpoint therefore loads as it is. A binary convolution is normally followed by
BatchNorm, which has its own shift. ``bias=True`` is an extension here: the
(full-precision) bias is added after the convolution, as a user of ``nn.ConvNd`` expects.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bitorch.layers.qactivation import gradient_cancellation, resolve_quantization
from bitorch.quantizations import Quantization
from bitorch_common.validation import check_pad_value, check_threshold, explicit_padding

__all__ = ["QConv1d", "QConv2d", "QConv3d", "check_pad_value", "explicit_padding"]


class _QConvNd:
    """The shared part of :class:`QConv1d`, :class:`QConv2d` and :class:`QConv3d`."""

    _conv = staticmethod(F.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: str | int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        pad_value: float = -1.0,
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        # The next class in the MRO is nn.Conv1d/2d/3d: its arguments, parameters and
        # state_dict keys are kept as they are.
        super().__init__(  # type: ignore[call-arg]
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            device=device, dtype=dtype,
        )  # fmt: skip
        where = type(self).__name__
        self.pad_value = check_pad_value(pad_value, where)
        self.input_quantization = resolve_quantization(input_quantization, where)
        self.weight_quantization = resolve_quantization(weight_quantization, where)
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, where
        )
        pads = explicit_padding(self.padding, self.kernel_size, self.dilation, self.stride, where)
        # F.pad lists the last dimension first.
        self._pad = tuple(p for pair in reversed(pads) for p in pair)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, pad_value={self.pad_value}, "
            f"gradient_cancellation_threshold={self.gradient_cancellation_threshold}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quantization(gradient_cancellation(x, self.gradient_cancellation_threshold))
        if any(self._pad):
            x = F.pad(x, self._pad, mode="constant", value=self.pad_value)
        weight = self.weight_quantization(self.weight)
        y = self._conv(x, weight, None, self.stride, 0, self.dilation, self.groups)
        if self.bias is not None:
            y = y + self.bias.view(-1, *([1] * len(self.kernel_size)))
        return y


def _conv_doc(n: int) -> str:
    return f"""{n}-d quantized convolution: ``nn.Conv{n}d`` with a quantized input and weight.

    ``y = conv(pad(q_in(gc(x)), pad_value), q_w(weight)) (+ bias)``; ``gc`` is gradient
    cancellation (gradient zeroed where ``|x| > gradient_cancellation_threshold``; ``0``
    turns it off). ``padding`` is an int, a tuple, ``"same"`` or ``"valid"``; the padding
    is always the constant ``pad_value`` (there is no ``padding_mode``). ``bias`` defaults
    to ``False``; see :mod:`bitorch.layers.qconv`. Parameters and ``state_dict`` keys are
    those of ``nn.Conv{n}d`` (``weight``, ``bias``).
    """


class QConv1d(_QConvNd, nn.Conv1d):
    __doc__ = (
        _conv_doc(1)
        + """
    >>> conv = QConv1d(1, 1, 2, padding=1)
    >>> with torch.no_grad():
    ...     _ = conv.weight.copy_(torch.tensor([[[0.5, -0.5]]]))
    >>> conv(torch.tensor([[[0.3, -0.2]]]))
    tensor([[[-2.,  2.,  0.]]], grad_fn=<ConvolutionBackward0>)
    """
    )

    _conv = staticmethod(F.conv1d)


class QConv2d(_QConvNd, nn.Conv2d):
    __doc__ = (
        _conv_doc(2)
        + """
    >>> conv = QConv2d(1, 1, 1, padding=1)
    >>> with torch.no_grad():
    ...     _ = conv.weight.fill_(0.25)
    >>> conv(torch.tensor([[[[0.4]]]]))[0, 0]
    tensor([[-1., -1., -1.],
            [-1.,  1., -1.],
            [-1., -1., -1.]], grad_fn=<SelectBackward0>)
    """
    )

    _conv = staticmethod(F.conv2d)


class QConv3d(_QConvNd, nn.Conv3d):
    __doc__ = (
        _conv_doc(3)
        + """
    >>> conv = QConv3d(2, 4, 3, padding="same", groups=2)
    >>> conv(torch.randn(1, 2, 5, 5, 5)).shape
    torch.Size([1, 4, 5, 5, 5])
    """
    )

    _conv = staticmethod(F.conv3d)
