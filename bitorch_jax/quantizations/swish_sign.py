"""SwishSign (BNN+): sign forward, the derivative of a scaled swish as gradient."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from bitorch_common.validation import is_traced, unwrap_variable
from bitorch_jax.quantizations.base import (
    Quantization,
    check_beta,
    check_float_array,
    compute_dtype,
)
from bitorch_jax.quantizations.config import config
from bitorch_jax.quantizations.sign import sign_values

__all__ = ["SwishSign", "swish_sign", "beta_is_valid"]


@jax.custom_vjp
def _swish_sign(x: jax.Array, beta: Any) -> jax.Array:
    return sign_values(x)


def _swish_sign_fwd(x: jax.Array, beta: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
    return sign_values(x), (x, beta)


def _swish_sign_bwd(res: tuple[jax.Array, Any], g: jax.Array) -> tuple[jax.Array, None]:
    x, beta_in = res
    ct = compute_dtype(x.dtype)
    xf = x.astype(ct)
    beta = jnp.asarray(beta_in, ct)
    bx = beta * xf
    # The SPEC.md factor beta * (2 - bx*tanh(bx/2)) / (1 + cosh(bx)) is even in bx; with
    # a = |bx| and e = exp(-a): tanh(a/2) = (1-e)/(1+e) and 1 + cosh(a) = (1+e)**2 / (2e),
    # so it equals 2*beta*e * (2(1+e) - a(1-e)) / (1+e)**3: one exp and one division in
    # place of tanh, cosh (two exps) and a division. Within ~2.3 ulps of beta of the exact
    # value for float32 (the SPEC form: ~1.8), and exactly beta at 0.
    a = jnp.abs(bx)
    e = jnp.exp(-a)
    d = 1 + e
    factor = (2 * beta) * e * (2 * d - a * (1 - e)) / (d * d * d)
    # Where beta*x overflows (x = ±inf or merely huge) the factor is 0 * inf = NaN; its
    # limit there is 0.
    grad = jnp.where(jnp.isinf(bx), jnp.zeros((), ct), g.astype(ct) * factor)
    # A traced beta is checked here, at run time (a concrete one was checked when given):
    # an invalid one makes the whole gradient NaN rather than silently 0 or sign-flipped.
    grad = jnp.where(beta_is_valid(beta_in), grad, jnp.full((), jnp.nan, ct))
    return grad.astype(x.dtype), None


_swish_sign.defvjp(_swish_sign_fwd, _swish_sign_bwd)


def beta_is_valid(beta: Any) -> jax.Array:
    """The run-time rule of a traced ``beta``: finite and ``> 0`` (a bool 0-d array),
    judged in ``beta``'s own dtype."""
    beta = jnp.asarray(beta)
    return jnp.isfinite(beta) & (beta > 0)


def swish_sign(x: jax.Array, beta: Any = None) -> jax.Array:
    """Sign with the SwishSign gradient of BNN+.

    ``q(x) = +1 if x >= 0 else -1`` (``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = beta * (2 - beta*x * tanh(beta*x / 2)) / (1 + cosh(beta*x))``, which is
    ``beta`` at ``0``; at ``±inf`` (and wherever ``beta*x`` overflows) it is the limit
    ``0``, at NaN it is NaN. Saves the input. The factor is evaluated in the equal form
    ``2*beta*e * (2(1+e) - a(1-e)) / (1+e)**3`` with ``a = |beta*x|``, ``e = exp(-a)``.

    ``beta`` must be finite and ``> 0`` (``None`` reads ``config.beta``). It may be a 0-d
    array, an ``nnx.Variable`` holding one, or a traced scalar (an annealed ``beta`` whose
    schedule compiles once), and gets no gradient. A concrete one is checked when given
    (``ValueError``/``TypeError``); a traced one at run time: an invalid value (``<= 0``,
    infinite, NaN) makes the whole gradient NaN (the output, a sign, does not depend on
    ``beta``), and ``checkify.checkify(f, errors=checkify.user_checks)`` reports
    ``"swishsign: beta must be finite and > 0, got ..."`` (SPEC.md "Traced
    hyperparameters").

    >>> g = jax.grad(lambda x: swish_sign(x, 5.0).sum())(jnp.array([0.0, 0.3]))
    >>> [round(float(v), 4) for v in g]
    [5.0, 1.562]
    """
    x = check_float_array(x, "swishsign")
    beta = unwrap_variable(check_beta(config.beta if beta is None else beta, "swishsign"))
    if is_traced(beta):
        checkify.debug_check(
            beta_is_valid(beta), "swishsign: beta must be finite and > 0, got {beta}", beta=beta
        )
    return _swish_sign(x, beta)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SwishSign(Quantization):
    """SwishSign quantization (registry key ``"swishsign"``, 1 bit); see :func:`swish_sign`.

    ``beta`` must be finite and ``> 0``; ``None`` takes ``config.beta`` (5.0). The field is
    a Python float (a concrete 0-d array is converted): the object is hashable, a static
    value of ``jax.jit`` and a Flax module attribute, so each ``beta`` is its own
    compilation. For a ``beta`` that changes every step without recompiling, pass it at
    call time, ``q(x, beta=b)`` (``b`` may be traced, e.g. ``model.beta[...]`` of an
    ``nnx.Variable``), or call :func:`swish_sign`.

    >>> q = SwishSign(beta=2.0)
    >>> step = jax.jit(lambda x, b: jax.grad(lambda x: q(x, beta=b).sum())(x))
    >>> [float(step(jnp.array([0.0]), b)[0]) for b in (1.0, 3.0)]  # one compilation
    [1.0, 3.0]
    """

    name: ClassVar[str] = "swishsign"
    bit_width: ClassVar[int] = 1
    beta: float | None = None

    def __post_init__(self) -> None:
        beta = check_beta(config.beta if self.beta is None else self.beta, "swishsign")
        if is_traced(unwrap_variable(beta)):
            raise TypeError(
                "swishsign: a traced beta cannot be a field of SwishSign (the object is a "
                "static, hashable value); pass it at call time, q(x, beta=b), or call "
                "swish_sign(x, b)"
            )
        object.__setattr__(self, "beta", float(unwrap_variable(beta)))

    def quantize(self, x: jax.Array, beta: Any = None) -> jax.Array:
        """:func:`swish_sign` with ``beta`` (may be traced) or, if ``None``, this object's."""
        return swish_sign(x, self.beta if beta is None else beta)

    def __call__(self, x: jax.Array, beta: Any = None) -> jax.Array:
        """Quantize ``x`` (see :meth:`quantize`)."""
        return self.quantize(x, beta)
