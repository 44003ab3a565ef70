"""DoReFa-Net quantization of activations (``InputDoReFa``) and weights (``WeightDoReFa``).

The ``*Function`` classes take bitorch 0.4.1's arguments:
``InputDoReFaFunction.apply(x, bits)`` and ``WeightDoReFaFunction.apply(x,
maximum_bit_value)`` with ``maximum_bit_value = 2**bits - 1``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from bitorch.quantizations.base import STE, Quantization, check_bits, check_float_tensor, to_compute
from bitorch.quantizations.config import config
from bitorch_common.validation import MAX_BITS, is_int

__all__ = [
    "InputDoReFaFunction",
    "WeightDoReFaFunction",
    "InputDoReFa",
    "WeightDoReFa",
    "input_dorefa",
    "weight_dorefa",
    "check_maximum_bit_value",
]

MAX_LEVEL = 2**MAX_BITS - 1


def check_maximum_bit_value(maximum_bit_value: Any, where: str) -> int:
    """``n``, the largest level of ``WeightDoReFaFunction``: an int in ``1..2**24 - 1``
    (``2**bits - 1`` for a bit width ``bits``; other values give ``n + 1`` levels)."""
    if not is_int(maximum_bit_value):
        raise TypeError(
            f"{where}: maximum_bit_value (2**bits - 1) must be an int, got "
            f"{type(maximum_bit_value).__name__} {maximum_bit_value!r}"
        )
    if not 1 <= maximum_bit_value <= MAX_LEVEL:
        raise ValueError(
            f"{where}: maximum_bit_value (2**bits - 1) must be in 1..{MAX_LEVEL}, got "
            f"{maximum_bit_value}"
        )
    return int(maximum_bit_value)


class InputDoReFaFunction(STE):
    """DoReFa activation quantization with a straight-through gradient.

    ``InputDoReFaFunction.apply(x, bits)``: ``q(x) = round(clip(x, 0, 1) * n) / n`` with
    ``n = 2**bits - 1`` and round half to even; NaN gives NaN. ``dq/dx = 1``: plain STE,
    not masked to ``[0, 1]``. One new tensor, modified in place.
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor, bits: int) -> torch.Tensor:  # type: ignore[override]
        n = 2 ** check_bits(bits, "inputdorefa") - 1
        xf, _ = to_compute(input_tensor)
        q = torch.clamp(xf, 0, 1)
        q.mul_(n).round_().div_(n)
        return q.to(input_tensor.dtype)


class WeightDoReFaFunction(STE):
    """DoReFa weight quantization with a straight-through gradient.

    ``WeightDoReFaFunction.apply(x, maximum_bit_value)`` with ``maximum_bit_value`` the
    largest level ``n = 2**bits - 1``, as in bitorch 0.4.1: ``t = tanh(x)``,
    ``m = max|t|`` over the whole tensor (a constant for the gradient),
    ``q(x) = 2 * round((t / (2m) + 0.5) * n) / n - 1``. When ``m == 0`` (all-zero input)
    ``t / (2m)`` is taken as ``0``; a NaN anywhere makes ``m`` and so the whole output NaN;
    an empty input gives an empty output. Subnormal values of ``t`` (in the compute dtype)
    are taken as ``0`` before ``m`` is formed; ``tanh`` maps subnormals to themselves and
    normals to normals, so the subnormals of ``x`` are flushed (``hardshrink``) instead.
    ``dq/dx = 1``: plain STE. One new tensor, modified in place.
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor, maximum_bit_value: int) -> torch.Tensor:  # type: ignore[override]
        n = check_maximum_bit_value(maximum_bit_value, "weightdorefa")
        if input_tensor.numel() == 0:
            return input_tensor.clone()
        xf, _ = to_compute(input_tensor)
        info = torch.finfo(xf.dtype)
        largest_subnormal = info.tiny - info.smallest_normal * info.eps  # tiny - 1 ulp
        t = F.hardshrink(xf, largest_subnormal)  # subnormals (and -0.0) to +0
        t.tanh_()
        lowest, highest = torch.aminmax(t)
        m = torch.maximum(highest, -lowest)  # max|t| without an |t| tensor; NaN propagates
        t.div_(torch.where(m == 0, 1.0, 2 * m)).add_(0.5)
        t.mul_(n).round_().div_(n).mul_(2).sub_(1)
        return t.to(input_tensor.dtype)


def input_dorefa(x: torch.Tensor, bits: int | None = None) -> torch.Tensor:
    """Functional form of :class:`InputDoReFa`; ``bits=None`` reads ``config.dorefa_bits``."""
    check_float_tensor(x, "inputdorefa")
    bits = check_bits(config.dorefa_bits if bits is None else bits, "inputdorefa")
    return InputDoReFaFunction.apply(x, bits)


def weight_dorefa(x: torch.Tensor, bits: int | None = None) -> torch.Tensor:
    """Functional form of :class:`WeightDoReFa`; ``bits=None`` reads ``config.dorefa_bits``."""
    check_float_tensor(x, "weightdorefa")
    bits = check_bits(config.dorefa_bits if bits is None else bits, "weightdorefa")
    return WeightDoReFaFunction.apply(x, 2**bits - 1)


class _Bits:
    """``bits`` / ``bit_width`` of a DoReFa quantizer: validated when set (an int in
    ``1..24``); read on the class it is the current ``config.dorefa_bits`` (what the
    quantizer built without arguments would take; bitorch 0.4.1's class attribute)."""

    def __get__(self, obj: Any, owner: type) -> int:
        return config.dorefa_bits if obj is None else obj.__dict__["_bits"]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_bits"] = check_bits(value, obj.name)


class _DoReFa(Quantization):
    """Shared constructor of the two DoReFa quantizers.

    ``bits`` (positionally too, as in bitorch 0.4.1: ``InputDoReFa(2)``); ``None`` takes
    ``config.dorefa_bits`` when the object is built. ``bit_width`` (0.4.1's attribute)
    and ``bits`` are one value; setting either validates it.
    """

    bits = _Bits()
    bit_width = _Bits()  # type: ignore[assignment]

    def __init__(self, bits: int | None = None) -> None:
        super().__init__()
        self.bits = config.dorefa_bits if bits is None else bits

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class InputDoReFa(_DoReFa):
    """DoReFa activation quantizer (registry key ``"inputdorefa"``, ``bits`` bits).

    >>> InputDoReFa(2)(torch.tensor([-1.0, 0.3, 0.5, 2.0]))
    tensor([0.0000, 0.3333, 0.6667, 1.0000])
    """

    name = "inputdorefa"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return input_dorefa(x, self.bits)


class WeightDoReFa(_DoReFa):
    """DoReFa weight quantizer (registry key ``"weightdorefa"``, ``bits`` bits).

    ``_max_value`` is ``2**bits - 1``, the argument of ``WeightDoReFaFunction.apply``
    (bitorch 0.4.1's attribute).

    >>> WeightDoReFa(1)(torch.tensor([-0.3, 0.0, 0.7]))
    tensor([-1., -1.,  1.])
    """

    name = "weightdorefa"

    @property
    def _max_value(self) -> int:
        return 2**self.bits - 1

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return weight_dorefa(x, self.bits)
