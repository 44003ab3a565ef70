"""DoReFa-Net quantization of activations (``InputDoReFa``) and weights (``WeightDoReFa``)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from bitorch_jax.quantizations.base import (
    _INT_OF_WIDTH,
    Quantization,
    check_bits,
    check_float_array,
    compute_dtype,
    straight_through,
    true_divide,
)
from bitorch_jax.quantizations.config import config

__all__ = ["InputDoReFa", "WeightDoReFa", "input_dorefa", "weight_dorefa"]


@straight_through(static_argnums=(1,))
def _input_dorefa(x: jax.Array, bits: int) -> jax.Array:
    n = 2**bits - 1
    xf = x.astype(compute_dtype(x.dtype))
    return true_divide(jnp.round(jnp.clip(xf, 0, 1) * n), n).astype(x.dtype)


def _max_abs(v: jax.Array) -> jax.Array:
    """``max|v|`` over the whole array in one pass; NaN if any element is NaN.

    It is an integer maximum over the bit patterns: for non-negative floats the order of the
    patterns is the order of the values, NaN patterns above +inf's, and integer reductions
    never drop a NaN (XLA on CPU drops NaN from float max-reductions of 4096 or more
    elements, seen with jax 0.10.2). The signed maximum finds the largest non-negative
    pattern (negative floats are negative integers), the unsigned one the largest pattern
    with the sign bit set, i.e. the most negative float. Both ride one variadic reduction,
    which XLA fuses with its producers into a single loop over ``v`` that writes nothing;
    a plain ``jnp.max`` would first write its input to a temporary array. Reducing the rows
    of a ``(rows, -1)`` view lets XLA split that loop over the CPU cores.
    """
    signed, unsigned = _INT_OF_WIDTH[v.dtype.itemsize]
    rows = math.gcd(v.size, 64)
    v = v.reshape(rows, v.size // rows)
    smax, umax = jax.lax.reduce(
        (jax.lax.bitcast_convert_type(v, signed), jax.lax.bitcast_convert_type(v, unsigned)),
        (jnp.array(jnp.iinfo(signed).min, signed), jnp.array(0, unsigned)),
        lambda p, q: (jnp.maximum(p[0], q[0]), jnp.maximum(p[1], q[1])),
        (1,),
    )
    smax, umax = jnp.max(smax), jnp.max(umax)
    sign_bit = jnp.array(1 << (8 * v.dtype.itemsize - 1), unsigned)
    largest_negative = jnp.where(
        umax >= sign_bit, (umax - sign_bit).astype(signed), jnp.zeros((), signed)
    )
    magnitude = jnp.maximum(jnp.maximum(smax, jnp.zeros((), signed)), largest_negative)
    return jax.lax.bitcast_convert_type(magnitude, v.dtype)


def _flushed_tanh(v: jax.Array) -> jax.Array:
    """``tanh(v)`` with subnormal results taken as 0.

    XLA on CPU flushes them, PyTorch keeps them, so the result is defined the same way
    everywhere by flushing them explicitly.
    """
    t = jnp.tanh(v)
    return jnp.where(jnp.abs(t) < jnp.finfo(t.dtype).tiny, jnp.zeros((), t.dtype), t)


@straight_through(static_argnums=(1,))
def _weight_dorefa(x: jax.Array, bits: int) -> jax.Array:
    if x.size == 0:
        return x
    n = 2**bits - 1
    xf = x.astype(compute_dtype(x.dtype))
    t = _flushed_tanh(xf)
    # One pass over t gives m = max|t| and, through it, the NaN check (SPEC.md): XLA
    # writes t once and reads it for m and to quantize. Recomputing tanh in each loop
    # instead (from tanh(-x) = -tanh(x), so that XLA does not share it) moves 8 bytes less
    # per element but was slower on a 2-core CPU, and tanh(max|x|) is not max|tanh x|
    # bit for bit, as XLA's float32 tanh is odd but not monotone.
    m = _max_abs(t)
    scaled = true_divide(t, jnp.where(m == 0, jnp.ones((), t.dtype), 2 * m))
    return (true_divide(2 * jnp.round((scaled + 0.5) * n), n) - 1).astype(x.dtype)


def input_dorefa(x: jax.Array, bits: int | None = None) -> jax.Array:
    """DoReFa activation quantization with a straight-through gradient.

    ``q(x) = round(clip(x, 0, 1) * n) / n`` with ``n = 2**bits - 1`` and round half to
    even; NaN gives NaN. ``dq/dx = 1``: plain STE, not masked to ``[0, 1]``. ``bits`` is a
    static Python int in ``1..24`` (``None`` reads ``config.dorefa_bits``).

    >>> input_dorefa(jnp.array([-1.0, 0.3, 0.5, 2.0]), bits=2)
    Array([0.        , 0.33333334, 0.6666667 , 1.        ], dtype=float32)
    """
    x = check_float_array(x, "inputdorefa")
    return _input_dorefa(x, check_bits(config.dorefa_bits if bits is None else bits, "inputdorefa"))


def weight_dorefa(x: jax.Array, bits: int | None = None) -> jax.Array:
    """DoReFa weight quantization with a straight-through gradient.

    ``t = tanh(x)``, ``m = max|t|`` over the whole array (a constant for the gradient),
    ``q(x) = 2 * round((t / (2m) + 0.5) * n) / n - 1`` with ``n = 2**bits - 1``. When
    ``m == 0`` (all-zero input) ``t / (2m)`` is taken as ``0``; a NaN anywhere makes ``m``
    and so the whole output NaN; an empty input gives an empty output. Subnormal values
    of ``t`` (in the compute dtype) are taken as ``0`` before ``m`` is formed.
    ``dq/dx = 1``: plain STE. ``bits`` as in :func:`input_dorefa`.

    >>> weight_dorefa(jnp.array([-0.3, 0.0, 0.7]), bits=1)
    Array([-1., -1.,  1.], dtype=float32)
    """
    x = check_float_array(x, "weightdorefa")
    return _weight_dorefa(
        x, check_bits(config.dorefa_bits if bits is None else bits, "weightdorefa")
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class _DoReFa(Quantization):
    """Shared fields of the two DoReFa quantizers: ``bit_width`` is ``bits``."""

    bits: int | None = None

    def __post_init__(self) -> None:
        bits = check_bits(config.dorefa_bits if self.bits is None else self.bits, self.name)
        object.__setattr__(self, "bits", bits)

    @property
    def bit_width(self) -> int:  # type: ignore[override]
        return self.bits  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputDoReFa(_DoReFa):
    """DoReFa activation quantizer (registry key ``"inputdorefa"``, ``bits`` bits)."""

    name: ClassVar[str] = "inputdorefa"

    def quantize(self, x: jax.Array) -> jax.Array:
        return input_dorefa(x, self.bits)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightDoReFa(_DoReFa):
    """DoReFa weight quantizer (registry key ``"weightdorefa"``, ``bits`` bits)."""

    name: ClassVar[str] = "weightdorefa"

    def quantize(self, x: jax.Array) -> jax.Array:
        return weight_dorefa(x, self.bits)
