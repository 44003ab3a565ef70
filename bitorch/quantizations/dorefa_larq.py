"""LarqDoReFa: DoReFa weight quantization whose gradient flows through the tanh
normalisation (larq's ``DoReFa(mode="weights")``), where ``WeightDoReFa`` passes the
gradient straight through.

Beyond bitorch 0.4.1 (SPEC.md, "Quantizers beyond bitorch 0.4.1").
"""

from __future__ import annotations

from typing import Any

import torch

from bitorch.quantizations.base import check_bits, check_float_tensor, to_compute
from bitorch.quantizations.config import config
from bitorch.quantizations.dorefa import _DoReFa, weight_dorefa

__all__ = ["LarqDoReFaFunction", "LarqDoReFa", "larq_dorefa"]


class LarqDoReFaFunction(torch.autograd.Function):
    """DoReFa weight quantization with the gradient of its normalisation.

    ``LarqDoReFaFunction.apply(x, bits)``: the forward value is ``WeightDoReFa``'s, with
    all its rules: ``t = tanh(x)`` (subnormal ``t`` taken as 0), ``m = max|t|`` over the
    whole tensor, ``q(x) = 2 * round((t / (2m) + 0.5) * n) / n - 1``, ``n = 2**bits - 1``;
    ``t / (2m)`` is taken as ``t / 1`` when ``m == 0``; a NaN anywhere makes every output
    NaN. Only the rounding is straight-through, and ``m`` is a constant for the gradient
    (as in larq), so ``dq/dx = 2 * (1 - t**2) / d`` with ``d = 2m`` (``d = 1`` when
    ``m == 0``), i.e. ``(1 - tanh(x)**2) / m``: ``1/m`` at 0, falling to 0 at ``±inf``.
    It is evaluated as ``4e / ((1 + e)**2 * m)`` with ``e = exp(-2|x|)`` (the same value
    without the cancellation of ``1 - t**2`` near saturation), rounded once.
    A NaN anywhere makes every gradient NaN. Saves the input only; the backward pass
    computes ``t``, ``m`` and ``e`` again.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor, bits: int) -> torch.Tensor:  # type: ignore[override]
        return weight_dorefa(input_tensor, bits)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if x.numel() == 0:
            return output_gradient.clone(), None
        xf, _ = to_compute(x)
        t = torch.tanh(xf)
        t = torch.where(t.abs() < torch.finfo(t.dtype).tiny, 0.0, t)
        m = torch.amax(t.abs())  # NaN propagates
        half_d = torch.where(m == 0, 0.5, m)  # d / 2
        # 1 - tanh(x)**2 = 4e / (1 + e)**2 with e = exp(-2|x|): no cancellation near
        # saturation, where 1 - t*t loses every digit to the rounding of t.
        e = torch.exp(-2 * xf.abs())
        d1 = 1 + e
        factor = (4 * e) / (d1 * d1 * half_d)
        return (factor * output_gradient.to(factor.dtype)).to(x.dtype), None


def larq_dorefa(x: torch.Tensor, bits: int | None = None) -> torch.Tensor:
    """Functional form of :class:`LarqDoReFa`; ``bits=None`` reads ``config.dorefa_bits``.

    >>> x = torch.tensor([-2.0, 0.0, 0.5], requires_grad=True)
    >>> q = larq_dorefa(x, 2); q.backward(torch.ones(3)); q.detach()
    tensor([-1.0000,  0.3333,  0.3333])
    >>> x.grad  # (1 - tanh(x)**2) / tanh(2)
    tensor([0.0733, 1.0373, 0.8158])
    """
    check_float_tensor(x, "larqdorefa")
    bits = check_bits(config.dorefa_bits if bits is None else bits, "larqdorefa")
    return LarqDoReFaFunction.apply(x, bits)


class LarqDoReFa(_DoReFa):
    """LarqDoReFa quantization (registry key ``"larqdorefa"``, ``bits`` bits); see
    :class:`LarqDoReFaFunction`. ``bits``: an int in ``1..24``; ``None`` takes
    ``config.dorefa_bits`` when the object is built (the DoReFa constructor).
    """

    name = "larqdorefa"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return larq_dorefa(x, self.bits)
