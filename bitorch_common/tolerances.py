"""Every tolerance of the parity suite, in one place, each with the reason it has.

Three things are defined here and nowhere else:

* :data:`FLIP_ULPS` (``K``): how close to a rounding boundary an element's pre-round value
  must lie for a forward difference to count as a *boundary flip* instead of a failure;
* :data:`GRAD_TOLERANCES`: how far the two frameworks' input gradients may differ, per
  dtype, where a gradient is transcendental (swishsign); exactly specified gradients
  (every other built-in, see :data:`EXACT_GRAD_REASON`) and the forward of ``identity``
  must be bit-equal;
* :data:`LAYER_TOLERANCES`: the same for whole layers (used by the layer parity tests).

Discrete outputs have no tolerance at all: they must be equal, element for element.

>>> grad_tolerance("bfloat16").dtype_ulps
1.0
>>> layer_tolerance("float32").rtol
1e-05
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "FLIP_ULPS",
    "FLIP_REASON",
    "GradTolerance",
    "GRAD_TOLERANCES",
    "EXACT_GRAD_REASON",
    "grad_tolerance",
    "LayerTolerance",
    "LAYER_TOLERANCES",
    "layer_tolerance",
    "ModelTolerance",
    "MODEL_TOLERANCES",
    "model_tolerance",
    "DTYPES",
    "dtype_name",
    "compute_dtype_name",
    "ulp",
    "epsilon",
    "smallest_normal",
]

#: The dtypes the suite compares, in table order.
DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16")

FLIP_ULPS: int = 4
"""``K``: an element may flip only if its pre-round value lies within ``K`` ulps of a boundary."""

FLIP_REASON = (
    "A forward difference is a boundary flip only where it earns the name: (a) the value "
    "the quantizer rounds (its pre-round value) is computed inexactly, with tanh, max and "
    "an inexact division (weightdorefa), so the two libraries may differ by a few ulps of "
    "the compute dtype (float32 for halves); (b) it lies within the window of a rounding "
    "boundary; (c) both results are levels that rounding a value within that window can "
    f"give (the two levels either side of the boundary). K = {FLIP_ULPS} ulps covers tanh "
    "(<= 2 ulps in either library) plus the division and the multiplication by n, taken at "
    "the largest pre-round value of the array, because (t / 2m + 0.5) * n carries absolute "
    "errors of the size of n. Exact pre-round values get no window at all: the sign family "
    "thresholds the input itself, inputdorefa's clip(x, 0, 1) * n is one correctly rounded "
    "product whose ties round half to even in every library, and weightdorefa's value at "
    "x = 0 (and where tanh x is flushed to 0) is the exact tie n / 2."
)


def dtype_name(dtype: Any) -> str:
    """The canonical name (``float32``, ``bfloat16``, ...) of a NumPy, JAX or torch dtype.

    >>> dtype_name("torch.bfloat16"), dtype_name(np.float16)
    ('bfloat16', 'float16')
    """
    text = str(dtype)
    if text.startswith("torch."):
        text = text[len("torch.") :]
    try:
        name = np.dtype(ml_dtypes.bfloat16 if text == "bfloat16" else text).name
    except TypeError:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"not a dtype: {dtype!r}") from None
    if name not in DTYPES:
        raise ValueError(f"unsupported dtype {name!r}; supported: {', '.join(DTYPES)}")
    return name


def compute_dtype_name(dtype: Any) -> str:
    """float32 for float16/bfloat16 (SPEC: halves are computed in float32), else ``dtype``."""
    name = dtype_name(dtype)
    return "float32" if name in ("float16", "bfloat16") else name


def _finfo(dtype: Any) -> Any:
    name = dtype_name(dtype)
    return ml_dtypes.finfo(ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name))


def epsilon(dtype: Any) -> float:
    """The machine epsilon of ``dtype`` (distance from 1 to the next float)."""
    return float(_finfo(dtype).eps)


def smallest_normal(dtype: Any) -> float:
    """The smallest positive normal number of ``dtype``."""
    return float(_finfo(dtype).smallest_normal)


def ulp(values: Any, dtype: Any) -> np.ndarray:
    """Elementwise unit in the last place of ``dtype`` at the magnitude ``|values|``.

    The spacing of ``dtype`` floats around ``|v|`` (for a power of two, the spacing above
    it), as float64; below the smallest normal it is the subnormal spacing. Non-finite
    values give NaN.

    >>> float(ulp(1.0, "float32")) == 2.0**-23
    True
    """
    info = _finfo(dtype)
    a = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        _, exponent = np.frexp(a)  # a = m * 2**exponent, 0.5 <= m < 1
        unbiased = np.where(a == 0, info.minexp, np.maximum(exponent - 1, info.minexp))
        out = np.ldexp(1.0, unbiased - info.nmant)
    return np.where(np.isfinite(a), out, np.nan)


@dataclass(frozen=True)
class GradTolerance:
    """How far two gradients of one element may differ.

    ``allowed = dtype_ulps * ulp_dtype(max(|a|, |b|)) + scale_ulps * eps_c * |g| * S``

    where ``eps_c`` is the epsilon of the compute dtype (float32 for halves), ``g`` the
    element's cotangent and ``S`` the gradient scale: an upper bound of ``|dq/dx|`` (2 for
    approxsign, ``beta`` for swishsign, 1 for straight-through). The second term measures
    the error against the size of the terms the gradient is made of, not against the
    result, because ``2 - beta*x*tanh(beta*x/2)`` cancels where the swishsign gradient
    crosses zero and a small result there carries the absolute error of its big terms.
    """

    dtype: str
    dtype_ulps: float
    scale_ulps: float
    reason: str

    def allowed(self, a: np.ndarray, b: np.ndarray, scale: Any) -> np.ndarray:
        """Elementwise allowed ``|a - b|``; ``scale`` is ``|g| * S`` (broadcastable)."""
        mag = np.maximum(
            np.abs(np.asarray(a, dtype=np.float64)), np.abs(np.asarray(b, dtype=np.float64))
        )
        term1 = self.dtype_ulps * np.nan_to_num(ulp(mag, self.dtype), nan=0.0)
        eps_c = epsilon(compute_dtype_name(self.dtype))
        return term1 + self.scale_ulps * eps_c * np.asarray(scale, dtype=np.float64)


#: Why exactly specified gradients get no tolerance at all (``grad_exact`` rows).
EXACT_GRAD_REASON = (
    "Pass-through gradients (g itself), masks (g or 0) and approxsign's 2 - 2|x| are "
    "exact operations (or one correctly rounded operation) on the input and cotangent, "
    "computed in float32/float64 and rounded once to the dtype (SPEC), so every library "
    "gives the same bits: they must be bit-equal in every dtype."
)

_HALF_REASON = (
    "{d} is computed in float32 and rounded once at the end, in both frameworks (SPEC). "
    "The float32 results differ by at most the float32 tolerance (4 ulps of |g|*S); "
    "rounding each to {d} moves it by at most half an ulp of {d}, so the results may "
    "differ by 1 ulp of {d} plus that float32 difference."
)

#: Tolerances of transcendental gradients (rows with ``grad_exact=False``: swishsign),
#: per dtype. Measured on CPU over 1.2 million elements per dtype and beta (1, 5, 10),
#: torch against XLA: the largest float32 difference is 3.3 ulps of |g|*S, float64 3.0.
GRAD_TOLERANCES: dict[str, GradTolerance] = {
    "float32": GradTolerance(
        "float32",
        dtype_ulps=0.0,
        scale_ulps=4.0,
        reason=(
            "swishsign's gradient is built from tanh and cosh (XLA: exp), which torch "
            "(SLEEF/libm) and XLA (its own polynomials) implement differently, each within "
            "~2 ulps, and from a few more rounded operations that XLA may contract into "
            "FMAs. Measured: at most 3.3 ulps of the largest term |g|*S; allowed 4."
        ),
    ),
    "float64": GradTolerance(
        "float64",
        dtype_ulps=0.0,
        scale_ulps=4.0,
        reason=(
            "As float32, with float64 ulps: the same tanh/cosh implementation differences "
            "and FMA contraction. Measured: at most 3.0 ulps of |g|*S; allowed 4."
        ),
    ),
    "float16": GradTolerance(
        "float16", dtype_ulps=1.0, scale_ulps=4.0, reason=_HALF_REASON.format(d="float16")
    ),
    "bfloat16": GradTolerance(
        "bfloat16", dtype_ulps=1.0, scale_ulps=4.0, reason=_HALF_REASON.format(d="bfloat16")
    ),
}


def grad_tolerance(dtype: Any) -> GradTolerance:
    """The :class:`GradTolerance` of ``dtype`` (a name or a NumPy/JAX/torch dtype)."""
    return GRAD_TOLERANCES[dtype_name(dtype)]


@dataclass(frozen=True)
class LayerTolerance:
    """Tolerance for whole layers: pass ``rtol``/``atol`` to ``np.testing.assert_allclose``."""

    dtype: str
    rtol: float
    atol: float
    reason: str


_LAYER_REASON = (
    "A layer sums products (matmul, convolution, weight-gradient reductions); oneDNN/MKL "
    "in torch and Eigen/XLA in JAX block and order those sums differently and may use "
    "FMA, so results differ by roughly sqrt(n) * eps * sum|terms| for n terms. For fan-ins "
    "up to a few thousand and O(1) activations that is below {tol} (eps = {eps:.3g})."
)

LAYER_TOLERANCES: dict[str, LayerTolerance] = {
    "float32": LayerTolerance(
        "float32", 1e-5, 1e-5, _LAYER_REASON.format(tol="1e-5", eps=2.0**-23)
    ),
    "float64": LayerTolerance(
        "float64", 1e-12, 1e-12, _LAYER_REASON.format(tol="1e-12", eps=2.0**-52)
    ),
    "float16": LayerTolerance(
        "float16",
        2e-3,
        2e-3,
        "Halves are accumulated in float32 by both libraries and rounded once: 2 ulps of "
        "float16 (eps 2**-10) at 1 cover the rounding plus the float32 summation order.",
    ),
    "bfloat16": LayerTolerance(
        "bfloat16",
        2e-2,
        2e-2,
        "Halves are accumulated in float32 by both libraries and rounded once: 2.5 ulps "
        "of bfloat16 (eps 2**-7) at 1 cover the rounding plus the float32 summation order.",
    ),
}


def layer_tolerance(dtype: Any) -> LayerTolerance:
    """The :class:`LayerTolerance` of ``dtype`` (a name or a NumPy/JAX/torch dtype)."""
    return LAYER_TOLERANCES[dtype_name(dtype)]


# ---- whole networks (parity_tests.models, issue 12) ------------------------------------


@dataclass(frozen=True)
class ModelTolerance:
    """How far two frameworks' arrays of a whole network may differ, element by element.

    ``allowed = rtol * max(|a|, |b|) + array_rtol * A + tiny``, where ``A`` is the largest
    finite magnitude of the whole array (both sides) and ``tiny`` the smallest normal of
    the dtype: an element is judged against its own size and against the size of the
    array it belongs to, because an element that is small by cancellation (a gradient
    summed over a batch, an activation near 0 after BatchNorm) carries the absolute error
    of the big terms it was summed from. For a parameter gradient ``A`` is the largest
    gradient magnitude of its module (all of a module's parameter gradients are sums of
    the same output cotangents): a bias followed by a BatchNorm in train mode has a
    gradient that is 0 in exact arithmetic, so both frameworks return only rounding
    noise of the size of those cotangents, which its own (tiny) maximum cannot bound.
    For a BatchNorm ``running_mean`` ``A`` is at least the square root of the largest
    ``running_var`` of that BatchNorm: a batch mean that is 0 by cancellation (a BatchNorm
    after a linear map of zero-mean values) carries the rounding error of its summands,
    which are of the size of the batch's standard deviation.
    """

    dtype: str
    rtol: float
    array_rtol: float
    reason: str

    def allowed(self, a: Any, b: Any, scale: float | None = None) -> np.ndarray:
        """Elementwise allowed ``|a - b|`` (float64) for two arrays of one shape;
        ``scale`` replaces ``A`` when given (at least ``A`` is used)."""
        a = np.abs(np.asarray(a, dtype=np.float64))
        b = np.abs(np.asarray(b, dtype=np.float64))
        both = np.concatenate([a.reshape(-1), b.reshape(-1)])
        finite = both[np.isfinite(both)]
        largest = float(finite.max()) if finite.size else 0.0
        scale = largest if scale is None else max(float(scale), largest)
        with np.errstate(invalid="ignore"):
            mag = np.nan_to_num(np.maximum(a, b), nan=0.0, posinf=0.0)
        return self.rtol * mag + self.array_rtol * scale + smallest_normal(self.dtype)


_MODEL_REASON = (
    "Every layer of a network sums products (convolutions over k*k*C_in inputs, Linear "
    "layers, BatchNorm's batch mean and variance, weight gradients over batch and space); "
    "torch (oneDNN) and XLA (Eigen) order and block those sums differently and may use "
    "FMA, so each sum differs by about sqrt(n) * u * sum|terms| (u = {u:.3g}, the unit "
    "roundoff). The differences do not grow without bound through depth: a binary "
    "layer's output is an exact integer sum whenever its inputs quantize alike, so "
    "rounding differences restart at every full-precision layer, and BatchNorm rescales "
    "them by at most gamma / sqrt(var + eps). Gradients add the backward pass (the "
    "transposed sums) and the softmax of the loss. Measured on this suite (the small "
    "test pair, LeNet and ResnetE18, eval and train, every activation, logit, gradient "
    "and statistic): {measured}. Allowed: rtol {rtol:g} of the element plus {arr:g} of "
    "the array's largest magnitude, {margin}."
)

#: Measured (``parity_tests.models``, CPU, seeds 0-2; the needed tolerance is
#: max |diff| / (|element| + A) over every array): float64 4.7e-14 (LeNet, eval, the
#: BatchNorm1d(1000) weight gradient: a sum over the batch that cancels), 2.6e-15 on
#: ResnetE18, 3e-16 on the test pair; float32 5.8e-6 (the same LeNet array), 1.8e-6 on
#: ResnetE18, 4e-7 on the test pair.
MODEL_TOLERANCES: dict[str, ModelTolerance] = {
    "float64": ModelTolerance(
        "float64",
        rtol=1e-12,
        array_rtol=1e-12,
        reason=_MODEL_REASON.format(
            u=2.0**-53,
            measured="at most 4.7e-14 of (|element| + A), 2.6e-15 on ResnetE18",
            rtol=1e-12,
            arr=1e-12,
            margin="about 20 times the largest measured (rounding level: 4500 eps)",
        ),
    ),
    "float32": ModelTolerance(
        "float32",
        rtol=1e-4,
        array_rtol=1e-4,
        reason=_MODEL_REASON.format(
            u=2.0**-24,
            measured="at most 5.8e-6 of (|element| + A), 1.8e-6 on ResnetE18",
            rtol=1e-4,
            arr=1e-4,
            margin="about 17 times the largest measured",
        ),
    ),
}


def model_tolerance(dtype: Any) -> ModelTolerance:
    """The :class:`ModelTolerance` of ``dtype`` (float64 or float32: networks are compared
    in these two only); its ``reason`` states why, with the measured differences.

    >>> model_tolerance("float64").rtol <= 1e-9
    True
    """
    name = dtype_name(dtype)
    if name not in MODEL_TOLERANCES:
        raise ValueError(
            f"model_tolerance: networks are compared in float64 and float32 only, got {name}"
        )
    return MODEL_TOLERANCES[name]
