"""ApproxSign (Bi-Real Net): sign forward, piecewise-linear "approx sign" gradient."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from bitorch_jax.quantizations.base import Quantization, check_float_array, compute_dtype
from bitorch_jax.quantizations.sign import sign_values

__all__ = ["ApproxSign", "approx_sign"]


@jax.custom_vjp
def _approx_sign(x: jax.Array) -> jax.Array:
    return sign_values(x)


def _approx_sign_fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return sign_values(x), x


def _approx_sign_bwd(x: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    ct = compute_dtype(x.dtype)
    # 2 - 2 * min(|x|, 1): 0 past |x| = 1, NaN at NaN (minimum propagates it), and the
    # cotangent is multiplied, as in bitorch: an infinite g where the factor is 0 gives NaN.
    factor = 2 - 2 * jnp.minimum(jnp.abs(x.astype(ct)), 1)
    grad = g.astype(ct) * factor
    return (grad.astype(x.dtype),)


_approx_sign.defvjp(_approx_sign_fwd, _approx_sign_bwd)


def approx_sign(x: jax.Array) -> jax.Array:
    """Sign with the ApproxSign gradient of Bi-Real Net.

    ``q(x) = +1 if x >= 0 else -1`` (``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = 2 - 2|x|`` where ``|x| <= 1`` (inclusive), else ``0``; at ``±inf`` the
    gradient is ``0``, at NaN it is NaN. Saves the input for the backward pass.

    >>> jax.grad(lambda x: approx_sign(x).sum())(jnp.array([-0.3, 0.0, 2.0]))
    Array([1.4, 2. , 0. ], dtype=float32)
    """
    return _approx_sign(check_float_array(x, "approxsign"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApproxSign(Quantization):
    """ApproxSign quantization (registry key ``"approxsign"``, 1 bit); see :func:`approx_sign`."""

    name: ClassVar[str] = "approxsign"
    bit_width: ClassVar[int] = 1

    def quantize(self, x: jax.Array) -> jax.Array:
        return approx_sign(x)
