"""SteTernary (larq's ``ste_tern``): ternarization to -1, 0, +1 with a clipped
straight-through gradient, at a fixed threshold or the Ternary Weight Networks one.

Mirror of :mod:`bitorch.quantizations.ternary`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from bitorch_common.validation import (
    SMALLEST_BOUND,
    check_gradient_clip,
    check_ternary_threshold,
    is_traced,
    unwrap_variable,
)
from bitorch_jax.quantizations.base import (
    Quantization,
    check_float_array,
    compute_dtype,
    negative_nonzero,
    positive_nonzero,
)
from bitorch_jax.quantizations.magnitude_aware_sign import channel_mean_abs
from bitorch_jax.quantizations.ste_sign import clip_code, masked_gradient

__all__ = ["SteTernary", "ste_ternary", "ternary_threshold", "ternary_threshold_is_valid"]


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


# The same with a traced threshold: an ordinary argument (no gradient), not a static one.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _ste_ternary_traced(
    x: jax.Array, threshold: jax.Array, twn: bool, clip_value: float
) -> jax.Array:
    return _ternary_values(x, threshold, twn)


def _ste_ternary_traced_fwd(
    x: jax.Array, threshold: jax.Array, twn: bool, clip_value: float
) -> tuple[jax.Array, jax.Array]:
    return _ternary_values(x, threshold, twn), clip_code(x, clip_value)


def _ste_ternary_traced_bwd(
    twn: bool, clip_value: float, code: jax.Array, g: jax.Array
) -> tuple[jax.Array, None]:
    return masked_gradient(code, g), None


_ste_ternary_traced.defvjp(_ste_ternary_traced_fwd, _ste_ternary_traced_bwd)


def ternary_threshold_is_valid(threshold: Any, twn: bool) -> jax.Array:
    """The run-time rule of a traced threshold (a bool 0-d array), in its own dtype:
    finite and ``>= 0``, and without ``twn`` 0 or at least ``2**-126``."""
    t = jnp.asarray(threshold)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(jnp.float32)
    valid = jnp.isfinite(t) & (t >= 0)
    # "is zero" from the bits: XLA on CPU may compare a subnormal threshold equal to 0.
    return valid if twn else valid & (~positive_nonzero(t) | (t >= SMALLEST_BOUND))


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
    where ``x`` is NaN. ``twn`` and ``clip_value`` are static; ``threshold`` may be a 0-d
    JAX array, also a traced one (a schedule that compiles once): a traced threshold that
    breaks the rules above (negative, infinite, NaN, or without ``twn`` in
    ``(0, 2**-126)``) makes every output NaN, and ``checkify.checkify(f,
    errors=checkify.user_checks)`` reports ``"steternary: threshold must be ..."``
    (SPEC.md "Traced hyperparameters"). Saves one int8 code per element.

    >>> ste_ternary(jnp.array([-1.5, -0.05, 0.0, 0.3]))
    Array([-1.,  0.,  0.,  1.], dtype=float32)
    >>> jax.grad(lambda x: ste_ternary(x, twn=True).sum())(jnp.array([-1.5, 0.2, 0.7]))
    Array([0., 1., 1.], dtype=float32)
    """
    x = check_float_array(x, "steternary")
    threshold, twn = check_ternary_threshold(threshold, twn, "steternary")
    clip_value = check_gradient_clip(clip_value, "steternary")
    threshold = unwrap_variable(threshold)
    if is_traced(threshold):
        valid = ternary_threshold_is_valid(threshold, twn)
        rule = "finite and >= 0" if twn else "finite and >= 0, and 0 or at least 2**-126"
        checkify.debug_check(
            valid, f"steternary: threshold must be {rule}, got {{threshold}}", threshold=threshold
        )
        threshold = jnp.where(
            valid, threshold, jnp.full((), jnp.nan, jnp.result_type(threshold, jnp.float32))
        )
        return _ste_ternary_traced(x, threshold, twn, clip_value)
    return _ste_ternary(x, threshold, twn, clip_value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SteTernary(Quantization):
    """SteTernary quantization (registry key ``"steternary"``, 2 bits); see
    :func:`ste_ternary`. ``threshold`` (the fixed threshold, ``None``: 0.05; with
    ``twn=True`` the factor of ``mean|x|``, ``None``: 0.7), ``twn`` (a bool) and
    ``clip_value`` (default 1.0). The fields are static (Python floats); for a threshold
    that changes every step without recompiling pass it at call time,
    ``q(x, threshold=t)`` (``t`` may be traced)."""

    name: ClassVar[str] = "steternary"
    bit_width: ClassVar[int] = 2
    threshold: float | None = None
    twn: bool = False
    clip_value: float | None = 1.0

    def __post_init__(self) -> None:
        threshold, twn = check_ternary_threshold(self.threshold, self.twn, self.name)
        if is_traced(unwrap_variable(threshold)):
            raise TypeError(
                "steternary: a traced threshold cannot be a field of SteTernary (the object "
                "is a static, hashable value); pass it at call time, q(x, threshold=t), or "
                "call ste_ternary(x, t)"
            )
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "twn", twn)
        object.__setattr__(self, "clip_value", check_gradient_clip(self.clip_value, self.name))

    def quantize(self, x: jax.Array, threshold: Any = None) -> jax.Array:
        """:func:`ste_ternary` with ``threshold`` (may be traced) or, if ``None``, this
        object's."""
        t = self.threshold if threshold is None else threshold
        return ste_ternary(x, t, self.twn, self.clip_value)

    def __call__(self, x: jax.Array, threshold: Any = None) -> jax.Array:
        """Quantize ``x`` (see :meth:`quantize`)."""
        return self.quantize(x, threshold)
