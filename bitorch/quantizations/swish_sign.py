"""SwishSign (BNN+): sign forward, the derivative of a scaled swish as gradient."""

from __future__ import annotations

from typing import Any

import torch

from bitorch.quantizations.base import Quantization, check_beta, check_float_tensor, compute_dtype
from bitorch.quantizations.config import config
from bitorch.quantizations.sign import sign_values

__all__ = ["SwishSignFunction", "SwishSign", "swish_sign"]


class SwishSignFunction(torch.autograd.Function):
    """Sign with the SwishSign gradient of BNN+.

    ``q(x) = +1 if x >= 0 else -1`` (``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = beta * (2 - beta*x * tanh(beta*x / 2)) / (1 + cosh(beta*x))``, which is
    ``beta`` at ``0``; at ``±inf`` (and wherever ``beta*x`` overflows) it is the limit
    ``0``, at NaN it is NaN. Saves the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor, beta: float) -> torch.Tensor:  # type: ignore[override]
        return sign_values(input_tensor)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.beta = inputs[1]

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        beta = ctx.beta
        xf = x.to(compute_dtype(x.dtype))
        bx = beta * xf
        factor = beta * (2 - bx * torch.tanh(bx / 2)) / (1 + torch.cosh(bx))
        # Where beta*x overflows (x = ±inf or merely huge) the factor is inf/inf = NaN;
        # its limit there is 0.
        grad = torch.where(bx.isinf(), 0.0, output_gradient.to(xf.dtype) * factor)
        return grad.to(x.dtype), None


def swish_sign(x: torch.Tensor, beta: float | None = None) -> torch.Tensor:
    """Functional form of :class:`SwishSign`; ``beta=None`` reads ``config.beta``."""
    check_float_tensor(x, "swishsign")
    beta = check_beta(config.beta if beta is None else beta, "swishsign")
    return SwishSignFunction.apply(x, beta)


class SwishSign(Quantization):
    """SwishSign quantization (registry key ``"swishsign"``, 1 bit).

    ``beta`` must be finite and ``> 0``; ``None`` takes ``config.beta`` (5.0).

    >>> x = torch.tensor([0.0, 0.3], requires_grad=True)
    >>> SwishSign(beta=5.0)(x).sum().backward(); x.grad
    tensor([5.0000, 1.5620])
    """

    name = "swishsign"
    bit_width = 1

    def __init__(self, *, beta: float | None = None) -> None:
        super().__init__()
        self.beta = check_beta(config.beta if beta is None else beta, "swishsign")

    def extra_repr(self) -> str:
        return f"beta={self.beta}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return swish_sign(x, self.beta)
