"""ApproxSign (Bi-Real Net): sign forward, piecewise-linear "approx sign" gradient.

``bitorch.quantizations.approx_sign`` is this module (as in bitorch 0.4.1) and, called,
the functional form :func:`approx_sign`.
"""

from __future__ import annotations

from typing import Any

import torch

from bitorch.quantizations.base import (
    Quantization,
    check_float_tensor,
    make_module_callable,
    times_gradient,
    to_compute,
)
from bitorch.quantizations.sign import sign_values

__all__ = ["ApproxSignFunction", "ApproxSign", "approx_sign"]


class ApproxSignFunction(torch.autograd.Function):
    """Sign with the ApproxSign gradient of Bi-Real Net.

    ``q(x) = +1 if x >= 0 else -1`` (``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = 2 - 2|x|`` where ``|x| <= 1`` (inclusive), else ``0``; at ``±inf`` the
    gradient is ``0``, at NaN it is NaN. Saves the input for the backward pass.
    ``ApproxSignFunction.apply(x)`` as in bitorch 0.4.1.

    The factor is computed as ``2 - 2 * min(|x|, 1)`` (the clamp keeps NaN and gives ``0``
    for ``|x| >= 1``, ``±inf`` included), then multiplied by the output gradient, in place
    in one new tensor: the roundings of bitorch 0.4.1's ``(2 - 2|x|) * mask * g``. Where
    the gradient is cancelled the zero is ``+0 * g`` (0.4.1: ``-0.0 * g``; equal values).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return sign_values(input_tensor)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        xf, fresh = to_compute(x)
        factor = xf.abs_() if fresh else xf.abs()
        factor.clamp_max_(1).mul_(-2).add_(2)  # 2 - 2 * min(|x|, 1); NaN stays NaN
        return times_gradient(factor, output_gradient).to(x.dtype)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Functional form of :class:`ApproxSign`."""
    return ApproxSignFunction.apply(check_float_tensor(x, "approxsign"))


class ApproxSign(Quantization):
    """ApproxSign quantization (registry key ``"approxsign"``, 1 bit).

    >>> x = torch.tensor([-0.3, 0.0, 2.0], requires_grad=True)
    >>> ApproxSign()(x).sum().backward(); x.grad
    tensor([1.4000, 2.0000, 0.0000])
    """

    name = "approxsign"
    bit_width = 1

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return approx_sign(x)


make_module_callable(__name__, approx_sign)
