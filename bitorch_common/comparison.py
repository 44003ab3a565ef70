"""The comparison core: two frameworks' forward values and gradients, element by element.

Rules (SPEC.md, "Parity"):

* NaN positions must be identical, forward and gradient.
* Discrete outputs must be equal exactly (``0.0 == -0.0``). A difference is a *boundary
  flip*, counted and shown but allowed, only where the element's pre-round value lies
  within :data:`~bitorch_common.tolerances.FLIP_ULPS` ulps of a rounding boundary
  (``"zero"``: 0, ``"half"``: ``k + 0.5``); anywhere else it is a failure.
* Gradients (and the forward of non-discrete functions) may differ by the per-dtype
  :class:`~bitorch_common.tolerances.GradTolerance`; a non-finite value must be equal.

Everything here is NumPy; :mod:`parity_tests.api` runs the frameworks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitorch_common.tolerances import (
    FLIP_ULPS,
    compute_dtype_name,
    dtype_name,
    grad_tolerance,
    smallest_normal,
    ulp,
)

__all__ = [
    "BOUNDARIES",
    "Element",
    "SampleComparison",
    "flip_window",
    "flip_eligible",
    "compare_sample",
    "MAX_LISTED",
    "json_safe",
]

BOUNDARIES = ("zero", "half")

#: How many differing elements a result keeps (and lists) per kind; the counts are exact.
MAX_LISTED = 10


def _f(v: Any) -> float:
    return float(np.asarray(v, dtype=np.float64))


@dataclass(frozen=True)
class Element:
    """One element the two sides disagree on (a failure) or a boundary flip.

    ``kind`` is ``"forward"``, ``"gradient"``, ``"forward NaN"``, ``"gradient NaN"`` or
    ``"flip"``; ``left``/``right`` are the two sides' values (torch and JAX, or CPU and GPU).
    """

    kind: str
    sample: int
    index: tuple[int, ...]
    input: float
    cotangent: float
    left: float
    right: float
    pre_round: float | None = None
    allowed: float | None = None

    def describe(self, left: str = "torch", right: str = "jax") -> str:
        """One line naming the element, its input and both values."""
        where = "[" + ", ".join(str(i) for i in self.index) + "]"
        if self.sample:
            where += f" of input array #{self.sample}"
        text = f"{self.kind} at {where}: input={self.input!r}"
        if self.kind.startswith("gradient"):
            text += f", cotangent={self.cotangent!r}"
        if self.pre_round is not None:
            text += f", pre-round={self.pre_round!r}"
        text += f", {left}={self.left!r}, {right}={self.right!r}"
        diff = abs(self.left - self.right)
        if np.isfinite(diff):
            text += f", |diff|={diff:.3g}"
        if self.allowed is not None:
            text += f" > allowed {self.allowed:.3g}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and inf as strings)."""
        return {k: json_safe(v) for k, v in self.__dict__.items()}


def json_safe(v: Any) -> Any:
    """``v`` with non-finite floats as strings and tuples as lists (for JSON)."""
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, tuple):
        return list(v)
    return v


@dataclass(kw_only=True)
class SampleComparison:
    """The outcome of comparing one input array. :class:`~parity_tests.report.ParityResult`
    extends it with the row's labels and folds samples into it."""

    elements: int = 0
    max_forward_diff: float = 0.0
    max_grad_diff: float = 0.0
    grad_tolerance_used: float = 0.0
    flips: int = 0
    failures: int = 0
    flip_list: list[Element] = field(default_factory=list)
    failure_list: list[Element] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def flip_window(
    pre_round: np.ndarray, boundaries: str, dtype: Any, flip_scale: float | None = None
) -> float:
    """Half-width of the flip window: ``K * max(ulp_c(scale), smallest normal of c)``.

    ``c`` is the compute dtype of ``dtype``. ``scale`` is ``flip_scale`` if given, else the
    largest finite ``|pre_round|`` for ``"half"`` boundaries and 0 for ``"zero"``. The floor
    of one smallest normal is the ulp at 0 where subnormals are flushed to zero.
    """
    if boundaries not in BOUNDARIES:
        raise ValueError(f"boundaries must be one of {BOUNDARIES}, got {boundaries!r}")
    c = compute_dtype_name(dtype)
    if flip_scale is None:
        finite = np.abs(pre_round[np.isfinite(pre_round)])
        flip_scale = float(finite.max()) if boundaries == "half" and finite.size else 0.0
    return FLIP_ULPS * max(float(ulp(flip_scale, c)), smallest_normal(c))


