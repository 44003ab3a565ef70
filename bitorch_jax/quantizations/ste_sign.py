"""SteSign (larq's ``ste_sign``): sign forward, straight-through gradient clipped at ``clip_value``.

Beyond bitorch 0.4.1 (SPEC.md, "Quantizers beyond bitorch 0.4.1").
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bitorch_common.validation import check_gradient_clip
from bitorch_jax.quantizations.base import Quantization, check_float_array, compute_dtype
from bitorch_jax.quantizations.sign import sign_values

__all__ = ["SteSign", "ste_sign", "clip_code", "masked_gradient"]

# Backward residual: one int8 code per element (1 byte, like a bool mask). A bool mask
# cannot carry SPEC.md's third case, "a NaN input gives a NaN gradient".
CODE_ZERO, CODE_PASS, CODE_NAN = 0, 1, 2


def clip_code(x: jax.Array, clip_value: float) -> jax.Array:
    """int8 per element: 1 where ``|x| <= clip_value`` (the bound rounded to the compute
    dtype; ``inf``: everywhere), 2 where ``x`` is NaN, else 0."""
    xf = x.astype(compute_dtype(x.dtype))
    # clip_value >= 2**-126 (validated): a subnormal x, which XLA on CPU compares as 0,
    # is below it either way.
    bound = np.asarray(clip_value, dtype=xf.dtype)  # rounded once, at trace time
    code = (jnp.abs(xf) <= bound).astype(jnp.int8)
    return jnp.where(jnp.isnan(xf), jnp.int8(CODE_NAN), code)


def masked_gradient(code: jax.Array, gradient: jax.Array) -> jax.Array:
    """``gradient`` times the factor of ``code``: 1 where it passes, 0 where it cancels,
    NaN where it marks a NaN input. A product, as in bitorch 0.4.1 (and ``ste_heaviside``):
    an infinite cotangent where the factor is 0 gives NaN. The product is exact."""
    dt = gradient.dtype
    nan_or_zero = jnp.where(code == CODE_NAN, jnp.full((), jnp.nan, dt), jnp.zeros((), dt))
    return gradient * jnp.where(code == CODE_PASS, jnp.ones((), dt), nan_or_zero)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _ste_sign(x: jax.Array, clip_value: float) -> jax.Array:
    return sign_values(x)


def _ste_sign_fwd(x: jax.Array, clip_value: float) -> tuple[jax.Array, jax.Array]:
    return sign_values(x), clip_code(x, clip_value)


def _ste_sign_bwd(clip_value: float, code: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    return (masked_gradient(code, g),)


_ste_sign.defvjp(_ste_sign_fwd, _ste_sign_bwd)


def ste_sign(x: jax.Array, clip_value: float | None = 1.0) -> jax.Array:
    """Sign with a clipped straight-through gradient (larq's ``ste_sign``).

    ``q(x) = +1 if x >= 0 else -1`` (``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = 1`` where ``|x| <= clip_value`` (inclusive, the bound rounded to the compute
    dtype), else ``0`` (``±inf`` included); NaN where ``x`` is NaN; the cotangent is
    multiplied by that factor (an infinite one where it is 0 gives NaN). ``clip_value``:
    a static real ``>= 2**-126``; ``inf`` or ``None`` never clips. Saves one int8 code per element.

    >>> jax.grad(lambda x: ste_sign(x).sum())(jnp.array([-1.5, -0.0, 0.5, 1.0]))
    Array([0., 1., 1., 1.], dtype=float32)
    """
    x = check_float_array(x, "stesign")
    return _ste_sign(x, check_gradient_clip(clip_value, "stesign"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SteSign(Quantization):
    """SteSign quantization (registry key ``"stesign"``, 1 bit); see :func:`ste_sign`.

    ``clip_value`` (default 1.0): a real number ``>= 2**-126``; ``inf`` or ``None`` (stored as
    ``inf``) turns clipping off.
    """

    name: ClassVar[str] = "stesign"
    bit_width: ClassVar[int] = 1
    clip_value: float | None = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_value", check_gradient_clip(self.clip_value, self.name))

    def quantize(self, x: jax.Array) -> jax.Array:
        return ste_sign(x, self.clip_value)
