"""Constant padding of the last two dimensions (bitorch 0.4.1's ``PadModule``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bitorch_common.validation import check_int, check_real

__all__ = ["PadModule"]


class PadModule(nn.Module):
    """Pad the last dimension by ``padding_left``/``padding_right`` and the one before it
    by ``padding_top``/``padding_bottom`` with the constant ``padding_value``.

    ``forward(x)`` is ``F.pad(x, padding_tensor, "constant", padding_value)``; the input
    needs at least two dimensions, a negative amount crops (as in ``F.pad``). Attributes
    as in bitorch 0.4.1: ``padding_tensor`` ``(left, right, top, bottom)`` and
    ``padding_value``.

    >>> PadModule(1, 0, 0, 1, padding_value=-1)(torch.ones(1, 1, 2))
    tensor([[[-1.,  1.,  1.],
             [-1., -1., -1.]]])
    """

    def __init__(
        self,
        padding_left: int = 0,
        padding_right: int = 0,
        padding_top: int = 0,
        padding_bottom: int = 0,
        padding_value: float = 0,
    ) -> None:
        super().__init__()
        names = ("padding_left", "padding_right", "padding_top", "padding_bottom")
        amounts = (padding_left, padding_right, padding_top, padding_bottom)
        self.padding_tensor = tuple(
            check_int(a, name, "PadModule") for a, name in zip(amounts, names, strict=True)
        )
        check_real(padding_value, "padding_value", "PadModule")
        self.padding_value = padding_value

    def extra_repr(self) -> str:
        return f"padding={self.padding_tensor}, padding_value={self.padding_value}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.padding_tensor, "constant", self.padding_value)
