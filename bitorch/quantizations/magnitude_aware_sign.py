"""Per-channel scaled signs: MagnitudeAwareSign (Bi-Real Net) and XnorScaled (XNOR-Net).

Both multiply a binarized weight by ``alpha = mean|W|`` per output channel, the mean taken
over every axis but ``channel_axis`` (0 by default: torch's ``Linear`` weight is
``(out, in)`` and its ``ConvNd`` weight ``(out, in, *kernel)``). ``alpha`` is a constant
for the gradient (no gradient flows through it).

``alpha`` is computed exactly, the same bits in both frameworks and on every device:
``|W|`` (in the compute dtype) is summed in a fixed pairwise order made of elementwise
additions (:func:`pairwise_row_sums`) and divided by the count once. ``|W|`` below the
smallest normal number is taken as 0, and so is a mean below it (XLA flushes both).
A NaN in a channel makes that channel's ``alpha`` NaN; an infinity (or a sum that
overflows) makes it ``inf``. A 0-d or 1-d input (a scalar, a bias) has no channel layout:
one ``alpha`` spans the whole tensor, as it does with ``channel_axis=None``.

Both save only the input for the backward pass and compute ``alpha`` again there.
Beyond bitorch 0.4.1 (SPEC.md, "Quantizers beyond bitorch 0.4.1").
"""

from __future__ import annotations

from typing import Any

import torch

from bitorch.quantizations.base import (
    Quantization,
    check_float_tensor,
    make_module_callable,
    to_compute,
)
from bitorch.quantizations.sign import sign_values
from bitorch.quantizations.ste_sign import clip_code, masked_gradient
from bitorch_common.validation import (
    check_channel_axis,
    check_gradient_clip,
    resolve_channel_axis,
)

__all__ = [
    "MagnitudeAwareSignFunction",
    "MagnitudeAwareSign",
    "magnitude_aware_sign",
    "ChannelScaleFunction",
    "XnorScaled",
    "xnor_scaled",
    "channel_mean_abs",
    "pairwise_row_sums",
]


def pairwise_row_sums(rows: torch.Tensor) -> torch.Tensor:
    """The sum of each row of ``rows`` (2-d) in a fixed pairwise order.

    With ``k`` columns and ``h`` the largest power of two below ``k``: the first ``k - h``
    columns get the last ``k - h`` added, leaving ``h`` columns; then the right half is
    added to the left half until one column is left. Only elementwise additions, so the
    result is the same in every library and on every device (a reduction's order is not).
    """
    k = rows.shape[1]
    if k == 1:
        return rows[:, 0]
    h = 1 << ((k - 1).bit_length() - 1)
    s = torch.cat((rows[:, : k - h] + rows[:, h:], rows[:, k - h : h]), dim=1)
    while s.shape[1] > 1:
        w = s.shape[1] // 2
        s = s[:, :w] + s[:, w:]
    return s[:, 0]


def channel_mean_abs(x: torch.Tensor, channel_axis: int | None, where: str) -> torch.Tensor:
    """``alpha = mean|x|`` per channel of ``channel_axis`` (see the module docstring), in
    the compute dtype, shaped to broadcast against ``x``. ``x`` must not be empty."""
    axis = resolve_channel_axis(channel_axis, x.dim(), where)
    xf, _ = to_compute(x)
    a = xf.abs()
    tiny = torch.finfo(a.dtype).tiny
    a = torch.where(a < tiny, 0.0, a)  # subnormals to 0; NaN stays
    if axis is None:
        rows, shape = a.reshape(1, -1), (1,) * x.dim()
    else:
        rows = a.movedim(axis, 0).reshape(a.shape[axis], -1)
        shape = tuple(a.shape[axis] if i == axis else 1 for i in range(x.dim()))
    count = torch.full((), rows.shape[1], dtype=a.dtype, device=a.device)
    mean = pairwise_row_sums(rows) / count  # a true division (a tensor divisor, also on CUDA)
    return torch.where(mean < tiny, 0.0, mean).reshape(shape)


