"""SteTernary (larq's ``ste_tern``): ternarization to -1, 0, +1 with a clipped
straight-through gradient, at a fixed threshold or the Ternary Weight Networks one.

Beyond bitorch 0.4.1 (SPEC.md, "Quantizers beyond bitorch 0.4.1").
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bitorch.quantizations.base import Quantization, check_float_tensor, to_compute
from bitorch.quantizations.magnitude_aware_sign import channel_mean_abs
from bitorch.quantizations.ste_sign import clip_code, masked_gradient, rounded_bound
from bitorch_common.validation import check_gradient_clip, check_ternary_threshold

__all__ = ["SteTernaryFunction", "SteTernary", "ste_ternary", "ternary_threshold"]


def ternary_threshold(x: torch.Tensor, threshold: float, twn: bool) -> torch.Tensor:
    """``delta`` in the compute dtype (a 0-d tensor): ``threshold``, or with ``twn``
    ``threshold * mean|x|`` over the whole tensor (the exact mean of MagnitudeAwareSign;
    ``threshold`` rounded to the compute dtype, one rounded product), taken as 0 below the
    smallest normal number. ``x`` must not be empty."""
    xf, _ = to_compute(x)
    bound = torch.full((), rounded_bound(threshold, x.dtype), dtype=xf.dtype, device=x.device)
    if not twn:
        return bound
    delta = bound * channel_mean_abs(x, None, "steternary").reshape(())
    return torch.where(delta < torch.finfo(xf.dtype).tiny, 0.0, delta)


class SteTernaryFunction(torch.autograd.Function):
    """Ternarization with a clipped straight-through gradient.

    ``SteTernaryFunction.apply(x, threshold, twn, clip_value)``: ``q(x) = +1`` where
    ``x > delta``, ``-1`` where ``x < -delta``, ``+0`` where ``|x| <= delta`` (inclusive:
    ``x = ±delta`` gives 0); NaN gives NaN. ``delta`` is ``threshold`` (rounded to the
    compute dtype), or with ``twn=True`` the Ternary Weight Networks threshold
    ``threshold * mean|x|`` over the whole tensor (TWN's factor is 0.7), a constant for
    the gradient, taken as 0 below the smallest normal number; then a NaN
    anywhere makes ``delta`` and every output NaN, and an infinity makes ``delta = inf``
    and every output 0 (``±inf`` included). ``dq/dx = 1`` where
    ``|x| <= clip_value`` (inclusive), else 0; NaN where ``x`` is NaN. Saves one int8
    code per element, not the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(  # type: ignore[override]
        input_tensor: torch.Tensor, threshold: float, twn: bool, clip_value: float
    ) -> torch.Tensor:
        if input_tensor.numel() == 0:
            return input_tensor.clone()
        xf, _ = to_compute(input_tensor)
        delta = ternary_threshold(input_tensor, threshold, twn)
        one = torch.ones((), dtype=xf.dtype, device=xf.device)
        signs = torch.where(torch.signbit(xf), -one, one)
        q = torch.where(xf.abs() > delta, signs, 0.0)
        q = torch.where(torch.isnan(xf) | torch.isnan(delta), math.nan, q)
        return q.to(input_tensor.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(clip_code(inputs[0], inputs[3]))

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (code,) = ctx.saved_tensors
        return masked_gradient(code, output_gradient), None, None, None


def ste_ternary(
    x: torch.Tensor,
    threshold: float | None = None,
    twn: bool = False,
    clip_value: float | None = 1.0,
) -> torch.Tensor:
    """Functional form of :class:`SteTernary`.

    >>> x = torch.tensor([-1.5, -0.05, 0.0, 0.3], requires_grad=True)
    >>> q = ste_ternary(x); q.backward(torch.ones(4)); q.detach()
    tensor([-1.,  0.,  0.,  1.])
    >>> x.grad  # 1 where |x| <= 1
    tensor([0., 1., 1., 1.])
    """
    check_float_tensor(x, "steternary")
    threshold, twn = check_ternary_threshold(threshold, twn, "steternary")
    clip_value = check_gradient_clip(clip_value, "steternary")
    return SteTernaryFunction.apply(x, threshold, twn, clip_value)


class SteTernary(Quantization):
    """SteTernary quantization (registry key ``"steternary"``, 2 bits); see
    :class:`SteTernaryFunction`.

    ``threshold``: the fixed threshold, 0 or a finite real ``>= 2**-126`` (``None``:
    0.05, larq's default); with ``twn=True`` the factor of the Ternary Weight Networks
    threshold ``threshold * mean|x|``, a finite real ``>= 0`` (``None``: 0.7, TWN's);
    ``clip_value`` (default 1.0) as for ``SteSign``.
    """

    name = "steternary"
    bit_width = 2

    def __init__(
        self, threshold: float | None = None, twn: bool = False, clip_value: float | None = 1.0
    ) -> None:
        super().__init__()
        self.threshold, self.twn = check_ternary_threshold(threshold, twn, self.name)
        self.clip_value = check_gradient_clip(clip_value, self.name)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, twn={self.twn}, clip_value={self.clip_value}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return ste_ternary(x, self.threshold, self.twn, self.clip_value)
