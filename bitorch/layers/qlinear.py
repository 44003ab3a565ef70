"""Quantized fully connected layer (``bitorch.layers.qlinear``: ``QLinear``, ``QLinearBase``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bitorch.layers._util import InputActivation, default, resolve_quantization
from bitorch.layers.qactivation import QActivation, activation_arguments
from bitorch.quantizations import Quantization
from bitorch_common.validation import check_bool

__all__ = ["QLinear", "QLinearBase"]


class QLinearBase(InputActivation, nn.Linear):
    """``nn.Linear`` with a quantized input and a quantized weight.

    ``y = q_in(gc(x)) @ q_w(weight).T + bias``, where ``gc`` is gradient cancellation:
    the identity forward, with the gradient zeroed where ``|x| > threshold``
    (``gradient_cancellation_threshold=0`` turns it off; an explicit 0 is kept as 0).
    Positional arguments are ``nn.Linear``'s (``in_features, out_features, bias, device,
    dtype``); the quantization arguments are keyword-only and ``None`` means the layer
    config's value (:mod:`bitorch.layers.config`: sign, sign, 1.0).

    Attributes as in bitorch 0.4.1: ``weight_quantization`` (a child module),
    ``activation`` (a :class:`~bitorch.layers.QActivation` child holding the input
    quantizer as ``activation_function``) and the properties ``input_quantization`` and
    ``gradient_cancellation_threshold`` (settable here). The parameters are
    ``nn.Linear``'s, initialised as there, so ``state_dict`` keys are ``weight`` and
    ``bias``; the bias is not quantized.

    ``output_scale=True`` (an extension, keyword-only, after 0.4.1's arguments) adds
    XNOR-Net's learnable per-output scale: a parameter ``scale`` ``(out_features,)``
    initialised to ones, multiplied onto the product before the bias
    (``y = (q_in(gc(x)) @ q_w(weight).T) * scale + bias``; ``state_dict`` key ``scale``).

    >>> layer = QLinear(3, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[0.2, -0.4, 0.1], [-0.3, 0.5, -0.6]]))
    >>> layer(torch.tensor([[0.7, -1.5, 0.0]]))
    tensor([[ 3., -3.]], grad_fn=<MmBackward0>)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        input_quantization: str | Quantization | None = None,
        gradient_cancellation_threshold: float | None = None,
        weight_quantization: str | Quantization | None = None,
        output_scale: bool = False,
    ) -> None:
        where = type(self).__name__
        # checked before anything is built, so a bad argument names this layer
        activation = activation_arguments(
            input_quantization, gradient_cancellation_threshold, where
        )
        weight_q = resolve_quantization(default(weight_quantization, "weight_quantization"), where)
        output_scale = check_bool(output_scale, "output_scale", where)
        super().__init__(in_features, out_features, bias, device, dtype)
        self.weight_quantization = weight_q
        self.activation = QActivation(*activation)
        self.scale = (
            nn.Parameter(torch.ones(out_features, device=device, dtype=self.weight.dtype))
            if output_scale
            else None
        )

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation; the output ``scale`` (if any) back to ones."""
        super().reset_parameters()
        if getattr(self, "scale", None) is not None:
            nn.init.ones_(self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(x)
        weight = self.weight_quantization(self.weight)
        if self.scale is None:
            return F.linear(x, weight, self.bias)
        y = F.linear(x, weight) * self.scale
        return y if self.bias is None else y + self.bias


class QLinear(QLinearBase):
    """The quantized linear layer: :class:`QLinearBase` (bitorch 0.4.1's default
    implementation of ``QLinear``; subclass ``QLinearBase`` for a variant)."""
