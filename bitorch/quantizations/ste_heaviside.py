"""SteHeaviside: a Heaviside step to ``±1`` with a clipped straight-through gradient.

``bitorch.quantizations.ste_heaviside`` is this module (as in bitorch 0.4.1) and, called,
the functional form :func:`ste_heaviside`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from bitorch.quantizations.base import (
    STE,
    Quantization,
    check_float_tensor,
    make_module_callable,
    times_gradient,
    to_compute,
)
from bitorch.quantizations.sign import step_values

__all__ = ["SteHeavisideFunction", "SteHeaviside", "ste_heaviside", "heaviside_grad_code"]

# The backward residual: one byte per element, the gradient factor itself as float8:
# 1 where the gradient passes (|x| <= 1), 0 where it is cancelled, NaN where x is NaN. A
# bool mask cannot carry SPEC.md's third case, "a NaN input gives a NaN gradient".
CODE_DTYPE = torch.float8_e5m2


def heaviside_grad_code(x: torch.Tensor) -> torch.Tensor:
    """The gradient factor of ``x`` as :data:`CODE_DTYPE`: 1 where ``|x| <= 1``, 0 where
    ``|x| > 1`` (``±inf`` included), NaN where ``x`` is NaN.

    Computed without a comparison: ``clamp((1 + k) - k * x*x, 0, 1)`` with
    ``k = 2**(nmant - 1)``. ``x*x <= 1`` exactly when ``|x| <= 1`` (rounding is monotone
    and the square of the float just above 1 rounds to ``1 + 2**(1 - nmant)``), so the
    clamped value is 1 there and 0 from that square on; NaN stays NaN.
    """
    xf, _ = to_compute(x)
    k = 0.5 / torch.finfo(xf.dtype).eps  # 2**(nmant - 1)
    factor = xf * xf
    factor.mul_(-k).add_(1 + k)
    return F.hardtanh_(factor, 0.0, 1.0).to(CODE_DTYPE)


class SteHeavisideFunction(STE):
    """Heaviside step with a clipped straight-through gradient.

    ``q(x) = +1 if x > 0 else -1`` (so ``0`` and ``-0.0`` give ``-1``; NaN gives NaN),
    in the dtype of ``x``. ``dq/dx = 1`` where ``|x| <= 1`` (inclusive), else ``0``; NaN
    where ``x`` is NaN. Saves one byte per element (:func:`heaviside_grad_code`), not the
    input. ``SteHeavisideFunction.apply(x)`` as in bitorch 0.4.1 (which printed a count in
    its backward pass; this one does not).
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return step_values(input_tensor, -1.0)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(heaviside_grad_code(inputs[0]))

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (code,) = ctx.saved_tensors
        factor = code.to(torch.promote_types(output_gradient.dtype, torch.float32))
        return times_gradient(factor, output_gradient).to(output_gradient.dtype)


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


make_module_callable(__name__, ste_heaviside)
