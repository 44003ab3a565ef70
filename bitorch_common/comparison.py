"""The comparison core: two frameworks' forward values and gradients, element by element.

Rules (SPEC.md, "Parity"):

* NaN positions must be identical, forward and gradient.
* Discrete outputs must be equal exactly (``0.0 == -0.0``). A difference is a *boundary
  flip*, counted and shown but allowed, only where it earns the name: the pre-round
  value is computed inexactly (``tanh``, an inexact division), it lies within
  :data:`~bitorch_common.tolerances.FLIP_ULPS` ulps of a rounding boundary (``"zero"``:
  0, ``"half"``: ``k + 0.5``), and both results are one of the two levels either side
  of that boundary. Anything else is a failure whose message says which condition failed.
* Exactly specified gradients (pass-through, masks, polynomials computed in float32 and
  rounded once) must be bit-equal; transcendental ones may differ by the per-dtype
  :class:`~bitorch_common.tolerances.GradTolerance`; a non-finite value must be equal.

The parity command and both frameworks' unit tests (against the NumPy oracles) use this
one engine. Everything here is NumPy; :mod:`parity_tests.api` runs the frameworks.
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
    reason: str | None = None

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
        if self.reason:
            text += f" ({self.reason})"
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
    reasons: np.ndarray | str | None = None,
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
                reason=(
                    reasons
                    if reasons is None or isinstance(reasons, str)
                    else (str(reasons[idx]) or None)
                ),
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
    pre_round_exact: bool = False,
    level: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    exact_where: Callable[[np.ndarray], np.ndarray] | None = None,
    grad_exact: bool = False,
) -> SampleComparison:
    """Compare ``left = (y, grad)`` with ``right = (y, grad)`` for input ``x``, cotangent ``g``.

    Forward of a discrete output (``discrete=True``): values must be equal. A difference
    is a *boundary flip* (counted, allowed) only when all of these hold, else it fails
    with the reason named:

    * the pre-round value is computed inexactly (``pre_round_exact=False``; exact ones,
      such as the sign family's input itself or ``inputdorefa``'s single product, get no
      window at all), and not at an element where ``exact_where(x)`` says it is exact;
    * ``pre_round`` (an array of ``x``'s shape, or a function of ``x``, called only if
      some values differ) lies within :func:`flip_window` of a ``boundaries`` point;
    * both results are one of the two levels either side of that boundary: ``-1``/``+1``
      for ``"zero"``, ``level(k)``/``level(k + 1)`` for ``"half"`` (``level(k, dtype)``
      gives the output of rounded integer ``k``; without it this check is skipped).

    Gradients (and the forward of a non-discrete output): bit-equal when ``grad_exact``;
    otherwise within :class:`~bitorch_common.tolerances.GradTolerance` of the dtype, whose
    ``S`` is ``grad_scale`` (``None``: the largest ``|grad / g|`` of the left side, at
    least 1). NaN positions must be equal everywhere.

    >>> x = np.array([-1.0, 0.0, 2.0], np.float32)
    >>> y = np.sign(x); g = np.ones(3, np.float32)
    >>> compare_sample(x, g, (y, g), (y, g)).failures
    0
    """
    result = SampleComparison(elements=int(np.size(x)))
    (ya, ga), (yb, gb) = left, right
    for what, a, b in (("forward", ya, yb), ("gradient", ga, gb)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype:
            result.problems.append(f"{what} dtype: left {a.dtype}, right {b.dtype}")
        if a.shape != b.shape:
            result.problems.append(f"{what} shape: left {a.shape}, right {b.shape}")
        elif a.shape != np.shape(x):
            result.problems.append(f"{what} shape: both {a.shape}, input {np.shape(x)}")
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
        pre = None
        flips = np.zeros_like(differ)
        reasons: np.ndarray | str = (
            "no boundary is known for this output (no pre_round/boundaries given)"
        )
        if differ.any() and pre_round is not None and boundaries is not None:
            values = pre_round(x) if callable(pre_round) else pre_round
            pre = np.asarray(values, dtype=np.float64).reshape(np.shape(x))
            flips, reasons = classify_flips(
                x, ya, yb, differ, pre, boundaries,
                flip_scale=flip_scale, pre_round_exact=pre_round_exact, level=level,
                exact_where=exact_where,
            )  # fmt: skip
        bad = differ & ~flips
        result.flips = int(flips.sum())
        result.flip_list = _listed("flip", flips, sample, x, g, ya, yb, pre)
        fails += _listed("forward", bad, sample, x, g, ya, yb, pre, reasons=reasons)
        n_forward_bad = int(bad.sum())
    else:
        finite = np.isfinite(np.asarray(ya, np.float64)) & np.isfinite(np.asarray(yb, np.float64))
        if grad_exact:
            bad = differ
            allowed = None
        else:
            tol = grad_tolerance(dtype_name(np.asarray(ya).dtype))
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
    gdiffer = (gdiff != 0) & ~(gnan_a | gnan_b)
    if grad_exact:
        gbad = gdiffer
        result.grad_tolerance_used = float("inf") if gbad.any() else 0.0
        fails += _listed("gradient", gbad, sample, x, g, ga, gb, allowed=np.zeros(np.shape(x)))
    else:
        ga64, g64 = np.asarray(ga, np.float64), np.asarray(g, np.float64)
        if grad_scale is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                factors = np.abs(ga64 / g64)
            factors = factors[np.isfinite(factors)]
            grad_scale = max(1.0, float(factors.max()) if factors.size else 1.0)
        tol = grad_tolerance(dtype)
        allowed = tol.allowed(ga, gb, np.abs(g64) * grad_scale)
        gfinite = np.isfinite(ga64) & np.isfinite(np.asarray(gb, np.float64))
        gbad = gdiffer & ~(gfinite & (gdiff <= allowed))
        with np.errstate(invalid="ignore", divide="ignore"):
            used = np.where(gdiffer & gfinite, gdiff / allowed, 0.0)
        result.grad_tolerance_used = _max(used)
        fails += _listed("gradient", gbad, sample, x, g, ga, gb, allowed=allowed)

    result.failures = int(nan_bad.sum()) + n_forward_bad + int(gnan_bad.sum()) + int(gbad.sum())
    result.failure_list = fails
    return result


def classify_flips(
    x: np.ndarray,
    ya: np.ndarray,
    yb: np.ndarray,
    differ: np.ndarray,
    pre: np.ndarray,
    boundaries: str,
    *,
    flip_scale: float | None = None,
    pre_round_exact: bool = False,
    level: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    exact_where: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(flips, reasons)`` for the differing elements ``differ`` of a discrete output.

    ``flips`` marks the differences that are boundary flips (see :func:`compare_sample`);
    ``reasons`` holds, for every other differing element, why it is not one.
    """
    shape = np.shape(x)
    reasons = np.full(shape, "", dtype=object)
    if boundaries not in BOUNDARIES:
        raise ValueError(f"boundaries must be one of {BOUNDARIES}, got {boundaries!r}")
    if pre_round_exact:
        reasons[differ] = (
            "not a flip: the pre-round value is computed exactly (the same in every "
            "library), so no boundary window applies"
        )
        return np.zeros(shape, bool), reasons
    exact_here = np.zeros(shape, bool)
    if exact_where is not None:
        exact_here = np.asarray(exact_where(x), bool).reshape(shape)
    window = flip_window(pre, boundaries, x.dtype, flip_scale)
    near = flip_eligible(pre, boundaries, window)
    on_levels = np.ones(shape, bool)
    span = ""
    a64, b64 = np.asarray(ya, np.float64), np.asarray(yb, np.float64)
    if boundaries == "zero":
        on_levels = (np.abs(a64) == 1) & (np.abs(b64) == 1)
        span = "-1 and +1"
    elif level is not None:
        # The levels that rounding a value within the window of ``pre`` can give: from
        # round(pre - w) to round(pre + w). Below half a unit (every case but a pre-round
        # value too large for its dtype to hold fractions) that is the two levels either
        # side of the nearest boundary.
        with np.errstate(invalid="ignore"):
            p = np.where(np.isfinite(pre), pre, 0.0)
            k_lo = np.ceil(p - window - 0.5)
            k_hi = np.floor(p + window + 0.5)
        hit_a = np.zeros(shape, bool)
        hit_b = np.zeros(shape, bool)
        for step in range(int(np.max(k_hi - k_lo, initial=0)) + 1):
            k = np.minimum(k_lo + step, k_hi)
            lv = np.asarray(level(k, x.dtype), np.float64).reshape(shape)
            hit_a |= a64 == lv
            hit_b |= b64 == lv
        on_levels = hit_a & hit_b
        span = "levels {lo!r} .. {hi!r}"
        lo_levels = np.asarray(level(k_lo, x.dtype), np.float64).reshape(shape)
        hi_levels = np.asarray(level(k_hi, x.dtype), np.float64).reshape(shape)
    flips = differ & ~exact_here & near & on_levels
    with np.errstate(invalid="ignore"):
        nearest = 0.0 if boundaries == "zero" else np.floor(pre) + 0.5
        distance = np.abs(pre - nearest)
    for idx in zip(*np.nonzero(differ & ~flips), strict=True):
        if exact_here[idx]:
            reasons[idx] = "not a flip: the pre-round value is exact at this input"
        elif not near[idx]:
            b = 0.0 if boundaries == "zero" else float(np.floor(pre[idx]) + 0.5)
            reasons[idx] = (
                f"not a flip: the pre-round value is {float(distance[idx]):.3g} from the "
                f"nearest boundary {b:g}, outside the window {window:.3g}"
            )
        else:
            reach = span
            if boundaries == "half":
                reach = span.format(lo=float(lo_levels[idx]), hi=float(hi_levels[idx]))
            reasons[idx] = (
                "not a flip: a pre-round value within the window of a boundary rounds to "
                f"{reach}, and the two values are not both among them"
            )
    return flips, reasons
