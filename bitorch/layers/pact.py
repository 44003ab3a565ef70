"""PACT: a parameterized clipping activation with a learnable clip ``alpha``
(bitorch 0.4.1's ``bitorch.layers.pact``; Choi et al., "PACT: Parameterized Clipping
Activation for Quantized Neural Networks", 2018).

Forward, with ``n = 2**bits - 1`` and ``s = (1 / alpha) * n``::

    y = round(clamp(x, 0, alpha) * s) / s        (round half to even)

Backward, for the incoming gradient ``g``::

    dL/dx     = g          where 0 <= x <= alpha, else 0
    dL/dalpha = sum(g)     over the elements with x >= alpha

(an element equal to ``alpha`` passes its gradient to both, as in 0.4.1). ``s`` is
computed as ``reciprocal(alpha) * n`` because that is what ``n / alpha`` does for a torch
tensor; the clamp uses ``alpha``'s value. The output has the input's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bitorch.layers._util import default
from bitorch_common.validation import check_bits

__all__ = ["Pact", "PactActFn"]


class PactActFn(torch.autograd.Function):
    """``PactActFn.apply(x, alpha, bits)``: the PACT forward and backward (module doc).

    The masks multiply the gradient (as in 0.4.1), so an infinite or NaN gradient at a
    masked-out element gives NaN, not 0.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:  # type: ignore[override]
        top = alpha.detach().to(x.dtype)
        ctx.save_for_backward(~((x < 0) | (x > top)), x >= top)
        ctx.alpha_dtype = alpha.dtype
        clamped = torch.clamp(x, min=0, max=alpha.item())
        scale = alpha.detach().reciprocal() * (2**bits - 1)
        return torch.round(clamped * scale) / scale

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        inside, clipped = ctx.saved_tensors
        grad_x = output_gradient * inside.to(output_gradient.dtype)
        grad_alpha = torch.sum(output_gradient * clipped.float()).to(ctx.alpha_dtype)
        return grad_x, grad_alpha, None


class Pact(nn.Module):
    """PACT activation: ``x`` clipped to ``[0, alpha]`` and quantized to ``bits`` bits.

    ``alpha`` is a learnable scalar parameter (0-d, initialised to ``10.0``, as in bitorch
    0.4.1); ``bits`` ``None`` (default) takes the layer config's ``pact_bits`` (4). The
    math and gradients are in :mod:`bitorch.layers.pact`.

    >>> act = Pact(2)
    >>> act(torch.tensor([-1.0, 2.0, 4.0, 12.0]))
    tensor([ 0.0000,  3.3333,  3.3333, 10.0000], grad_fn=<PactActFnBackward>)
    """

    def __init__(self, bits: int | None = None) -> None:
        super().__init__()
        self.bits = check_bits(default(bits, "pact_bits"), "Pact")
        self.alpha = nn.Parameter(torch.tensor(10.0))

    def extra_repr(self) -> str:
        return f"bits={self.bits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return PactActFn.apply(x, self.alpha, self.bits)
