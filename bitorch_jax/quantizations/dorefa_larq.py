"""LarqDoReFa: DoReFa weight quantization whose gradient flows through the tanh
normalisation (larq's ``DoReFa(mode="weights")``), where ``WeightDoReFa`` passes the
gradient straight through.

Mirror of :mod:`bitorch.quantizations.dorefa_larq`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from bitorch_jax.quantizations.base import (
    check_bits,
    check_float_array,
    compute_dtype,
)
from bitorch_jax.quantizations.config import config
from bitorch_jax.quantizations.dorefa import _DoReFa, _flushed_tanh, _max_abs, weight_dorefa

__all__ = ["LarqDoReFa", "larq_dorefa"]


def _gradient_factor(x: jax.Array) -> jax.Array:
    """``(1 - t**2) / h`` in the compute dtype, ``t = tanh x`` (subnormal ``t`` taken as 0),
    ``h = max|t|`` (NaN if any ``t`` is), or ``0.5`` when that maximum is 0; evaluated as
    ``4e / ((1 + e)**2 * h)`` with ``e = exp(-2|x|)``, which has no cancellation near
    saturation (``1 - t*t`` loses every digit there to the rounding of ``t``)."""
    xf = x.astype(compute_dtype(x.dtype))
    t = _flushed_tanh(xf)
    m = _max_abs(t)  # NaN if any t is (an integer reduction: XLA keeps the NaN)
    half_d = jnp.where(m == 0, jnp.full((), 0.5, t.dtype), m)
    e = jnp.exp(-2 * jnp.abs(xf))
    d1 = 1 + e
    return (4 * e) / (d1 * d1 * half_d)  # an array divisor: a true division


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _larq_dorefa(x: jax.Array, bits: int) -> jax.Array:
    return weight_dorefa(x, bits)


def _larq_dorefa_fwd(x: jax.Array, bits: int) -> tuple[jax.Array, jax.Array]:
    return weight_dorefa(x, bits), x


def _larq_dorefa_bwd(bits: int, x: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    if x.size == 0:
        return (g,)
    factor = _gradient_factor(x)
    return ((factor * g.astype(factor.dtype)).astype(x.dtype),)


_larq_dorefa.defvjp(_larq_dorefa_fwd, _larq_dorefa_bwd)


def larq_dorefa(x: jax.Array, bits: int | None = None) -> jax.Array:
    """DoReFa weight quantization with the gradient of its normalisation.

    The forward value is :func:`weight_dorefa`'s, with all its rules (``t = tanh x``,
    ``m = max|t|`` over the whole array, ``q = 2 * round((t / (2m) + 0.5) * n) / n - 1``,
    ``t / 1`` when ``m == 0``, a NaN anywhere makes every output NaN). Only the rounding
    is straight-through and ``m`` is a constant for the gradient (as in larq):
    ``dq/dx = (1 - tanh(x)**2) / m`` (``2 * (1 - tanh(x)**2)`` when ``m == 0``),
    evaluated as ``4e / ((1 + e)**2 * m)``, ``e = exp(-2|x|)``; a NaN anywhere makes every
    gradient NaN. ``bits`` as in :func:`weight_dorefa`. Saves the
    input only; the backward pass computes ``t`` and ``m`` again.

    >>> g = jax.grad(lambda x: larq_dorefa(x, 2).sum())(jnp.array([-2.0, 0.0, 0.5]))
    >>> [round(float(v), 4) for v in g]  # (1 - tanh(x)**2) / tanh(2)
    [0.0733, 1.0373, 0.8158]
    """
    x = check_float_array(x, "larqdorefa")
    return _larq_dorefa(x, check_bits(config.dorefa_bits if bits is None else bits, "larqdorefa"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LarqDoReFa(_DoReFa):
    """LarqDoReFa quantizer (registry key ``"larqdorefa"``, ``bits`` bits); see
    :func:`larq_dorefa`. ``bits``: an int in ``1..24``; ``None`` takes
    ``config.dorefa_bits`` when the object is built."""

    name: ClassVar[str] = "larqdorefa"

    def quantize(self, x: jax.Array) -> jax.Array:
        return larq_dorefa(x, self.bits)
