"""Quantized fully connected layer (bitorch's ``QLinear``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bitorch.layers.qactivation import gradient_cancellation, resolve_quantization
from bitorch.quantizations import Quantization
from bitorch_common.validation import check_threshold

__all__ = ["QLinear"]


class QLinear(nn.Linear):
    """``nn.Linear`` with a quantized input and a quantized weight.

    ``y = q_in(gc(x)) @ q_w(weight).T + bias``, where ``gc`` is gradient cancellation:
    the identity forward, with the gradient zeroed where ``|x| > threshold``
    (``gradient_cancellation_threshold=0`` turns it off; an explicit 0 is kept as 0).
    The parameters are the full-precision ``weight`` (``out_features x in_features``) and
    the optional ``bias``, exactly as ``nn.Linear`` holds them, so ``state_dict`` keys are
    ``weight`` and ``bias``. The bias is not quantized.

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
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.input_quantization = resolve_quantization(input_quantization, "QLinear")
        self.weight_quantization = resolve_quantization(weight_quantization, "QLinear")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QLinear"
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, "
            f"gradient_cancellation_threshold={self.gradient_cancellation_threshold}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quantization(gradient_cancellation(x, self.gradient_cancellation_threshold))
        return F.linear(x, self.weight_quantization(self.weight), self.bias)
