"""Identity quantization: the full-precision pass-through (``bit_width`` 32).

``bitorch.quantizations.identity`` is this module (as in bitorch 0.4.1) and, called, the
functional form :func:`identity`.
"""

from __future__ import annotations

import torch

from bitorch.quantizations.base import Quantization, check_float_tensor, make_module_callable

__all__ = ["Identity", "identity"]


def identity(x: torch.Tensor) -> torch.Tensor:
    """``q(x) = x``, ``dq/dx = 1`` (NaN and ``±inf`` pass through).

    Returns ``x`` itself, as bitorch 0.4.1 does: no copy and no autograd node, so the
    gradient is the output gradient by construction (under ``torch.func`` too).
    """
    return check_float_tensor(x, "identity")


class Identity(Quantization):
    """No quantization (registry key ``"identity"``, 32 bits).

    >>> Identity()(torch.tensor([-0.3, 0.7]))
    tensor([-0.3000,  0.7000])
    """

    name = "identity"
    bit_width = 32

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return identity(x)


make_module_callable(__name__, identity)
