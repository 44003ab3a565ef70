"""Identity quantization: the full-precision pass-through (``bit_width`` 32)."""

from __future__ import annotations

import torch

from bitorch.quantizations.base import STE, Quantization, check_float_tensor

__all__ = ["Identity", "identity"]


def identity(x: torch.Tensor) -> torch.Tensor:
    """``q(x) = x``, ``dq/dx = 1`` (NaN and ``±inf`` pass through): :class:`STE` itself."""
    return STE.apply(check_float_tensor(x, "identity"))


class Identity(Quantization):
    """No quantization (registry key ``"identity"``, 32 bits).

    >>> Identity()(torch.tensor([-0.3, 0.7]))
    tensor([-0.3000,  0.7000])
    """

    name = "identity"
    bit_width = 32

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return identity(x)
