"""SteHeaviside: a Heaviside step to ``±1`` with a clipped straight-through gradient."""

from __future__ import annotations

from typing import Any

import torch

from bitorch.quantizations.base import Quantization, check_float_tensor

__all__ = ["SteHeavisideFunction", "SteHeaviside", "ste_heaviside"]

# Backward residual: one int8 code per element (1 byte, like a bool mask). A bool mask
# cannot carry SPEC.md's third case, "a NaN input gives a NaN gradient".
_ZERO, _PASS, _NAN = 0, 1, 2


def heaviside_grad_code(x: torch.Tensor) -> torch.Tensor:
    """int8 per element: 1 where ``|x| <= 1`` (gradient passes), 2 at NaN, else 0."""
    code = (x.abs() <= 1).to(torch.int8)
    return torch.where(torch.isnan(x), _NAN, code).to(torch.int8)


class SteHeavisideFunction(torch.autograd.Function):
    """Heaviside step with a clipped straight-through gradient.

    ``q(x) = +1 if x > 0 else -1`` (so ``0`` and ``-0.0`` give ``-1``; NaN gives NaN).
    ``dq/dx = 1`` where ``|x| <= 1`` (inclusive), else ``0``; NaN where ``x`` is NaN.
    Saves one int8 code per element, not the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = input_tensor
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return torch.where(x > 0, one, torch.where(x <= 0, -one, x))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(heaviside_grad_code(inputs[0]))

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (code,) = ctx.saved_tensors
        grad = torch.where(code == _PASS, output_gradient, 0.0)
        return grad.masked_fill(code == _NAN, float("nan"))


def ste_heaviside(x: torch.Tensor) -> torch.Tensor:
    """Functional form of :class:`SteHeaviside`."""
    return SteHeavisideFunction.apply(check_float_tensor(x, "steheaviside"))


class SteHeaviside(Quantization):
    """SteHeaviside quantization (registry key ``"steheaviside"``, 1 bit).

    >>> SteHeaviside()(torch.tensor([-0.3, 0.0, 0.7]))
    tensor([-1., -1.,  1.])
    """

    name = "steheaviside"
    bit_width = 1

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return ste_heaviside(x)