def flip_eligible(pre_round: np.ndarray, boundaries: str, window: float) -> np.ndarray:
    """Where a forward difference counts as a boundary flip (see :mod:`tolerances`)."""
    p = np.asarray(pre_round, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if boundaries == "zero":
            return np.isfinite(p) & (p != 0) & (np.abs(p) <= window)
        nearest = np.floor(p) + 0.5
        return np.isfinite(p) & (np.abs(p - nearest) <= window)


def _listed(
    kind: str,
    mask: np.ndarray,
    sample: int,
    x: np.ndarray,
    g: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    pre: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> list[Element]:
    out = []
    for flat in np.flatnonzero(mask)[:MAX_LISTED]:
        idx = np.unravel_index(flat, mask.shape) if mask.ndim else ()
        idx = tuple(int(i) for i in idx)
        out.append(
            Element(
                kind=kind,
                sample=sample,
                index=idx,
                input=_f(x[idx]),
                cotangent=_f(g[idx]),
                left=_f(a[idx]),
                right=_f(b[idx]),
                pre_round=None if pre is None else _f(pre[idx]),
                allowed=None if allowed is None else _f(allowed[idx]),
            )
        )
    return out


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` in float64, 0 where equal (so ``inf == inf`` gives 0, not NaN)."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a64 - b64)
    return np.where(a64 == b64, 0.0, d)


def _max(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.max()) if values.size else 0.0


def compare_sample(
    x: np.ndarray,
    g: np.ndarray,
    left: tuple[np.ndarray, np.ndarray],
    right: tuple[np.ndarray, np.ndarray],
    *,
    sample: int = 0,
    discrete: bool = True,
    pre_round: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    boundaries: str | None = None,
    flip_scale: float | None = None,
    grad_scale: float | None = None,
) -> SampleComparison:
    """Compare ``left = (y, grad)`` with ``right = (y, grad)`` for input ``x``, cotangent ``g``.

    ``pre_round`` (same shape as ``x``, or a function of ``x``, called only if some
    forward values differ) and ``boundaries`` enable boundary flips for a
    discrete output; without them every difference is a failure. ``grad_scale`` is ``S``
    of :class:`~bitorch_common.tolerances.GradTolerance`; ``None`` takes the largest
    ``|grad / g|`` of the left side (at least 1).

    >>> x = np.array([-1.0, 0.0, 2.0], np.float32)
    >>> y = np.sign(x); g = np.ones(3, np.float32)
    >>> compare_sample(x, g, (y, g), (y, g)).failures
    0
    """
    result = SampleComparison(elements=int(np.size(x)))
    (ya, ga), (yb, gb) = left, right
    for what, a, b in (("forward", ya, yb), ("gradient", ga, gb)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            result.problems.append(
                f"{what} differs in shape or dtype: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
            )
        elif a.shape != np.shape(x):
            result.problems.append(f"{what} shape {a.shape} is not the input's {np.shape(x)}")
    if result.problems:
        result.failures = len(result.problems)
        return result
    dtype = dtype_name(np.asarray(ga).dtype)

    # forward
    nan_a, nan_b = np.isnan(np.asarray(ya, np.float64)), np.isnan(np.asarray(yb, np.float64))
    nan_bad = nan_a != nan_b
    diff = _abs_diff(ya, yb)
    result.max_forward_diff = _max(np.where(nan_a | nan_b, np.nan, diff))
    differ = (diff != 0) & ~(nan_a | nan_b)
    fails = []
    fails += _listed("forward NaN", nan_bad, sample, x, g, ya, yb)
    if discrete:
        flips = np.zeros_like(differ)
        pre = None
        if pre_round is not None and boundaries is not None and differ.any():
            values = pre_round(x) if callable(pre_round) else pre_round
            pre = np.asarray(values, dtype=np.float64).reshape(np.shape(x))
            window = flip_window(pre, boundaries, x.dtype, flip_scale)
            flips = differ & flip_eligible(pre, boundaries, window)
        bad = differ & ~flips
        result.flips = int(flips.sum())
        result.flip_list = _listed("flip", flips, sample, x, g, ya, yb, pre)
        fails += _listed("forward", bad, sample, x, g, ya, yb, pre)
        n_forward_bad = int(bad.sum())
    else:
        tol = grad_tolerance(dtype_name(np.asarray(ya).dtype))
        finite = np.isfinite(np.asarray(ya, np.float64)) & np.isfinite(np.asarray(yb, np.float64))
        scale = _max(np.abs(np.where(finite, np.asarray(ya, np.float64), np.nan)))
        allowed = tol.allowed(ya, yb, scale)
        bad = differ & ~(finite & (diff <= allowed))
        fails += _listed("forward", bad, sample, x, g, ya, yb, allowed=allowed)
        n_forward_bad = int(bad.sum())

    # gradient
    gnan_a, gnan_b = np.isnan(np.asarray(ga, np.float64)), np.isnan(np.asarray(gb, np.float64))
    gdiff = _abs_diff(ga, gb)
    result.max_grad_diff = _max(np.where(gnan_a | gnan_b, np.nan, gdiff))
    gnan_bad = gnan_a != gnan_b
    fails += _listed("gradient NaN", gnan_bad, sample, x, g, ga, gb)
    ga64, g64 = np.asarray(ga, np.float64), np.asarray(g, np.float64)
    if grad_scale is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            factors = np.abs(ga64 / g64)
        factors = factors[np.isfinite(factors)]
        grad_scale = max(1.0, float(factors.max()) if factors.size else 1.0)
    tol = grad_tolerance(dtype)
    allowed = tol.allowed(ga, gb, np.abs(g64) * grad_scale)
    gfinite = np.isfinite(ga64) & np.isfinite(np.asarray(gb, np.float64))
    gdiffer = (gdiff != 0) & ~(gnan_a | gnan_b)
    gbad = gdiffer & ~(gfinite & (gdiff <= allowed))
    with np.errstate(invalid="ignore", divide="ignore"):
        used = np.where(gdiffer & gfinite, gdiff / allowed, 0.0)
    result.grad_tolerance_used = _max(used)
    fails += _listed("gradient", gbad, sample, x, g, ga, gb, allowed=allowed)

    result.failures = int(nan_bad.sum()) + n_forward_bad + int(gnan_bad.sum()) + int(gbad.sum())
    result.failure_list = fails
    return result
