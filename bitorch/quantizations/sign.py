"""Sign quantization with a plain straight-through gradient."""

from __future__ import annotations

import torch

from bitorch.quantizations.base import STE, Quantization, check_float_tensor

__all__ = ["SignFunction", "Sign", "sign", "sign_values"]


def sign_values(x: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``x >= 0``, ``-1`` where ``x < 0``, NaN where ``x`` is NaN; dtype of ``x``.

    Shared forward of ``sign``, ``approxsign`` and ``swishsign``.
    """
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(x < 0, -one, torch.where(x >= 0, one, x))


class SignFunction(STE):
    """Sign with a straight-through gradient.

    ``q(x) = +1 if x >= 0 else -1`` (so ``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = 1``: the output gradient passes through unchanged, with no clipping.
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
