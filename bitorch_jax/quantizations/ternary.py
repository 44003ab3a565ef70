"""SteTernary (larq's ``ste_tern``): ternarization to -1, 0, +1 with a clipped
straight-through gradient, at a fixed threshold or the Ternary Weight Networks one.

Mirror of :mod:`bitorch.quantizations.ternary`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_gradient_clip, check_ternary_threshold
from bitorch_jax.quantizations.base import (
    Quantization,
    check_float_array,
    compute_dtype,
    negative_nonzero,
    positive_nonzero,
)
from bitorch_jax.quantizations.magnitude_aware_sign import channel_mean_abs
from bitorch_jax.quantizations.ste_sign import clip_code, masked_gradient

__all__ = ["SteTernary", "ste_ternary", "ternary_threshold"]


def ternary_threshold(x: jax.Array, threshold: float, twn: bool) -> jax.Array:
    """``delta`` in the compute dtype (0-d): ``threshold``, or with ``twn``
    ``threshold * mean|x|`` over the whole tensor (the exact mean of MagnitudeAwareSign;
    ``threshold`` rounded to the compute dtype, one rounded product), taken as 0 below the
    smallest normal number. ``x`` must not be empty."""
    ct = compute_dtype(x.dtype)
    if not twn:
        return jnp.asarray(threshold, ct)
    delta = jnp.asarray(threshold, ct) * channel_mean_abs(x, None, "steternary").reshape(())
    return jnp.where(delta < jnp.finfo(ct).tiny, jnp.zeros((), ct), delta)


def _ternary_values(x: jax.Array, threshold: float, twn: bool) -> jax.Array:
    if x.size == 0:
        return x
    xf = x.astype(compute_dtype(x.dtype))
    delta = ternary_threshold(x, threshold, twn)
    one = jnp.ones((), xf.dtype)
    negative = negative_nonzero(xf)  # the sign bit: exact for subnormals too
    # delta is 0 or at least the smallest normal number (validated, or flushed with twn).
    # XLA on CPU compares subnormals as 0: right against a normal delta; against 0 the
    # bits tell (any nonzero x is above it).
    above = jnp.where(delta == 0, negative | positive_nonzero(xf), jnp.abs(xf) > delta)
    q = jnp.where(above, jnp.where(negative, -one, one), jnp.zeros((), xf.dtype))
    q = jnp.where(jnp.isnan(xf) | jnp.isnan(delta), jnp.full((), jnp.nan, xf.dtype), q)
    return q.astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _ste_ternary(x: jax.Array, threshold: float, twn: bool, clip_value: float) -> jax.Array:
    return _ternary_values(x, threshold, twn)


def _ste_ternary_fwd(
    x: jax.Array, threshold: float, twn: bool, clip_value: float
) -> tuple[jax.Array, jax.Array]:
    return _ternary_values(x, threshold, twn), clip_code(x, clip_value)


def _ste_ternary_bwd(
    threshold: float, twn: bool, clip_value: float, code: jax.Array, g: jax.Array
) -> tuple[jax.Array]:
    return (masked_gradient(code, g),)


_ste_ternary.defvjp(_ste_ternary_fwd, _ste_ternary_bwd)


def ste_ternary(
    x: jax.Array,
    threshold: float | None = None,
    twn: bool = False,
    clip_value: float | None = 1.0,
) -> jax.Array:
    """Ternarization with a clipped straight-through gradient (larq's ``ste_tern``).

    ``q(x) = +1`` where ``x > delta``, ``-1`` where ``x < -delta``, ``+0`` where
    ``|x| <= delta`` (inclusive); NaN gives NaN. ``delta`` is ``threshold`` (rounded to
    the compute dtype; ``None``: 0.05), or with ``twn=True`` the Ternary Weight Networks
    threshold ``threshold * mean|x|`` over the whole tensor (``None``: 0.7, TWN's
    factor), a constant for the gradient, taken as 0 below the smallest normal number (a
    NaN anywhere then makes every output NaN; an infinity makes ``delta = inf`` and every
    output 0). ``dq/dx = 1`` where ``|x| <= clip_value`` (inclusive), else 0; NaN
    where ``x`` is NaN. All arguments but ``x`` are static. Saves one int8 code per element.

    >>> ste_ternary(jnp.array([-1.5, -0.05, 0.0, 0.3]))
    Array([-1.,  0.,  0.,  1.], dtype=float32)
    >>> jax.grad(lambda x: ste_ternary(x, twn=True).sum())(jnp.array([-1.5, 0.2, 0.7]))
    Array([0., 1., 1.], dtype=float32)
    """
    x = check_float_array(x, "steternary")
    threshold, twn = check_ternary_threshold(threshold, twn, "steternary")
    clip_value = check_gradient_clip(clip_value, "steternary")
    return _ste_ternary(x, threshold, twn, clip_value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SteTernary(Quantization):
    """SteTernary quantization (registry key ``"steternary"``, 2 bits); see
    :func:`ste_ternary`. ``threshold`` (the fixed threshold, ``None``: 0.05; with
    ``twn=True`` the factor of ``mean|x|``, ``None``: 0.7), ``twn`` (a bool) and
    ``clip_value`` (default 1.0)."""

    name: ClassVar[str] = "steternary"
    bit_width: ClassVar[int] = 2
    threshold: float | None = None
    twn: bool = False
    clip_value: float | None = 1.0

    def __post_init__(self) -> None:
        threshold, twn = check_ternary_threshold(self.threshold, self.twn, self.name)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "twn", twn)
        object.__setattr__(self, "clip_value", check_gradient_clip(self.clip_value, self.name))

    def quantize(self, x: jax.Array) -> jax.Array:
        return ste_ternary(x, self.threshold, self.twn, self.clip_value)
