"""NumPy closed-form oracles of every built-in quantizer: forward ``q(x)`` and input gradient.

These restate SPEC.md's formulas in plain NumPy, independently of both frameworks, so the
unit tests of ``bitorch`` and ``bitorch_jax`` and the parity suite check against the same
ground truth. Finite differences are meaningless for a straight-through estimator; these
closed forms are the reference instead.

Every function takes a NumPy array of float16, bfloat16 (``ml_dtypes``), float32 or
float64 and follows SPEC.md's precision rule: half precision is computed in float32 and
rounded once at the end. ``grad_*`` functions take the output cotangent ``g`` as well.
``pre_round_*`` functions give the value just before the discrete step (rounding or the
sign threshold), used to recognise boundary flips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["Oracle", "oracle", "compute_dtype"]  # and the closed forms below

_HALF = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def compute_dtype(dtype: Any) -> np.dtype:
    """float32 for float16/bfloat16, else ``dtype``."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype in _HALF else dtype


def _up(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(compute_dtype(np.asarray(x).dtype))


def as_compute(x: np.ndarray, **_: Any) -> np.ndarray:
    """``x`` in its compute dtype: the pre-round value of the sign family (the input)."""
    return _up(x)


def sign_forward(x: np.ndarray) -> np.ndarray:
    """``+1`` where ``x >= 0`` (so ``0`` and ``-0.0`` give ``+1``), ``-1`` below, NaN kept."""
    out = np.where(x >= 0, 1.0, -1.0)
    return np.where(np.isnan(x), np.nan, out).astype(x.dtype)


def heaviside_forward(x: np.ndarray) -> np.ndarray:
    """``+1`` where ``x > 0``, ``-1`` elsewhere (so ``0`` gives ``-1``), NaN kept."""
    out = np.where(x > 0, 1.0, -1.0)
    return np.where(np.isnan(x), np.nan, out).astype(x.dtype)


def input_dorefa_pre_round(x: np.ndarray, bits: int) -> np.ndarray:
    """``clip(x, 0, 1) * n`` in the compute dtype: one correctly rounded product."""
    xf = _up(x)
    return np.clip(xf, 0, 1) * xf.dtype.type(2**bits - 1)


def input_dorefa_level(k: np.ndarray, dtype: Any, bits: int) -> np.ndarray:
    """The output of rounded integer ``k``: ``k / n`` in the compute dtype, cast to ``dtype``."""
    c = compute_dtype(dtype)
    return (np.asarray(k).astype(c) / c.type(2**bits - 1)).astype(dtype)


def input_dorefa_forward(x: np.ndarray, bits: int) -> np.ndarray:
    """``round(clip(x, 0, 1) * n) / n``, round half to even."""
    return input_dorefa_level(np.round(input_dorefa_pre_round(x, bits)), x.dtype, bits)


def input_dorefa_ties(bits: int) -> tuple[float, ...]:
    """Inputs whose pre-round value is exactly a half-way tie ``k + 0.5`` (some of them)."""
    n = 2**bits - 1
    return tuple(sorted({(k + 0.5) / n for k in (0, n // 2, n - 1)}))


def weight_dorefa_pre_round(x: np.ndarray, bits: int) -> np.ndarray:
    """``(t / (2m) + 0.5) * n`` in the compute dtype (empty for empty input)."""
    n = 2**bits - 1
    t = np.tanh(_up(x))
    t = np.where(np.abs(t) < np.finfo(t.dtype).tiny, t.dtype.type(0), t)  # subnormals -> 0
    if t.size == 0:
        return t
    m = np.max(np.abs(t))  # NaN-propagating
    denom = t.dtype.type(1) if m == 0 else 2 * m
    return (t / denom + t.dtype.type(0.5)) * t.dtype.type(n)


def weight_dorefa_exact(x: np.ndarray) -> np.ndarray:
    """Where weightdorefa's pre-round value is exact in every library: ``tanh`` of a value
    below the smallest normal is that value or 0, both flushed to 0, and ``0 / 2m + 0.5``
    times ``n`` is the exact tie ``n / 2``, which rounds half to even everywhere."""
    xf = _up(x)
    with np.errstate(invalid="ignore"):
        return np.abs(xf) < np.finfo(xf.dtype).tiny


def weight_dorefa_level(k: np.ndarray, dtype: Any, bits: int) -> np.ndarray:
    """The output of rounded integer ``k``: ``2k / n - 1`` in the compute dtype, cast."""
    c = compute_dtype(dtype)
    return (2 * np.asarray(k).astype(c) / c.type(2**bits - 1) - 1).astype(dtype)


def weight_dorefa_forward(x: np.ndarray, bits: int) -> np.ndarray:
    """``2 * round((t / (2m) + 0.5) * n) / n - 1`` with ``t = tanh x``, ``m = max|t|``."""
    pre = weight_dorefa_pre_round(x, bits)
    return weight_dorefa_level(np.round(pre), x.dtype, bits)


def identity_forward(x: np.ndarray) -> np.ndarray:
    """``x`` itself (a copy)."""
    return np.array(x, copy=True)


def pass_through(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The straight-through gradient: ``g`` in the input's dtype."""
    return np.asarray(g).astype(x.dtype)


def approx_sign_grad(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g * (2 - 2|x|)`` where ``|x| <= 1``, else 0; NaN where ``x`` is NaN."""
    a = np.abs(_up(x))
    gf = np.asarray(g).astype(a.dtype)
    with np.errstate(invalid="ignore"):
        return np.where(a > 1, 0, gf * (2 - 2 * a)).astype(x.dtype)


def swish_sign_grad(x: np.ndarray, g: np.ndarray, beta: float) -> np.ndarray:
    """``g * beta*(2 - beta*x*tanh(beta*x/2)) / (1 + cosh(beta*x))``; 0 where ``beta*x``
    overflows (the limit), NaN where ``x`` is NaN."""
    xf = _up(x)
    b = xf.dtype.type(beta)
    gf = np.asarray(g).astype(xf.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        bx = b * xf
        factor = b * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))
        # beta*x overflowing (x = ±inf or huge) gives inf/inf; the limit there is 0.
        return np.where(np.isinf(bx), 0, gf * factor).astype(x.dtype)


def heaviside_grad(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g`` where ``|x| <= 1``, else 0; NaN where ``x`` is NaN."""
    gf = np.asarray(g).astype(x.dtype)
    with np.errstate(invalid="ignore"):
        out = np.where(np.abs(x) <= 1, gf, np.zeros_like(gf))
    return np.where(np.isnan(x), np.nan, out).astype(x.dtype)


@dataclass(frozen=True)
class Oracle:
    """Closed forms of one quantizer with fixed hyperparameters.

    ``forward(x)``, ``grad(x, g)``; ``pre_round(x)`` is the value that the discrete step
    acts on and ``boundaries`` says where that step jumps: ``"zero"`` (sign-like, jump at
    0) or ``"half"`` (round half to even, jumps at ``k + 0.5``); ``None`` when the
    quantizer is not discrete (identity). ``level(k, dtype)`` is the output value of the
    rounded integer ``k`` (``"half"`` boundaries).
    """

    key: str
    params: dict
    forward: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    pre_round: Callable[[np.ndarray], np.ndarray] | None
    boundaries: str | None
    level: Callable[[np.ndarray, Any], np.ndarray] | None = None


def oracle(key: str, **params: Any) -> Oracle:
    """The :class:`Oracle` of the quantizer-table row ``key`` with ``params``
    (``bits=`` for the DoReFa pair, ``beta=`` for ``swishsign``).

    >>> oracle("inputdorefa", bits=2).forward(np.array([0.3, 0.5], np.float32))
    array([0.33333334, 0.6666667 ], dtype=float32)
    """
    from bitorch_common.quantizers import row

    return row(key).oracle(params)
