"""Identity quantization: the full-precision pass-through (``bit_width`` 32)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax

from bitorch_jax.quantizations.base import Quantization, check_float_array, straight_through

__all__ = ["Identity", "identity"]

_identity = straight_through(lambda x: x)


def identity(x: jax.Array) -> jax.Array:
    """``q(x) = x``, ``dq/dx = 1`` (NaN and ``±inf`` pass through): the STE itself.

    >>> import jax.numpy as jnp
    >>> identity(jnp.array([-0.3, 0.7]))
    Array([-0.3,  0.7], dtype=float32)
    """
    return _identity(check_float_array(x, "identity"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Identity(Quantization):
    """No quantization (registry key ``"identity"``, 32 bits)."""

    name: ClassVar[str] = "identity"
    bit_width: ClassVar[int] = 32

    def quantize(self, x: jax.Array) -> jax.Array:
        return identity(x)
