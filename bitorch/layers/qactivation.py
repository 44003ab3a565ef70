"""Quantized activation with bitorch's gradient cancellation (``bitorch.layers.qactivation``).

``QActivation(activation=None, gradient_cancellation_threshold=None)`` as in bitorch
0.4.1: ``None`` means the layer config's value (:mod:`bitorch.layers.config`:
``input_quantization`` ``"sign"``, ``gradient_cancellation_threshold`` ``1.0``). An
explicit ``0`` turns cancellation off (0.4.1 replaces every falsy threshold, ``0``
included, by the config value, so there it cannot be turned off per layer).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bitorch.layers._util import default, resolve_quantization
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


class GradientCancellation(torch.autograd.Function):
    """Identity forward; the gradient is zeroed where ``|x| > threshold``.

    ``GradientCancellation.apply(x, threshold)``: ``y = x``; ``dy/dx = 0`` where
    ``|x| > threshold`` (strict), else ``1``; a NaN input passes the gradient. Every
    threshold is applied as given (``0`` passes the gradient only where ``x == 0``); the
    layers and :func:`gradient_cancellation` skip it for ``0`` ("off"). Saves a boolean
    mask.
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


def activation_arguments(
    activation: str | Quantization | None, threshold: float | None, where: str
) -> tuple[Quantization, float]:
    """The quantizer and threshold of a ``QActivation`` (``None``: the config values),
    checked; errors name ``where`` (the layer that received them)."""
    threshold = check_threshold(default(threshold, "gradient_cancellation_threshold"), where)
    return resolve_quantization(default(activation, "input_quantization"), where), threshold


class QActivation(nn.Module):
    """Quantize the input after gradient cancellation.

    ``y = q(x)``; the gradient reaching ``x`` is ``dq/dx * g`` where ``|x| <= threshold``
    and ``0`` where ``|x| > threshold``. ``activation`` is a registry name or a quantizer
    object; ``None`` (default) takes ``config.input_quantization``, a ``None`` threshold
    ``config.gradient_cancellation_threshold`` (1.0); ``0`` turns cancellation off.
    Attributes as in bitorch 0.4.1: ``activation_function`` (the quantizer, a child
    module) and ``gradient_cancellation_threshold``.

    >>> act = QActivation("sign")
    >>> x = torch.tensor([-2.0, -0.5, 0.5], requires_grad=True)
    >>> act(x).sum().backward(); x.grad
    tensor([0., 1., 1.])
    """

    def __init__(
        self,
        activation: str | Quantization | None = None,
        gradient_cancellation_threshold: float | None = None,
    ) -> None:
        super().__init__()
        quantization, threshold = activation_arguments(
            activation, gradient_cancellation_threshold, "QActivation"
        )
        self.activation_function = quantization
        self.gradient_cancellation_threshold = threshold

    def extra_repr(self) -> str:
        return f"gradient_cancellation_threshold={self.gradient_cancellation_threshold}"

    def forward(self, input_tensor: torch.Tensor) -> torch.Tensor:
        x = gradient_cancellation(input_tensor, self.gradient_cancellation_threshold)
        return self.activation_function(x)
