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

import ml_dtypes
import numpy as np

__all__ = ["Oracle", "oracle", "compute_dtype"]

_HALF = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for float16/bfloat16, else ``dtype``."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype in _HALF else dtype


def _up(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(compute_dtype(np.asarray(x).dtype))


def _sign(x: np.ndarray) -> np.ndarray:
    out = np.where(x >= 0, 1.0, -1.0)
    return np.where(np.isnan(x), np.nan, out).astype(x.dtype)


def _heaviside(x: np.ndarray) -> np.ndarray:
    out = np.where(x > 0, 1.0, -1.0)
    return np.where(np.isnan(x), np.nan, out).astype(x.dtype)


def _input_dorefa(x: np.ndarray, bits: int) -> np.ndarray:
    n = 2**bits - 1
    xf = _up(x)
    return (np.round(np.clip(xf, 0, 1) * n) / n).astype(x.dtype)


def _weight_dorefa_pre_round(x: np.ndarray, bits: int) -> np.ndarray:
    """``(t / (2m) + 0.5) * n`` in the compute dtype (empty for empty input)."""
    n = 2**bits - 1
    t = np.tanh(_up(x))
    t = np.where(np.abs(t) < np.finfo(t.dtype).tiny, t.dtype.type(0), t)  # subnormals -> 0
    if t.size == 0:
        return t
    m = np.max(np.abs(t))  # NaN-propagating
    denom = t.dtype.type(1) if m == 0 else 2 * m
    return (t / denom + t.dtype.type(0.5)) * t.dtype.type(n)


def _weight_dorefa(x: np.ndarray, bits: int) -> np.ndarray:
    n = 2**bits - 1
    pre = _weight_dorefa_pre_round(x, bits)
    return (2 * np.round(pre) / pre.dtype.type(n) - 1).astype(x.dtype)


def _pass(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.asarray(g).astype(x.dtype)


def _grad_approx_sign(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    a = np.abs(_up(x))
    gf = np.asarray(g).astype(a.dtype)
    with np.errstate(invalid="ignore"):
        return np.where(a > 1, 0, gf * (2 - 2 * a)).astype(x.dtype)


def _grad_swish_sign(x: np.ndarray, g: np.ndarray, beta: float) -> np.ndarray:
    xf = _up(x)
    b = xf.dtype.type(beta)
    gf = np.asarray(g).astype(xf.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        bx = b * xf
        factor = b * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))
        # beta*x overflowing (x = ±inf or huge) gives inf/inf; the limit there is 0.
        return np.where(np.isinf(bx), 0, gf * factor).astype(x.dtype)


def _grad_heaviside(x: np.ndarray, g: np.ndarray) -> np.ndarray:
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
    quantizer is not discrete (identity).
    """

    key: str
    params: dict
    forward: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    pre_round: Callable[[np.ndarray], np.ndarray] | None
    boundaries: str | None


def oracle(key: str, **params) -> Oracle:
    """The :class:`Oracle` of the built-in quantizer ``key`` with ``params``
    (``bits=`` for the DoReFa pair, ``beta=`` for ``swishsign``)."""
    bits = params.get("bits")
    beta = params.get("beta")
    if key == "sign":
        return Oracle(key, params, _sign, _pass, _up, "zero")
    if key == "approxsign":
        return Oracle(key, params, _sign, _grad_approx_sign, _up, "zero")
    if key == "swishsign":
        return Oracle(key, params, _sign, lambda x, g: _grad_swish_sign(x, g, beta), _up, "zero")
    if key == "steheaviside":
        return Oracle(key, params, _heaviside, _grad_heaviside, _up, "zero")
    if key == "inputdorefa":
        n = 2**bits - 1
        return Oracle(
            key,
            params,
            lambda x: _input_dorefa(x, bits),
            _pass,
            lambda x: np.clip(_up(x), 0, 1) * n,
            "half",
        )
    if key == "weightdorefa":
        return Oracle(
            key,
            params,
            lambda x: _weight_dorefa(x, bits),
            _pass,
            lambda x: _weight_dorefa_pre_round(x, bits),
            "half",
        )
    if key == "identity":
        return Oracle(key, params, lambda x: np.array(x, copy=True), _pass, None, None)
    raise KeyError(f"no NumPy oracle for {key!r}")
