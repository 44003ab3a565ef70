"""DoReFa-Net quantization of activations (``InputDoReFa``) and weights (``WeightDoReFa``)."""

from __future__ import annotations

import torch

from bitorch.quantizations.base import (
    STE,
    Quantization,
    check_bits,
    check_float_tensor,
    compute_dtype,
)
from bitorch.quantizations.config import config

__all__ = [
    "InputDoReFaFunction",
    "WeightDoReFaFunction",
    "InputDoReFa",
    "WeightDoReFa",
    "input_dorefa",
    "weight_dorefa",
]


class InputDoReFaFunction(STE):
    """DoReFa activation quantization with a straight-through gradient.

    ``q(x) = round(clip(x, 0, 1) * n) / n`` with ``n = 2**bits - 1`` and round half to
    even; NaN gives NaN. ``dq/dx = 1``: plain STE, not masked to ``[0, 1]``.
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor, bits: int) -> torch.Tensor:  # type: ignore[override]
        n = 2**bits - 1
        xf = input_tensor.to(compute_dtype(input_tensor.dtype))
        return (torch.round(torch.clamp(xf, 0, 1) * n) / n).to(input_tensor.dtype)


class WeightDoReFaFunction(STE):
    """DoReFa weight quantization with a straight-through gradient.

    ``t = tanh(x)``, ``m = max|t|`` over the whole tensor (a constant for the gradient),
    ``q(x) = 2 * round((t / (2m) + 0.5) * n) / n - 1`` with ``n = 2**bits - 1``. When
    ``m == 0`` (all-zero input) ``t / (2m)`` is taken as ``0``; a NaN anywhere makes ``m``
    and so the whole output NaN; an empty input gives an empty output. Subnormal values
    of ``t`` (in the compute dtype) are taken as ``0`` before ``m`` is formed.
    ``dq/dx = 1``: plain STE.
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor, bits: int) -> torch.Tensor:  # type: ignore[override]
        if input_tensor.numel() == 0:
            return input_tensor.clone()
        n = 2**bits - 1
        t = torch.tanh(input_tensor.to(compute_dtype(input_tensor.dtype)))
        # Subnormal tanh values count as 0 (XLA on CPU flushes them; defined the same in
        # both frameworks by flushing them explicitly).
        t = torch.where(t.abs() < torch.finfo(t.dtype).tiny, 0.0, t)
        m = t.abs().max()
        scaled = t / torch.where(m == 0, 1.0, 2 * m)
        return (2 * torch.round((scaled + 0.5) * n) / n - 1).to(input_tensor.dtype)


def input_dorefa(x: torch.Tensor, bits: int | None = None) -> torch.Tensor:
    """Functional form of :class:`InputDoReFa`; ``bits=None`` reads ``config.dorefa_bits``."""
    check_float_tensor(x, "inputdorefa")
    bits = check_bits(config.dorefa_bits if bits is None else bits, "inputdorefa")
    return InputDoReFaFunction.apply(x, bits)


def weight_dorefa(x: torch.Tensor, bits: int | None = None) -> torch.Tensor:
    """Functional form of :class:`WeightDoReFa`; ``bits=None`` reads ``config.dorefa_bits``."""
    check_float_tensor(x, "weightdorefa")
    bits = check_bits(config.dorefa_bits if bits is None else bits, "weightdorefa")
    return WeightDoReFaFunction.apply(x, bits)


class _DoReFa(Quantization):
    """Shared constructor of the two DoReFa quantizers: ``bit_width`` is ``bits``."""

    def __init__(self, *, bits: int | None = None) -> None:
        super().__init__()
        self.bits = check_bits(config.dorefa_bits if bits is None else bits, self.name)

    @property
    def bit_width(self) -> int:  # type: ignore[override]
        return self.bits

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class InputDoReFa(_DoReFa):
    """DoReFa activation quantizer (registry key ``"inputdorefa"``, ``bits`` bits).

    >>> InputDoReFa(bits=2)(torch.tensor([-1.0, 0.3, 0.5, 2.0]))
    tensor([0.0000, 0.3333, 0.6667, 1.0000])
    """

    name = "inputdorefa"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return input_dorefa(x, self.bits)


class WeightDoReFa(_DoReFa):
    """DoReFa weight quantizer (registry key ``"weightdorefa"``, ``bits`` bits).

    >>> WeightDoReFa(bits=1)(torch.tensor([-0.3, 0.0, 0.7]))
    tensor([-1., -1.,  1.])
    """

    name = "weightdorefa"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return weight_dorefa(x, self.bits)
