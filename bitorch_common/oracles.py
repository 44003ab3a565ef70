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
    """``g * (2 - 2|x|)`` where ``|x| <= 1``, else ``g * 0``; NaN where ``x`` is NaN."""
    a = np.abs(_up(x))
    gf = np.asarray(g).astype(a.dtype)
    with np.errstate(invalid="ignore"):
        # g times the factor 2 - 2 min(|x|, 1) (NaN kept): an infinite g where the
        # factor is 0 gives NaN, as in bitorch 0.4.1.
        return (gf * (2 - 2 * np.minimum(a, 1))).astype(x.dtype)


def swish_sign_grad(x: np.ndarray, g: np.ndarray, beta: float) -> np.ndarray:
    """``g * beta*(2 - beta*x*tanh(beta*x/2)) / (1 + cosh(beta*x))``; 0 where ``beta*x``
    overflows (the limit), NaN where ``x`` is NaN."""
    xf = _up(x)
    b = xf.dtype.type(beta)
    gf = np.asarray(g).astype(xf.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        bx = b * xf
        denominator = 1 + np.cosh(bx)
        factor = b * (2 - bx * np.tanh(bx / 2)) / denominator
        # Where cosh(beta*x) overflows (x = ±inf or merely large) the factor is 0 in the
        # compute dtype (the limit; the numerator may overflow too, giving inf/inf).
        return np.where(np.isinf(denominator), 0, gf * factor).astype(x.dtype)


def heaviside_grad(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g`` where ``|x| <= 1``, else ``g * 0``; NaN where ``x`` is NaN."""
    gf = np.asarray(g).astype(x.dtype)
    with np.errstate(invalid="ignore"):
        factor = np.where(np.isnan(x), np.nan, np.where(np.abs(x) <= 1, 1.0, 0.0))
        return (gf * factor.astype(x.dtype)).astype(x.dtype)


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


# --------------------------------------------------------------------------- progressive_sign
# Appended after oracle() so as not to disturb the closed forms above; ``progressive_sign``
# rows pass bitorch 0.4.1's constructor arguments (an explicit scale, use_global_scaling
# False) plus the mode, ``training``.

#: bitorch 0.4.1's smallest divisor of ProgressiveSign.
PROGRESSIVE_SIGN_EPSILON = 1e-7


def progressive_sign_divisor(scale: float, alpha: float, beta: float) -> float:
    """``max(1 - t, 1e-7)`` with ``t = 1 - alpha**(-beta * scale)``, in Python float
    (float64) arithmetic, as both frameworks compute it for a concrete scale."""
    temperature = 1 - alpha ** (-beta * scale)
    return max(1.0 - temperature, PROGRESSIVE_SIGN_EPSILON)


def progressive_sign_forward(
    x: np.ndarray,
    *,
    use_global_scaling: bool = False,
    initial_scale: float | None = None,
    alpha: float = 4.0,
    beta: float = 10.0,
    training: bool = True,
) -> np.ndarray:
    """Training: ``clip(x / d, -1, 1)`` with ``d`` :func:`progressive_sign_divisor` rounded
    to the compute dtype; inputs and quotients below the smallest normal of the compute
    dtype are zeros of their sign; NaN stays NaN, ``±inf`` gives ``±1``. Eval: the sign.
    ``initial_scale=None`` (or global scaling) is the config's default scale, 0."""
    if not training:
        return sign_forward(x)
    scale = 0.0 if use_global_scaling or initial_scale is None else initial_scale
    xf = _up(x)
    tiny = np.finfo(xf.dtype).tiny
    with np.errstate(invalid="ignore", over="ignore"):
        xf = np.where(np.abs(xf) < tiny, xf * 0, xf)
        y = np.clip(xf / xf.dtype.type(progressive_sign_divisor(scale, alpha, beta)), -1, 1)
        y = np.where(np.abs(y) < tiny, y * 0, y)
    return y.astype(x.dtype)


def progressive_sign_edges(
    *,
    use_global_scaling: bool = False,
    initial_scale: float | None = None,
    alpha: float = 4.0,
    beta: float = 10.0,
    training: bool = True,
) -> tuple[float, ...]:
    """Inputs where hardtanh starts to clip (``±d``) and half-way there (``±d / 2``)."""
    scale = 0.0 if use_global_scaling or initial_scale is None else initial_scale
    d = progressive_sign_divisor(scale, alpha, beta)
    return (d, -d, d / 2, -d / 2)


# --------------------------------------------------------------------------- beyond 0.4.1
# SteSign, MagnitudeAwareSign, XnorScaled, SteTernary and LarqDoReFa (SPEC.md, "Quantizers
# beyond bitorch 0.4.1"). Appended; the per-channel statistic is the one both frameworks
# compute: mean|x| with a fixed pairwise summation order, so it is exact (bit for bit).


def _scalar(value: float, dtype: Any) -> Any:
    """``value`` rounded to the compute dtype of ``dtype`` (a NumPy scalar)."""
    return compute_dtype(dtype).type(value)


def clip_mask(x: np.ndarray, clip_value: float) -> np.ndarray:
    """``|x| <= clip_value`` with the bound rounded to the compute dtype; False at NaN."""
    xf = _up(x)
    with np.errstate(invalid="ignore"):
        return np.abs(xf) <= _scalar(clip_value, xf.dtype)


def clip_factor(x: np.ndarray, clip_value: float) -> np.ndarray:
    """The clipped STE's factor in the compute dtype: 1 where ``|x| <= clip_value``
    (inclusive), 0 beyond, NaN where ``x`` is NaN."""
    xf = _up(x)
    factor = np.where(clip_mask(x, clip_value), xf.dtype.type(1), xf.dtype.type(0))
    return np.where(np.isnan(xf), xf.dtype.type(np.nan), factor)


def ste_sign_grad(x: np.ndarray, g: np.ndarray, clip_value: float = 1.0) -> np.ndarray:
    """``g`` times the factor of :func:`clip_factor` (a product: ``inf * 0`` is NaN)."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(g).astype(_up(x).dtype) * clip_factor(x, clip_value)).astype(x.dtype)


def ste_sign_edges(clip_value: float = 1.0, **_: Any) -> tuple[float, ...]:
    """The gradient's clip points ``±clip_value`` and half-way there (finite clips only)."""
    if not np.isfinite(clip_value):
        return ()
    return (clip_value, -clip_value, clip_value / 2, -clip_value / 2)


def pairwise_row_sums(rows: np.ndarray) -> np.ndarray:
    """The sum of each row of a 2-d array in the fixed pairwise order both frameworks use.

    With ``k`` columns and ``h`` the largest power of two below ``k``: the first ``k - h``
    columns get the last ``k - h`` added, which leaves ``h`` columns; then the right half
    is added to the left half until one column is left. Every step is an elementwise IEEE
    addition, so the result does not depend on the library (no reduction order).
    """
    k = rows.shape[1]
    if k == 1:
        return rows[:, 0]
    h = 1 << ((k - 1).bit_length() - 1)
    s = np.concatenate([rows[:, : k - h] + rows[:, h:], rows[:, k - h : h]], axis=1)
    while s.shape[1] > 1:
        w = s.shape[1] // 2
        s = s[:, :w] + s[:, w:]
    return s[:, 0]


def channel_mean_abs(x: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """``alpha = mean|x|`` per output channel (over every axis but ``channel_axis``) in the
    compute dtype, shaped to broadcast against ``x``; one value for the whole tensor when
    ``channel_axis`` is None or ``x`` has fewer than 2 dimensions. ``|x|`` below the
    smallest normal number is taken as 0, and so is a mean below it (XLA flushes both);
    a NaN makes its channel's alpha NaN, an infinity (or an overflowing sum) ``inf``."""
    a = np.abs(_up(x))
    tiny = np.finfo(a.dtype).tiny
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.where(a < tiny, a.dtype.type(0), a)
        if channel_axis is None or a.ndim < 2:
            rows, shape = a.reshape(1, -1), (1,) * a.ndim
        else:
            axis = channel_axis % a.ndim
            rows = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)
            shape = tuple(a.shape[axis] if i == axis else 1 for i in range(a.ndim))
        mean = pairwise_row_sums(rows) / a.dtype.type(rows.shape[1])
        mean = np.where(mean < tiny, a.dtype.type(0), mean)
    return mean.reshape(shape)


def scaled_sign_forward(x: np.ndarray, channel_axis: int | None = 0, **_: Any) -> np.ndarray:
    """``alpha * sign(x)`` (``sign(0) = +1``), computed in the compute dtype, rounded once."""
    if x.size == 0:
        return x.copy()
    alpha = channel_mean_abs(x, channel_axis)
    with np.errstate(invalid="ignore"):
        return (alpha * _up(sign_forward(x))).astype(x.dtype)


def magnitude_aware_sign_grad(
    x: np.ndarray, g: np.ndarray, clip_value: float = 1.0, channel_axis: int | None = 0
) -> np.ndarray:
    """``(g * alpha)`` (rounded once) times the factor of :func:`clip_factor`: ``g * alpha``
    where ``|x| <= clip_value``, 0 beyond, NaN where ``x`` is NaN (and ``inf * 0``, a NaN
    ``alpha`` times 0, are NaN)."""
    if x.size == 0:
        return np.asarray(g).astype(x.dtype)
    alpha = channel_mean_abs(x, channel_axis)
    gf = np.asarray(g).astype(alpha.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return ((gf * alpha) * clip_factor(x, clip_value)).astype(x.dtype)


def xnor_scaled_grad(x: np.ndarray, g: np.ndarray, channel_axis: int | None = 0) -> np.ndarray:
    """``g * alpha`` everywhere (the sign's pass-through gradient, scaled)."""
    if x.size == 0:
        return np.asarray(g).astype(x.dtype)
    alpha = channel_mean_abs(x, channel_axis)
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.asarray(g).astype(alpha.dtype) * alpha).astype(x.dtype)


def ternary_delta(x: np.ndarray, threshold: float | None, twn: bool) -> Any:
    """The threshold in the compute dtype: ``threshold``, or ``threshold * mean|x|`` over
    the whole tensor (``twn``; the factor rounded to the compute dtype), taken as 0 below
    the smallest normal number. ``None``: 0.05, or 0.7 (TWN's factor) with ``twn``."""
    from bitorch_common.validation import check_ternary_threshold

    threshold, twn = check_ternary_threshold(threshold, twn, "oracle")
    c = compute_dtype(x.dtype)
    if not twn:
        return c.type(threshold)
    with np.errstate(invalid="ignore", over="ignore"):
        delta = c.type(threshold) * channel_mean_abs(x, None).reshape(())
        return c.type(0) if delta < np.finfo(c).tiny else delta


def ste_ternary_forward(
    x: np.ndarray, threshold: float | None = None, twn: bool = False, clip_value: float = 1.0
) -> np.ndarray:
    """``+1`` where ``x > delta``, ``-1`` where ``x < -delta``, ``+0`` where ``|x| <= delta``;
    NaN kept; a NaN threshold (a NaN anywhere, with ``twn``) makes every output NaN."""
    if x.size == 0:
        return x.copy()
    xf = _up(x)
    delta = ternary_delta(x, threshold, twn)
    with np.errstate(invalid="ignore"):
        out = np.where(np.abs(xf) > delta, np.where(np.signbit(xf), -1.0, 1.0), 0.0)
    out = np.where(np.isnan(xf) | np.isnan(delta), np.nan, out)
    return out.astype(x.dtype)


def ste_ternary_pre_round(x: np.ndarray, **_: Any) -> np.ndarray:
    """The input in its compute dtype: the steps at ``±delta`` are exact comparisons of it
    with a threshold that both frameworks compute bit for bit (no flip is allowed)."""
    return _up(x)


def ste_ternary_edges(
    threshold: float | None = None, twn: bool = False, clip_value: float = 1.0
) -> tuple[float, ...]:
    """The fixed threshold ``±delta`` and the gradient's clip points."""
    from bitorch_common.validation import DEFAULT_TERNARY_THRESHOLD

    edges = ste_sign_edges(clip_value)
    if not twn:
        t = DEFAULT_TERNARY_THRESHOLD if threshold is None else threshold
        edges = (t, -t, *edges)
    return edges


def larq_dorefa_grad(x: np.ndarray, g: np.ndarray, bits: int) -> np.ndarray:
    """``g * (1 - t**2) / m`` with ``t = tanh x`` (subnormal ``t`` taken as 0) and
    ``m = max|t|``, a constant for the gradient; ``m = 0`` (all-zero input) gives
    ``g * (1 - t**2) / 0.5``, the derivative of the ``t / 1`` that the forward uses then.
    ``1 - t**2`` is evaluated as ``4e / (1 + e)**2`` with ``e = exp(-2|x|)``, as both
    frameworks do. A NaN anywhere makes ``m`` and so every gradient NaN."""
    xf = _up(x)
    t = np.tanh(xf)
    t = np.where(np.abs(t) < np.finfo(t.dtype).tiny, t.dtype.type(0), t)
    if t.size == 0:
        return np.asarray(g).astype(x.dtype)
    m = np.max(np.abs(t))
    h = t.dtype.type(0.5) if m == 0 else m
    gf = np.asarray(g).astype(t.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(-2 * np.abs(xf))
        factor = (4 * e) / ((1 + e) * (1 + e) * h)
        return (factor * gf).astype(x.dtype)
