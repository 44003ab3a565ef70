"""SteHeaviside: a Heaviside step to ``±1`` with a clipped straight-through gradient."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from bitorch_jax.quantizations.base import Quantization, check_float_array, positive_nonzero

__all__ = ["SteHeaviside", "ste_heaviside"]

# Backward residual: one int8 code per element (1 byte, like a bool mask). A bool mask
# cannot carry SPEC.md's third case, "a NaN input gives a NaN gradient".
_ZERO, _PASS, _NAN = 0, 1, 2


def _heaviside_values(x: jax.Array) -> jax.Array:
    # The sign is read from the bits: positive subnormals give +1 also where XLA treats
    # subnormals as zero (as it does on CPU).
    one = jnp.ones((), x.dtype)
    return jnp.where(jnp.isnan(x), x, jnp.where(positive_nonzero(x), one, -one))


def heaviside_grad_code(x: jax.Array) -> jax.Array:
    """int8 per element: 1 where ``|x| <= 1`` (gradient passes), 2 at NaN, else 0."""
    code = (jnp.abs(x) <= 1).astype(jnp.int8)
    return jnp.where(jnp.isnan(x), jnp.int8(_NAN), code)


@jax.custom_vjp
def _ste_heaviside(x: jax.Array) -> jax.Array:
    return _heaviside_values(x)


def _ste_heaviside_fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _heaviside_values(x), heaviside_grad_code(x)


def _ste_heaviside_bwd(code: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    # The factor is 1 (pass), 0 or NaN; the cotangent is multiplied by it, as in bitorch
    # (an infinite g where the factor is 0 gives NaN).
    nan_or_zero = jnp.where(code == _NAN, jnp.full((), jnp.nan, g.dtype), jnp.zeros((), g.dtype))
    return (g * jnp.where(code == _PASS, jnp.ones((), g.dtype), nan_or_zero),)


_ste_heaviside.defvjp(_ste_heaviside_fwd, _ste_heaviside_bwd)


def ste_heaviside(x: jax.Array) -> jax.Array:
    """Heaviside step with a clipped straight-through gradient.

    ``q(x) = +1 if x > 0 else -1`` (so ``0`` and ``-0.0`` give ``-1``; NaN gives NaN).
    ``dq/dx = 1`` where ``|x| <= 1`` (inclusive), else ``0``; NaN where ``x`` is NaN.
    Saves one int8 code per element, not the input.

    >>> ste_heaviside(jnp.array([-0.3, 0.0, 0.7]))
    Array([-1., -1.,  1.], dtype=float32)
    """
    return _ste_heaviside(check_float_array(x, "steheaviside"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SteHeaviside(Quantization):
    """SteHeaviside quantization (registry key ``"steheaviside"``, 1 bit)."""

    name: ClassVar[str] = "steheaviside"
    bit_width: ClassVar[int] = 1

    def quantize(self, x: jax.Array) -> jax.Array:
        return ste_heaviside(x)
