"""Sign quantization with a plain straight-through gradient."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from bitorch_jax.quantizations.base import (
    Quantization,
    check_float_array,
    negative_nonzero,
    straight_through,
)

__all__ = ["Sign", "sign", "sign_values"]


def sign_values(x: jax.Array) -> jax.Array:
    """``+1`` where ``x >= 0``, ``-1`` where ``x < 0``, NaN where ``x`` is NaN; dtype of ``x``.

    Shared forward of ``sign``, ``approx_sign`` and ``swish_sign``. The sign is read from
    the bits, so negative subnormals give ``-1`` also where XLA treats subnormals as zero.
    """
    one = jnp.ones((), x.dtype)
    return jnp.where(jnp.isnan(x), x, jnp.where(negative_nonzero(x), -one, one))


_sign = straight_through(sign_values)


def sign(x: jax.Array) -> jax.Array:
    """Sign with a straight-through gradient.

    ``q(x) = +1 if x >= 0 else -1`` (so ``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = 1``: the output cotangent passes through unchanged, with no clipping.
    Nothing is saved for the backward pass.

    >>> sign(jnp.array([-0.5, -0.0, 0.0, 2.0]))
    Array([-1.,  1.,  1.,  1.], dtype=float32)
    """
    return _sign(check_float_array(x, "sign"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sign(Quantization):
    """Sign quantization (registry key ``"sign"``, 1 bit); see :func:`sign`.

    >>> Sign()(jnp.array([-0.3, 0.0, 0.7]))
    Array([-1.,  1.,  1.], dtype=float32)
    """

    name: ClassVar[str] = "sign"
    bit_width: ClassVar[int] = 1

    def quantize(self, x: jax.Array) -> jax.Array:
        return sign(x)
