"""Sign quantization with a plain straight-through gradient.

``bitorch.quantizations.sign`` is this module (as in bitorch 0.4.1) and, called, the
functional form :func:`sign`.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from bitorch.quantizations.base import STE, Quantization, check_float_tensor, make_module_callable

__all__ = ["SignFunction", "Sign", "sign", "sign_values", "step_values"]


# 2**(maxexp - 1), the largest power of two of each float dtype (float32: 2**127).
_HUGE_POWER_OF_TWO = {
    dtype: 2.0 ** (math.frexp(torch.finfo(dtype).max)[1] - 1)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def step_values(x: torch.Tensor, zero: float) -> torch.Tensor:
    """``+1`` where ``x > 0``, ``-1`` where ``x < 0``, ``zero`` (``±1``) where ``x`` is ``±0``,
    NaN where ``x`` is NaN; a new tensor of the dtype of ``x``.

    Two multiplications by ``s = 2**(maxexp - 1)`` take every nonzero ``x`` (subnormals
    included) to a magnitude of at least ``2**6`` (or ``±inf``) and keep ``±0`` at ``±0``;
    adding ``zero`` and clamping to ``[-1, 1]`` leaves ``±1``. NaN stays NaN through every
    step (the clamp propagates it), so no comparison, mask or ``where`` is needed: one
    allocation and four elementwise passes.
    """
    s = _HUGE_POWER_OF_TWO[x.dtype]
    y = x * s
    y.mul_(s).add_(zero)
    return F.hardtanh_(y, -1.0, 1.0)  # hardtanh_ is clamp_, with a torch.func batching rule


def sign_values(x: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``x >= 0``, ``-1`` where ``x < 0``, NaN where ``x`` is NaN; dtype of ``x``.

    Shared forward of ``sign``, ``approxsign`` and ``swishsign`` (``0`` and ``-0.0`` give
    ``+1``).
    """
    return step_values(x, 1.0)


class SignFunction(STE):
    """Sign with a straight-through gradient.

    ``q(x) = +1 if x >= 0 else -1`` (so ``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = 1``: the output gradient passes through unchanged, with no clipping.
    ``SignFunction.apply(x)`` as in bitorch 0.4.1.
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return sign_values(input_tensor)


def sign(x: torch.Tensor) -> torch.Tensor:
    """Functional form of :class:`Sign`.

    >>> sign(torch.tensor([-0.5, -0.0, 0.0, 2.0]))
    tensor([-1.,  1.,  1.,  1.])
    """
    return SignFunction.apply(check_float_tensor(x, "sign"))


class Sign(Quantization):
    """Sign quantization (registry key ``"sign"``, 1 bit); see :class:`SignFunction`.

    >>> Sign()(torch.tensor([-0.3, 0.0, 0.7]))
    tensor([-1.,  1.,  1.])
    """

    name = "sign"
    bit_width = 1

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return sign(x)


make_module_callable(__name__, sign)
