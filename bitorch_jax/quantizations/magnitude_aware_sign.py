"""Per-channel scaled signs: MagnitudeAwareSign (Bi-Real Net) and XnorScaled (XNOR-Net).

Mirror of :mod:`bitorch.quantizations.magnitude_aware_sign`. Both multiply a binarized
weight by ``alpha = mean|W|`` per output channel, the mean taken over every axis but
``channel_axis``: -1 by default, the output axis of Flax's ``Dense`` kernel ``(in, out)``
and ``Conv`` kernel ``(*kernel, in, out)`` (bitorch's default is 0, torch's layout).
``alpha`` is a constant for the gradient.

``alpha`` is computed exactly, the same bits as bitorch: ``|W|`` (in the compute dtype)
is summed in a fixed pairwise order of elementwise additions (:func:`pairwise_row_sums`;
XLA does not reorder them) and divided by the count once, as an IEEE division. ``|W|``
below the smallest normal number is taken as 0, and so is a mean below it. A NaN in a
channel makes its ``alpha`` NaN; an infinity (or an overflowing sum) ``inf``. A 0-d or
1-d input has one ``alpha`` for the whole tensor, as with ``channel_axis=None``.

Both save only the input for the backward pass and compute ``alpha`` again there.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from bitorch_common.validation import (
    check_channel_axis,
    check_gradient_clip,
    resolve_channel_axis,
)
from bitorch_jax.quantizations.base import (
    Quantization,
    check_float_array,
    compute_dtype,
    straight_through,
)
from bitorch_jax.quantizations.sign import sign_values
from bitorch_jax.quantizations.ste_sign import clip_code, masked_gradient

__all__ = [
    "MagnitudeAwareSign",
    "magnitude_aware_sign",
    "XnorScaled",
    "xnor_scaled",
    "channel_mean_abs",
    "pairwise_row_sums",
    "exact_divide",
]


def pairwise_row_sums(rows: jax.Array) -> jax.Array:
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
    s = jnp.concatenate([rows[:, : k - h] + rows[:, h:], rows[:, k - h : h]], axis=1)
    while s.shape[1] > 1:
        w = s.shape[1] // 2
        s = s[:, :w] + s[:, w:]
    return s[:, 0]


def exact_divide(numerator: jax.Array, count: int) -> jax.Array:
    """``numerator / count`` as an IEEE division, also where ``numerator`` is infinite.

    XLA rewrites a division by a constant into a multiplication by its reciprocal (1 ulp
    off in general); a divisor that depends on ``numerator`` stays a true division. It
    equals ``count`` wherever ``numerator == numerator`` (infinities included) and is NaN
    where ``numerator`` is NaN (whose quotient is NaN either way).
    """
    divisor = jnp.where(numerator == numerator, jnp.asarray(count, numerator.dtype), numerator)
    return numerator / divisor


def channel_mean_abs(x: jax.Array, channel_axis: int | None, where: str) -> jax.Array:
    """``alpha = mean|x|`` per channel of ``channel_axis`` (see the module docstring), in
    the compute dtype, shaped to broadcast against ``x``. ``x`` must not be empty."""
    axis = resolve_channel_axis(channel_axis, x.ndim, where)
    a = jnp.abs(x.astype(compute_dtype(x.dtype)))
    tiny = jnp.finfo(a.dtype).tiny
    zero = jnp.zeros((), a.dtype)
    a = jnp.where(a < tiny, zero, a)  # subnormals to 0; NaN stays
    if axis is None:
        rows, shape = a.reshape(1, -1), (1,) * x.ndim
    else:
        rows = jnp.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)
        shape = tuple(a.shape[axis] if i == axis else 1 for i in range(x.ndim))
    mean = exact_divide(pairwise_row_sums(rows), rows.shape[1])
    return jnp.where(mean < tiny, zero, mean).reshape(shape)


def _scaled_sign(x: jax.Array, channel_axis: int | None) -> jax.Array:
    alpha = channel_mean_abs(x, channel_axis, "magnitudeawaresign")
    return (alpha * sign_values(x).astype(alpha.dtype)).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _magnitude_aware_sign(x: jax.Array, clip_value: float, channel_axis: int | None) -> jax.Array:
    return _scaled_sign(x, channel_axis)


def _magnitude_aware_sign_fwd(
    x: jax.Array, clip_value: float, channel_axis: int | None
) -> tuple[jax.Array, jax.Array]:
    return _scaled_sign(x, channel_axis), x


def _magnitude_aware_sign_bwd(
    clip_value: float, channel_axis: int | None, x: jax.Array, g: jax.Array
) -> tuple[jax.Array]:
    alpha = channel_mean_abs(x, channel_axis, "magnitudeawaresign")
    scaled = g.astype(alpha.dtype) * alpha
    return (masked_gradient(clip_code(x, clip_value), scaled).astype(x.dtype),)


_magnitude_aware_sign.defvjp(_magnitude_aware_sign_fwd, _magnitude_aware_sign_bwd)


def magnitude_aware_sign(
    x: jax.Array, clip_value: float | None = 1.0, channel_axis: int | None = -1
) -> jax.Array:
    """The magnitude-aware sign of Bi-Real Net (larq's ``magnitude_aware_sign``).

    ``q(x) = alpha * sign(x)`` with ``sign(0) = sign(-0.0) = +1`` and ``alpha`` the
    per-channel ``mean|x|`` (module docstring), computed in the compute dtype and rounded
    once. ``dq/dx = alpha`` where ``|x| <= clip_value`` (inclusive; ``inf``: everywhere),
    else ``0``; NaN where ``x`` is NaN: the sign's clipped straight-through gradient
    scaled by ``alpha`` (Bi-Real Net, Section 3.3), no gradient through ``alpha``:
    ``g * alpha`` rounded once, times the factor 1 / 0 / NaN (a product: a NaN or infinite
    ``alpha`` where the factor is 0 gives NaN). ``clip_value`` and ``channel_axis``
    (default -1, Flax's kernel layout; ``None``: one ``alpha`` for the tensor) are static.
    Saves the input only.

    >>> w = jnp.array([[0.5, -0.2], [-1.5, 0.0]])  # Dense kernel (in, out)
    >>> magnitude_aware_sign(w)
    Array([[ 1. , -0.1],
           [-1. ,  0.1]], dtype=float32)
    >>> jax.grad(lambda w: magnitude_aware_sign(w).sum())(w)
    Array([[1. , 0.1],
           [0. , 0.1]], dtype=float32)
    """
    x = check_float_array(x, "magnitudeawaresign")
    clip_value = check_gradient_clip(clip_value, "magnitudeawaresign")
    channel_axis = check_channel_axis(channel_axis, "magnitudeawaresign")
    resolve_channel_axis(channel_axis, x.ndim, "magnitudeawaresign")
    if x.size == 0:
        return _empty(x)
    return _magnitude_aware_sign(x, clip_value, channel_axis)


@straight_through
def _empty(x: jax.Array) -> jax.Array:
    """An empty input has no statistic: its output is itself, its gradient the cotangent."""
    return x


@dataclasses.dataclass(frozen=True, kw_only=True)
class MagnitudeAwareSign(Quantization):
    """MagnitudeAwareSign quantization (registry key ``"magnitudeawaresign"``, 1 bit: one
    sign bit per weight plus one float per output channel); see
    :func:`magnitude_aware_sign`. ``clip_value`` (default 1.0) as for ``SteSign``;
    ``channel_axis`` (default -1, Flax's kernel layout; ``None``: one ``alpha``)."""

    name: ClassVar[str] = "magnitudeawaresign"
    bit_width: ClassVar[int] = 1
    clip_value: float | None = 1.0
    channel_axis: int | None = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_value", check_gradient_clip(self.clip_value, self.name))
        object.__setattr__(self, "channel_axis", check_channel_axis(self.channel_axis, self.name))

    def quantize(self, x: jax.Array) -> jax.Array:
        return magnitude_aware_sign(x, self.clip_value, self.channel_axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _channel_scale(y: jax.Array, x: jax.Array, channel_axis: int | None) -> jax.Array:
    alpha = channel_mean_abs(x, channel_axis, "xnorscaled")
    return (alpha * y.astype(alpha.dtype)).astype(y.dtype)


def _channel_scale_fwd(
    y: jax.Array, x: jax.Array, channel_axis: int | None
) -> tuple[jax.Array, jax.Array]:
    return _channel_scale(y, x, channel_axis), x


def _channel_scale_bwd(channel_axis: int | None, x: jax.Array, g: jax.Array) -> tuple:
    alpha = channel_mean_abs(x, channel_axis, "xnorscaled")
    return (g.astype(alpha.dtype) * alpha).astype(g.dtype), None


_channel_scale.defvjp(_channel_scale_fwd, _channel_scale_bwd)


def _base_quantization(base: Any) -> Quantization:
    """A registry name (looked up and built with its defaults) or a Quantization object;
    ``TypeError`` for anything else, ``ValueError`` for an unknown name."""
    from bitorch_jax.quantizations import _REGISTRY  # the package imports this module first

    return _REGISTRY.resolve(base, "xnorscaled: base")


def xnor_scaled(x: jax.Array, base: Any = "sign", channel_axis: int | None = -1) -> jax.Array:
    """XNOR-Net weight scaling around a quantizer: ``q(x) = alpha * base(x)``.

    ``alpha`` is the per-channel ``mean|x|`` of the unquantized input (module docstring),
    a constant for the gradient; the product is computed in the compute dtype and rounded
    once. ``dq/dx`` is ``base``'s gradient taken at the cotangent ``g * alpha`` (rounded
    once to the dtype). With ``base="sign"``: ``q(x) = alpha * sign(x)`` and
    ``dq/dx = alpha`` everywhere. ``base``: a registry name or a ``Quantization`` object;
    ``channel_axis`` static (default -1; ``None``: one ``alpha``). Saves the input plus
    whatever ``base`` saves.

    >>> w = jnp.array([[0.5, -0.2], [-1.5, 0.0]])
    >>> jax.grad(lambda w: xnor_scaled(w).sum())(w)
    Array([[1. , 0.1],
           [1. , 0.1]], dtype=float32)
    """
    x = check_float_array(x, "xnorscaled")
    quantizer = _base_quantization(base)
    channel_axis = check_channel_axis(channel_axis, "xnorscaled")
    resolve_channel_axis(channel_axis, x.ndim, "xnorscaled")
    y = quantizer(x)
    if x.size == 0:
        return y
    return _channel_scale(y, x, channel_axis)


@dataclasses.dataclass(frozen=True, kw_only=True)
class XnorScaled(Quantization):
    """XNOR-Net weight scaling (registry key ``"xnorscaled"``); see :func:`xnor_scaled`.

    ``base`` (default ``"sign"``): a registry name, stored as the quantizer it names, or a
    ``Quantization`` object; ``channel_axis`` (default -1). ``bit_width`` is the base's.
    """

    name: ClassVar[str] = "xnorscaled"
    base: Any = "sign"
    channel_axis: int | None = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", _base_quantization(self.base))
        object.__setattr__(self, "channel_axis", check_channel_axis(self.channel_axis, self.name))

    @property
    def bit_width(self) -> int:  # type: ignore[override]
        return self.base.bit_width

    def quantize(self, x: jax.Array) -> jax.Array:
        return xnor_scaled(x, self.base, self.channel_axis)