class MagnitudeAwareSignFunction(torch.autograd.Function):
    """The magnitude-aware sign of Bi-Real Net (larq's ``magnitude_aware_sign``).

    ``MagnitudeAwareSignFunction.apply(x, clip_value, channel_axis)``:
    ``q(x) = alpha * sign(x)`` with ``sign(0) = sign(-0.0) = +1`` and ``alpha`` the
    per-channel ``mean|x|`` (module docstring), computed in the compute dtype and rounded
    once. ``dq/dx = alpha`` where ``|x| <= clip_value`` (inclusive; ``inf``: everywhere),
    else ``0``; NaN where ``x`` is NaN. That is the sign's clipped straight-through
    gradient scaled by ``alpha`` (Bi-Real Net, Section 3.3), with no gradient through
    ``alpha``: ``g * alpha`` rounded once, times the factor 1 / 0 / NaN (a product: a NaN
    or infinite ``alpha`` where the factor is 0 gives NaN). Saves the input only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(  # type: ignore[override]
        input_tensor: torch.Tensor, clip_value: float, channel_axis: int | None
    ) -> torch.Tensor:
        if input_tensor.numel() == 0:
            return input_tensor.clone()
        alpha = channel_mean_abs(input_tensor, channel_axis, "magnitudeawaresign")
        return (alpha * sign_values(input_tensor)).to(input_tensor.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.clip_value, ctx.channel_axis = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if x.numel() == 0:
            return output_gradient.clone(), None, None
        alpha = channel_mean_abs(x, ctx.channel_axis, "magnitudeawaresign")
        scaled = output_gradient.to(alpha.dtype) * alpha
        return masked_gradient(clip_code(x, ctx.clip_value), scaled).to(x.dtype), None, None


def magnitude_aware_sign(
    x: torch.Tensor, clip_value: float | None = 1.0, channel_axis: int | None = 0
) -> torch.Tensor:
    """Functional form of :class:`MagnitudeAwareSign`.

    >>> w = torch.tensor([[0.5, -1.5], [-0.2, 0.0]], requires_grad=True)
    >>> q = magnitude_aware_sign(w); q.backward(torch.ones(2, 2)); q.detach()
    tensor([[ 1.0000, -1.0000],
            [-0.1000,  0.1000]])
    >>> w.grad  # alpha where |w| <= 1
    tensor([[1.0000, 0.0000],
            [0.1000, 0.1000]])
    """
    check_float_tensor(x, "magnitudeawaresign")
    clip_value = check_gradient_clip(clip_value, "magnitudeawaresign")
    channel_axis = check_channel_axis(channel_axis, "magnitudeawaresign")
    resolve_channel_axis(channel_axis, x.dim(), "magnitudeawaresign")
    return MagnitudeAwareSignFunction.apply(x, clip_value, channel_axis)


class MagnitudeAwareSign(Quantization):
    """MagnitudeAwareSign quantization (registry key ``"magnitudeawaresign"``, 1 bit: one
    sign bit per weight plus one float per output channel); see
    :class:`MagnitudeAwareSignFunction`.

    ``clip_value`` (default 1.0) as for ``SteSign``; ``channel_axis`` (default 0, torch's
    weight layout; ``None``: one ``alpha`` for the whole tensor).
    """

    name = "magnitudeawaresign"
    bit_width = 1

    def __init__(self, clip_value: float | None = 1.0, channel_axis: int | None = 0) -> None:
        super().__init__()
        self.clip_value = check_gradient_clip(clip_value, self.name)
        self.channel_axis = check_channel_axis(channel_axis, self.name)

    def extra_repr(self) -> str:
        return f"clip_value={self.clip_value}, channel_axis={self.channel_axis}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return magnitude_aware_sign(x, self.clip_value, self.channel_axis)


class ChannelScaleFunction(torch.autograd.Function):
    """``ChannelScaleFunction.apply(y, x, channel_axis)``: ``alpha(x) * y``, with ``alpha``
    the per-channel ``mean|x|`` (module docstring), computed in the compute dtype and
    rounded once to the dtype of ``y``. The gradient reaches ``y`` only:
    ``g * alpha`` rounded once; ``x`` gets none (``alpha`` is a constant). Saves ``x``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(  # type: ignore[override]
        y: torch.Tensor, x: torch.Tensor, channel_axis: int | None
    ) -> torch.Tensor:
        if x.numel() == 0:
            return y.clone()
        alpha = channel_mean_abs(x, channel_axis, "xnorscaled")
        return (alpha * y.to(alpha.dtype)).to(y.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[1])
        ctx.channel_axis = inputs[2]

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if x.numel() == 0:
            return output_gradient.clone(), None, None
        alpha = channel_mean_abs(x, ctx.channel_axis, "xnorscaled")
        return (output_gradient.to(alpha.dtype) * alpha).to(output_gradient.dtype), None, None


