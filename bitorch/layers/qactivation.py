"""Quantized activation with bitorch's gradient cancellation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bitorch.quantizations import _REGISTRY as quantization_registry
from bitorch.quantizations import Quantization
from bitorch.quantizations.base import check_float_tensor
from bitorch_common.validation import check_threshold

__all__ = [
    "GradientCancellation",
    "gradient_cancellation",
    "QActivation",
    "check_threshold",
    "resolve_quantization",
]


def resolve_quantization(quantization: str | Quantization, where: str) -> Quantization:
    """A quantizer given by registry name (built with its defaults) or as an instance."""
    return quantization_registry.resolve(quantization, where)


class GradientCancellation(torch.autograd.Function):
    """Identity forward; the gradient is zeroed where ``|x| > threshold``.

    ``y = x``; ``dy/dx = 0`` where ``|x| > threshold`` (strict), else ``1``; a NaN input
    passes the gradient. ``threshold == 0`` turns cancellation off (the gradient always
    passes). Saves a boolean mask.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, threshold = inputs
        ctx.save_for_backward(x.abs() > threshold)

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (cancel,) = ctx.saved_tensors
        return torch.where(cancel, 0.0, output_gradient), None


def gradient_cancellation(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Functional form of :class:`GradientCancellation` (``threshold == 0``: ``x`` itself)."""
    threshold = check_threshold(threshold, "gradient_cancellation")
    if threshold == 0:
        return x
    return GradientCancellation.apply(check_float_tensor(x, "gradient_cancellation"), threshold)


class QActivation(nn.Module):
    """Quantize the input after gradient cancellation.

    ``y = q(x)``; the gradient reaching ``x`` is ``dq/dx * g`` where ``|x| <= threshold``
    and ``0`` where ``|x| > threshold``. ``gradient_cancellation_threshold=0`` turns
    cancellation off.

    >>> act = QActivation("sign", gradient_cancellation_threshold=1.0)
    >>> x = torch.tensor([-2.0, -0.5, 0.5], requires_grad=True)
    >>> act(x).sum().backward(); x.grad
    tensor([0., 1., 1.])
    """

    def __init__(
        self,
        activation: str | Quantization = "sign",
        *,
        gradient_cancellation_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation_function = resolve_quantization(activation, "QActivation")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QActivation"
        )

    def extra_repr(self) -> str:
        return f"gradient_cancellation_threshold={self.gradient_cancellation_threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = gradient_cancellation(x, self.gradient_cancellation_threshold)
        return self.activation_function(x)
