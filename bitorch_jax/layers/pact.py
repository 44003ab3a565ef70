"""PACT activation: the pure function behind linen and NNX ``Pact``. Mirror of
:mod:`bitorch.layers.pact` (same formulas, same masks).

With ``n = 2**bits - 1`` and ``s = (1 / alpha) * n`` (computed in ``alpha``'s dtype, then
cast to ``x``'s, as torch's ``n / alpha`` does)::

    y         = round(clip(x, 0, alpha) * s) / s          (round half to even)
    dL/dx     = g where 0 <= x <= alpha (NaN passes), else 0  (mask times g)
    dL/dalpha = sum(g where x >= alpha)
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_bits
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["q_pact"]


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _pact(x: jax.Array, alpha: jax.Array, bits: int) -> jax.Array:
    clamped = jnp.clip(x, jnp.zeros((), x.dtype), alpha.astype(x.dtype))
    scale = ((1 / alpha) * jnp.asarray(2**bits - 1, alpha.dtype)).astype(x.dtype)
    # XLA rewrites a division by a broadcast scalar into a multiplication by its
    # reciprocal (not the same rounding); a full-shape operand behind a barrier is divided
    scale = jax.lax.optimization_barrier(jnp.broadcast_to(scale, x.shape))
    return jnp.round(clamped * scale) / scale


def _pact_fwd(x: jax.Array, alpha: jax.Array, bits: int) -> tuple[jax.Array, Any]:
    top = alpha.astype(x.dtype)
    inside = ~((x < 0) | (x > top))
    clipped = x >= top
    return _pact(x, alpha, bits), (inside, clipped, jnp.zeros((), alpha.dtype))


def _pact_bwd(bits: int, residuals: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    inside, clipped, alpha_zero = residuals
    grad_x = g * inside.astype(g.dtype)
    sum_dtype = jnp.promote_types(g.dtype, jnp.float32)  # torch: g * mask.float()
    grad_alpha = jnp.sum(g.astype(sum_dtype) * clipped.astype(sum_dtype))
    return grad_x, grad_alpha.astype(alpha_zero.dtype)


_pact.defvjp(_pact_fwd, _pact_bwd)


def q_pact(x: jax.Array, alpha: jax.Array, bits: int = 4) -> jax.Array:
    """bitorch's PACT: ``x`` clipped to ``[0, alpha]`` and quantized to ``bits`` bits
    (``alpha`` a 0-d float array, the learnable clip; see the module doc for the
    gradients). The output has ``x``'s dtype.

    >>> q_pact(jnp.array([-1.0, 2.0, 4.0, 12.0]), jnp.asarray(10.0), 2)
    Array([ 0.       ,  3.3333333,  3.3333333, 10.       ], dtype=float32)
    """
    where = "q_pact"
    bits = check_bits(bits, where)
    x = check_float_array(x, where)
    alpha = check_float_array(alpha, where)
    if alpha.shape != ():
        raise ValueError(f"{where}: alpha must be 0-d (a scalar), got shape {alpha.shape}")
    return _pact(x, alpha, bits)