def _base_quantization(base: Any) -> Quantization:
    """A registry name (looked up and built with its defaults) or a Quantization object;
    ``TypeError`` for anything else, ``ValueError`` for an unknown name."""
    from bitorch.quantizations import _REGISTRY  # the package imports this module first

    return _REGISTRY.resolve(base, "xnorscaled: base")


def xnor_scaled(x: torch.Tensor, base: Any = "sign", channel_axis: int | None = 0) -> torch.Tensor:
    """Functional form of :class:`XnorScaled`.

    >>> w = torch.tensor([[0.5, -1.5], [-0.2, 0.0]], requires_grad=True)
    >>> q = xnor_scaled(w); q.backward(torch.ones(2, 2)); q.detach()
    tensor([[ 1.0000, -1.0000],
            [-0.1000,  0.1000]])
    >>> w.grad  # alpha everywhere
    tensor([[1.0000, 1.0000],
            [0.1000, 0.1000]])
    """
    check_float_tensor(x, "xnorscaled")
    quantizer = _base_quantization(base)
    channel_axis = check_channel_axis(channel_axis, "xnorscaled")
    resolve_channel_axis(channel_axis, x.dim(), "xnorscaled")
    return ChannelScaleFunction.apply(quantizer(x), x, channel_axis)


class XnorScaled(Quantization):
    """XNOR-Net weight scaling around any quantizer (registry key ``"xnorscaled"``).

    ``q(x) = alpha * base(x)``, ``alpha`` the per-channel ``mean|x|`` (module docstring)
    of the unquantized input, a constant for the gradient: ``dq/dx`` is ``base``'s
    gradient taken at the cotangent ``g * alpha``. With the default ``base="sign"``:
    ``q(x) = alpha * sign(x)``, ``dq/dx = alpha`` everywhere (XNOR-Net's weight
    approximation ``W ~ alpha * sign(W)``, with the sign's plain straight-through
    gradient; XNOR-Net's extra ``1/n`` term through ``alpha`` is left out).

    ``base``: a registry name (built with its defaults) or a ``Quantization`` object;
    ``channel_axis`` (default 0, torch's weight layout; ``None``: one ``alpha`` for the
    whole tensor). ``bit_width`` is the base's.
    """

    name = "xnorscaled"

    def __init__(self, base: Any = "sign", channel_axis: int | None = 0) -> None:
        super().__init__()
        self.base = _base_quantization(base)
        self.channel_axis = check_channel_axis(channel_axis, self.name)

    @property
    def bit_width(self) -> int:  # type: ignore[override]
        return self.base.bit_width

    def extra_repr(self) -> str:
        return f"channel_axis={self.channel_axis}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return xnor_scaled(x, self.base, self.channel_axis)


make_module_callable(__name__, magnitude_aware_sign)
