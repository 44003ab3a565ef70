"""SteSign (larq's ``ste_sign``): sign forward, straight-through gradient clipped at ``clip_value``.

``bitorch.quantizations.ste_sign`` is this module and, called, the functional form
:func:`ste_sign`. Beyond bitorch 0.4.1 (SPEC.md, "Quantizers beyond bitorch 0.4.1").
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bitorch.quantizations.base import (
    Quantization,
    check_float_tensor,
    compute_dtype,
    make_module_callable,
    to_compute,
)
from bitorch.quantizations.sign import sign_values
from bitorch_common.validation import check_gradient_clip

__all__ = ["SteSignFunction", "SteSign", "ste_sign", "clip_code", "masked_gradient"]

# The backward residual: one int8 code per element (1 byte, like a bool mask), the same
# codes as bitorch_jax. A bool mask cannot carry SPEC.md's third case, "a NaN input gives
# a NaN gradient".
CODE_ZERO, CODE_PASS, CODE_NAN = 0, 1, 2


def rounded_bound(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to the compute dtype of ``dtype`` (as a Python float)."""
    return float(torch.tensor(value, dtype=compute_dtype(dtype)))


def clip_code(x: torch.Tensor, clip_value: float) -> torch.Tensor:
    """int8 per element: 1 where ``|x| <= clip_value`` (the bound rounded to the compute
    dtype; ``inf``: everywhere), 2 where ``x`` is NaN, else 0."""
    xf, _ = to_compute(x)
    a = xf.abs()
    code = (a <= rounded_bound(clip_value, x.dtype)).to(torch.int8)
    return code.masked_fill_(torch.isnan(a), CODE_NAN)


def masked_gradient(code: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """``gradient`` times the factor of ``code``: 1 where it passes, 0 where it cancels,
    NaN where it marks a NaN input. A product, as in bitorch 0.4.1 (and ``steheaviside``):
    an infinite cotangent where the factor is 0 gives NaN. The product is exact."""
    one = torch.ones((), dtype=gradient.dtype, device=gradient.device)
    factor = torch.where(code == CODE_PASS, one, 0.0).masked_fill_(code == CODE_NAN, math.nan)
    return factor * gradient


class SteSignFunction(torch.autograd.Function):
    """Sign with a clipped straight-through gradient (larq's ``ste_sign``).

    ``SteSignFunction.apply(x, clip_value)``: ``q(x) = +1 if x >= 0 else -1`` (``0`` and
    ``-0.0`` give ``+1``; NaN gives NaN). ``dq/dx = 1`` where ``|x| <= clip_value``
    (inclusive, the bound rounded to the compute dtype), else ``0`` (``±inf`` included);
    NaN where ``x`` is NaN; the cotangent is multiplied by that factor (an infinite one
    where it is 0 gives NaN). ``clip_value = inf`` never clips. Saves one int8 code per
    element (:func:`clip_code`), not the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor, clip_value: float) -> torch.Tensor:  # type: ignore[override]
        return sign_values(input_tensor)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(clip_code(inputs[0], inputs[1]))

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (code,) = ctx.saved_tensors
        return masked_gradient(code, output_gradient), None


def ste_sign(x: torch.Tensor, clip_value: float | None = 1.0) -> torch.Tensor:
    """Functional form of :class:`SteSign`.

    >>> x = torch.tensor([-1.5, -0.0, 0.5, 1.0], requires_grad=True)
    >>> y = ste_sign(x); y.backward(torch.ones(4)); y.detach()
    tensor([-1.,  1.,  1.,  1.])
    >>> x.grad  # 1 where |x| <= 1
    tensor([0., 1., 1., 1.])
    """
    check_float_tensor(x, "stesign")
    return SteSignFunction.apply(x, check_gradient_clip(clip_value, "stesign"))


class SteSign(Quantization):
    """SteSign quantization (registry key ``"stesign"``, 1 bit); see :class:`SteSignFunction`.

    ``clip_value`` (default 1.0): a real number ``>= 2**-126``; ``inf`` or ``None`` (larq's
    spelling, stored as ``inf``) turns clipping off.
    """

    name = "stesign"
    bit_width = 1

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        self.clip_value = check_gradient_clip(clip_value, self.name)

    def extra_repr(self) -> str:
        return f"clip_value={self.clip_value}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return ste_sign(x, self.clip_value)


make_module_callable(__name__, ste_sign)
