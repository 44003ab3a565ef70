"""Argument checks shared by ``bitorch`` and ``bitorch_jax``, written once.

Every check takes the value and ``where`` (the quantizer or layer that received it, for
the message) and returns the value normalised to a Python type, or raises with a message
that names ``where``, the argument and what is wrong. The exception types are the same in
both frameworks (SPEC.md, error policy): a value of the wrong *type* is a ``TypeError``,
a value of the right type outside its range a ``ValueError``. NumPy scalars are accepted
wherever Python numbers are (``np.int64`` features, a ``np.float32`` threshold); ``bool``
never counts as a number. Nothing here imports torch or JAX.

>>> check_bits(np.int64(4), "inputdorefa")
4
>>> check_threshold(np.float32(0.5), "QActivation")
0.5
>>> check_bits(True, "inputdorefa")
Traceback (most recent call last):
...
TypeError: inputdorefa: bits must be an int, got bool True
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "MAX_BITS",
    "is_int",
    "is_real",
    "check_bits",
    "check_beta",
    "check_threshold",
    "check_pad_value",
    "check_positive_int",
    "check_non_negative_real",
    "spatial_tuple",
    "check_kernel_size",
    "explicit_padding",
    "same_padding",
    "check_bool",
    "check_unit_scale",
    "check_progressive_alpha",
    "check_positive_real",
    "check_temperature",
    "GlobalScalingConflict",
    "check_scale_source",
]

#: Largest supported bit width: ``2**24 - 1`` levels are still exact in float32.
MAX_BITS = 24


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not ``bool`` (nor ``np.bool_``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A Python or NumPy real number (int or float), not ``bool`` (nor ``np.bool_``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_bits(bits: Any, where: str) -> int:
    """A bit width: an integer (Python or NumPy, not ``bool``) in ``1..24``."""
    if not is_int(bits):
        raise TypeError(f"{where}: bits must be an int, got {_type_name(bits)} {bits!r}")
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"{where}: bits must be in 1..{MAX_BITS}, got {bits}")
    return int(bits)


def check_beta(beta: Any, where: str) -> Any:
    """SwishSign's ``beta``: a real number (Python or NumPy scalar), finite and ``> 0``.

    A 0-d JAX array (see :func:`read_scalar`) is checked by the same rules and returned
    as a float, an ``nnx.Variable`` holding one as the variable itself; a traced one is
    returned unchecked (its rule is enforced at run time, SPEC.md "Traced
    hyperparameters").
    """
    value = read_scalar(beta, "beta", where)
    if value is TRACED:
        return beta
    if not is_real(value):
        raise TypeError(f"{where}: beta must be a real number, got {_type_name(beta)} {beta!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: beta must be finite and > 0, got {float(value)!r}")
    return beta if unwrap_variable(beta) is not beta else float(value)


def check_non_negative_real(value: Any, name: str, where: str) -> float:
    """A real number, finite and ``>= 0``."""
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a real number, got {_type_name(value)}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where}: {name} must be finite and >= 0, got {float(value)!r}")
    return float(value)


# --------------------------------------------------------------------------- traced hyperparameters
# A float hyperparameter of bitorch_jax may be a 0-d JAX array, also a traced one (an
# annealing schedule that compiles once; SPEC.md "Traced hyperparameters"). These helpers
# read such a value for the checks above without importing JAX or flax: a JAX tracer or a
# flax variable can only exist once those are imported, so they are looked up in
# ``sys.modules``.


class _Traced:
    """The type of :data:`TRACED`."""

    def __repr__(self) -> str:
        return "TRACED"


#: What :func:`read_scalar` returns for a traced value: it has no value to check yet.
TRACED = _Traced()


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (an abstract value inside ``jit``/``grad``...)."""
    jax = sys.modules.get("jax")
    tracer = getattr(getattr(jax, "core", None), "Tracer", None)
    return tracer is not None and isinstance(value, tracer)


def is_jax_array(value: Any) -> bool:
    """Whether ``value`` is a JAX array, concrete or traced."""
    jax = sys.modules.get("jax")
    array = getattr(jax, "Array", None)
    return array is not None and isinstance(value, array)


def unwrap_variable(value: Any) -> Any:
    """The value held by a flax ``nnx.Variable``; anything else unchanged."""
    nnx = sys.modules.get("flax.nnx")
    variable = getattr(nnx, "Variable", None)
    if variable is not None and isinstance(value, variable):
        return value.get_value()
    return value


def read_scalar(value: Any, name: str, where: str) -> Any:
    """A hyperparameter as the checks see it.

    A JAX array (also one held by an ``nnx.Variable``) must be 0-d with an integer or
    floating dtype (else ``TypeError``): a concrete one is returned as its NumPy scalar,
    a traced one as :data:`TRACED`. Anything else (a Python or NumPy scalar, also a NumPy
    ``ndarray``, which the checks refuse as before) is returned unchanged.

    >>> read_scalar(0.5, "threshold", "QActivation")
    0.5
    """
    inner = unwrap_variable(value)
    if not is_jax_array(inner):
        return inner
    dtype = np.dtype(inner.dtype)
    if tuple(inner.shape) != () or dtype.kind not in "iuf":
        raise TypeError(
            f"{where}: {name} must be a real number or a 0-d real array, got "
            f"{_type_name(inner)} of shape {tuple(inner.shape)} and dtype {dtype}"
        )
    if is_traced(inner):
        return TRACED
    return np.asarray(inner)[()]


def check_threshold(threshold: Any, where: str) -> Any:
    """A gradient-cancellation threshold: a real number, finite and ``>= 0`` (0 = off).

    A 0-d JAX array (see :func:`read_scalar`) is checked by the same rules and returned
    as a float; an ``nnx.Variable`` holding one is returned as the variable itself (a
    layer keeps it as state); a traced one is returned unchecked (its rule is enforced at
    run time, SPEC.md "Traced hyperparameters").
    """
    value = read_scalar(threshold, "gradient_cancellation_threshold", where)
    if value is TRACED:
        return threshold
    if not is_real(value):
        raise TypeError(
            f"{where}: gradient_cancellation_threshold must be a real number, "
            f"got {_type_name(threshold)}"
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"{where}: gradient_cancellation_threshold must be finite and >= 0 (0 turns "
            f"cancellation off), got {float(value)!r}"
        )
    return threshold if unwrap_variable(threshold) is not threshold else float(value)


def check_pad_value(pad_value: Any, where: str) -> float:
    """The constant a quantized input is padded with: a finite real number."""
    if not is_real(pad_value):
        raise TypeError(f"{where}: pad_value must be a real number, got {_type_name(pad_value)}")
    if not math.isfinite(pad_value):
        raise ValueError(f"{where}: pad_value must be finite, got {float(pad_value)!r}")
    return float(pad_value)


def check_positive_int(value: Any, name: str, where: str) -> int:
    """An integer (Python or NumPy, not ``bool``) ``>= 1``, such as a feature count."""
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {_type_name(value)} {value!r}")
    if value < 1:
        raise ValueError(f"{where}: {name} must be >= 1, got {value!r}")
    return int(value)


def spatial_tuple(value: Any, n: int, name: str, where: str, *, minimum: int) -> tuple[int, ...]:
    """An int (repeated ``n`` times) or a sequence of ``n`` ints, each ``>= minimum``."""
    values = (value,) * n if is_int(value) else value
    if (
        isinstance(values, str)
        or not isinstance(values, Sequence)
        or len(values) != n
        or not all(is_int(v) for v in values)
    ):
        raise TypeError(f"{where}: {name} must be an int or {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def check_kernel_size(kernel_size: Any, where: str) -> tuple[int, ...]:
    """A sequence of ints ``>= 1``, one per spatial dimension (a bare int is ambiguous)."""
    if is_int(kernel_size) or isinstance(kernel_size, str) or not isinstance(kernel_size, Sequence):
        raise TypeError(
            f"{where}: kernel_size must be a tuple of ints, one per spatial dimension "
            f"(e.g. (3,) for 1-d, (3, 3) for 2-d), got {kernel_size!r}"
        )
    return spatial_tuple(tuple(kernel_size), len(kernel_size), "kernel_size", where, minimum=1)


def explicit_padding(
    padding: Any,
    kernel_size: Sequence[int],
    dilation: Sequence[int],
    stride: Sequence[int],
    where: str,
    spatial: Sequence[int] | None = None,
) -> tuple[tuple[int, int], ...] | None:
    """``(before, after)`` per spatial dimension, for both frameworks' quantized convolutions.

    ``padding`` is one int ``>= 0``, ``n`` ints (symmetric), ``n`` ``(before, after)``
    pairs, or ``"same"``/``"valid"`` in any case. ``"same"`` pads as ``jax.lax``'s
    ``"SAME"`` (:func:`same_padding`): ``dilation * (kernel - 1)`` in total with stride 1,
    the odd element after. With a stride > 1 the amount depends on the input's
    ``spatial`` size; without it (arguments checked before an input is seen) the result
    is ``None``. (torch's ``nn.ConvNd`` refuses ``"same"`` with a stride > 1 itself.)

    >>> explicit_padding("SAME", (3, 4), (1, 1), (1, 1), "QConv")
    ((1, 1), (1, 2))
    >>> explicit_padding("same", (3,), (1,), (2,), "QConv", spatial=(6,))
    ((0, 1),)
    >>> explicit_padding([(0, 1)], (2,), (1,), (1,), "QConv")
    ((0, 1),)
    """
    n = len(kernel_size)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * n
        if mode == "same":
            if spatial is None:
                if any(s != 1 for s in stride):
                    return None
                spatial = (1,) * n  # with stride 1 the amount does not depend on the size
            return same_padding(spatial, kernel_size, dilation, stride)
        raise ValueError(
            f"{where}: padding must be an int, {n} ints, {n} (before, after) pairs, "
            f"'same' or 'valid', got {padding!r}"
        )
    form = (
        f"{where}: padding must be one int >= 0, {n} ints >= 0, {n} (before, after) pairs, "
        f"'same' or 'valid', got {padding!r}"
    )
    if is_int(padding):
        padding = (padding,) * n
    if isinstance(padding, str) or not isinstance(padding, Sequence):
        raise TypeError(form)
    if len(padding) != n:
        raise ValueError(form)
    pairs = []
    for p in padding:
        pair = (p, p) if is_int(p) else p
        if (
            isinstance(pair, str)
            or not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(is_int(v) for v in pair)
        ):
            raise TypeError(form)
        pairs.append((int(pair[0]), int(pair[1])))
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(form)
    return tuple(pairs)


def same_padding(
    spatial: Sequence[int],
    kernel_size: Sequence[int],
    dilation: Sequence[int],
    stride: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """``jax.lax``'s ``"SAME"`` padding (``lax.padtype_to_pads``), any stride: the output
    has ``ceil(size / stride)`` elements; ``total = max((out - 1) * stride + (k - 1) *
    dilation + 1 - size, 0)``, ``before = total // 2``, the odd element after.

    >>> same_padding((7, 8), (3, 3), (1, 1), (2, 3))
    ((1, 1), (0, 1))
    """
    pads = []
    for size, k, d, s in zip(spatial, kernel_size, dilation, stride, strict=True):
        out = -(-int(size) // int(s))
        total = max((out - 1) * int(s) + (int(k) - 1) * int(d) + 1 - int(size), 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


# --------------------------------------------------------------------------- progressive sign
# ProgressiveSign (bitorch 0.4.1) maps a training-progress ``scale`` to a temperature
# ``t = 1 - alpha**(-beta * scale)`` and divides by ``max(1 - t, EPSILON)``. The checks
# below are its argument rules, shared by both frameworks and both configs.


def check_bool(value: Any, name: str, where: str) -> bool:
    """A Python or NumPy ``bool`` (a flag such as ``training``); ``0``/``1`` are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a bool, got {_type_name(value)} {value!r}")
    return bool(value)


def check_unit_scale(scale: Any, where: str, name: str = "scale") -> float:
    """A training-progress scale: a real number in ``[0, 1]`` (0 at the start of training,
    1 at the end), as bitorch 0.4.1 documents it; NaN and infinities are refused."""
    if not is_real(scale):
        raise TypeError(f"{where}: {name} must be a real number, got {_type_name(scale)} {scale!r}")
    if not 0 <= scale <= 1:
        raise ValueError(f"{where}: {name} must be in [0, 1], got {float(scale)!r}")
    return float(scale)


def check_progressive_alpha(alpha: Any, where: str) -> float:
    """The base of ``alpha**(-beta * scale)``: finite and ``> 1``, so that the temperature
    ``1 - alpha**(-beta * scale)`` rises from 0 towards 1 as the scale grows (``alpha = 1``
    would fix it at 0, ``alpha < 1`` make it negative)."""
    if not is_real(alpha):
        raise TypeError(f"{where}: alpha must be a real number, got {_type_name(alpha)} {alpha!r}")
    if not (math.isfinite(alpha) and alpha > 1):
        raise ValueError(f"{where}: alpha must be finite and > 1, got {float(alpha)!r}")
    return float(alpha)


def check_positive_real(value: Any, name: str, where: str) -> float:
    """A real number, finite and ``> 0``."""
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a real number, got {_type_name(value)} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: {name} must be finite and > 0, got {float(value)!r}")
    return float(value)


def check_temperature(temperature: Any, where: str) -> float:
    """A temperature (what a transform returns): a finite real number. Any value is
    usable: ``max(1 - t, EPSILON)`` makes ``t >= 1`` the sharpest slope and ``t < 0`` a
    slope flatter than hardtanh's."""
    if not is_real(temperature):
        raise TypeError(
            f"{where}: the transform must return a real number (the temperature), got "
            f"{_type_name(temperature)} {temperature!r}"
        )
    if not math.isfinite(temperature):
        raise ValueError(f"{where}: the temperature must be finite, got {float(temperature)!r}")
    return float(temperature)


class GlobalScalingConflict(ValueError, RuntimeWarning):
    """An instance scale was given to a ProgressiveSign that reads the global one.

    bitorch 0.4.1 raises ``RuntimeWarning`` here; this is a ``ValueError`` (the project's
    rule for a bad argument) and a ``RuntimeWarning``, so code written for either catches it.
    """


def check_scale_source(
    use_global_scaling: Any, initial_scale: Any, where: str
) -> tuple[bool, float | None]:
    """``(use_global_scaling, initial_scale)`` checked: a bool, and ``None`` or a scale in
    ``[0, 1]`` that only goes with ``use_global_scaling=False`` (else
    :class:`GlobalScalingConflict`)."""
    use_global_scaling = check_bool(use_global_scaling, "use_global_scaling", where)
    if initial_scale is None:
        return use_global_scaling, None
    initial_scale = check_unit_scale(initial_scale, where, "initial_scale")
    if use_global_scaling:
        raise GlobalScalingConflict(
            f"{where}: initial_scale={initial_scale!r} has no effect with "
            "use_global_scaling=True (the scale is read from the config); pass "
            "use_global_scaling=False to give this instance its own scale"
        )
    return use_global_scaling, initial_scale


# --------------------------------------------------------------------------- optimizers
# Bop (bitorch.optim.Bop, bitorch_jax.optim.bop) and latent-weight clipping: their
# hyperparameter rules, shared by both frameworks. (Not in __all__: this section is
# appended, imported by name.)


def check_unit_fraction(value: Any, name: str, where: str) -> float:
    """A real number in ``(0, 1]``, such as Bop's ``gamma`` (the momentum's adaptivity
    rate: ``m <- (1 - gamma) * m + gamma * g``; ``0`` would never move ``m``).

    >>> check_unit_fraction(1e-4, "gamma", "bop")
    0.0001
    >>> check_unit_fraction(0.0, "gamma", "bop")
    Traceback (most recent call last):
    ...
    ValueError: bop: gamma must be in (0, 1], got 0.0
    """
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a real number, got {_type_name(value)} {value!r}")
    if not 0 < value <= 1:
        raise ValueError(f"{where}: {name} must be in (0, 1], got {float(value)!r}")
    return float(value)


def check_clip_value(value: Any, where: str) -> float:
    """A latent-weight clip bound: a real number, finite and ``> 0`` (weights are clipped
    to ``[-clip_value, clip_value]``)."""
    if not is_real(value):
        raise TypeError(
            f"{where}: clip_value must be a real number, got {_type_name(value)} {value!r}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: clip_value must be finite and > 0, got {float(value)!r}")
    return float(value)


# --------------------------------------------------------------------------- layers (0.4.1)
# PadModule, Pact and the embedding layers (bitorch.layers, bitorch_jax.layers): their
# argument rules, shared by both frameworks. (Not in __all__: imported by name.)

#: The reductions of an embedding bag (torch's ``nn.EmbeddingBag`` modes).
EMBEDDING_BAG_MODES = ("sum", "mean", "max")


def check_int(value: Any, name: str, where: str) -> int:
    """An integer of any sign (Python or NumPy, not ``bool``), such as a padding amount
    (a negative one crops, as in ``torch.nn.functional.pad``).

    >>> check_int(np.int64(-2), "padding_left", "PadModule")
    -2
    """
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {_type_name(value)} {value!r}")
    return int(value)


def check_real(value: Any, name: str, where: str) -> float:
    """A real number (Python or NumPy scalar, not ``bool``); infinities and NaN are
    accepted (``torch.nn.functional.pad`` takes any fill value)."""
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a real number, got {_type_name(value)} {value!r}")
    return float(value)


def check_embedding_mode(mode: Any, where: str) -> str:
    """An embedding bag's reduction: ``"sum"``, ``"mean"`` or ``"max"``."""
    if not isinstance(mode, str):
        raise TypeError(f"{where}: mode must be a str, got {_type_name(mode)} {mode!r}")
    if mode not in EMBEDDING_BAG_MODES:
        raise ValueError(
            f"{where}: mode must be one of {', '.join(EMBEDDING_BAG_MODES)}, got {mode!r}"
        )
    return mode


def check_padding_idx(padding_idx: Any, num_embeddings: int, where: str) -> int | None:
    """``None`` or a row index in ``[-num_embeddings, num_embeddings)``; a negative index
    counts from the end and is returned as the non-negative row (as ``nn.Embedding``).

    >>> check_padding_idx(-1, 10, "QEmbedding")
    9
    """
    if padding_idx is None:
        return None
    if not is_int(padding_idx):
        raise TypeError(
            f"{where}: padding_idx must be None or an int, got {_type_name(padding_idx)} "
            f"{padding_idx!r}"
        )
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(
            f"{where}: padding_idx must be in [-{num_embeddings}, {num_embeddings}) "
            f"(num_embeddings={num_embeddings}), got {padding_idx}"
        )
    return int(padding_idx) % num_embeddings


def check_quantization_spec(value: Any, base: type, where: str) -> Any:
    """A quantization given as a registry name (a ``str``) or an instance of ``base``
    (the framework's ``Quantization``); names are looked up where they are used."""
    if not isinstance(value, (str, base)):
        raise TypeError(
            f"{where}: expected a quantization name or a {base.__name__} instance, got "
            f"{_type_name(value)}"
        )
    return value


# --------------------------------------------------------------------------- larq-style quantizers
# SteSign, MagnitudeAwareSign, SteTernary, LarqDoReFa and XnorScaled (quantizers beyond
# bitorch 0.4.1; SPEC.md's second quantizer table): their argument rules, shared by both
# frameworks. (Not in __all__: this section is appended, imported by name.)

#: SteTernary's fixed threshold when none is given (larq's ``ste_tern`` default).
DEFAULT_TERNARY_THRESHOLD = 0.05

#: The Ternary Weight Networks threshold factor: ``delta = 0.7 * mean|x|`` (Li et al. 2016).
TWN_FACTOR = 0.7

#: The smallest positive bound a clip value or a fixed threshold may have: float32's
#: smallest normal number, ``2**-126``. XLA on CPU compares subnormals as zero; against a
#: bound of at least this (or exactly 0, handled apart), that gives the IEEE answer.
SMALLEST_BOUND = 2.0**-126


def check_gradient_clip(value: Any, where: str) -> float:
    """The ``clip_value`` of a clipped straight-through gradient (``dq/dx = 1`` where
    ``|x| <= clip_value``): a real number ``>= 2**-126`` (:data:`SMALLEST_BOUND`);
    ``math.inf`` or ``None`` (larq's spelling) means no clipping and is returned as
    ``math.inf``.

    >>> check_gradient_clip(None, "stesign")
    inf
    >>> check_gradient_clip(0.0, "stesign")
    Traceback (most recent call last):
    ...
    ValueError: stesign: clip_value must be > 0 (inf or None: no clipping), got 0.0
    """
    if value is None:
        return math.inf
    if not is_real(value):
        raise TypeError(
            f"{where}: clip_value must be a real number or None, got {_type_name(value)} {value!r}"
        )
    if math.isnan(value) or value <= 0:
        raise ValueError(
            f"{where}: clip_value must be > 0 (inf or None: no clipping), got {float(value)!r}"
        )
    if value < SMALLEST_BOUND:
        raise ValueError(
            f"{where}: clip_value must be at least 2**-126 (float32's smallest normal number), "
            f"got {float(value)!r}"
        )
    return float(value)


def check_channel_axis(axis: Any, where: str) -> int | None:
    """The output-channel axis of a per-channel statistic: an int (negative counts from
    the end, checked against the input's rank when the quantizer is called) or ``None``
    (one statistic for the whole tensor)."""
    if axis is None:
        return None
    if not is_int(axis):
        raise TypeError(
            f"{where}: channel_axis must be an int or None, got {_type_name(axis)} {axis!r}"
        )
    return int(axis)


def resolve_channel_axis(axis: int | None, ndim: int, where: str) -> int | None:
    """The non-negative channel axis for an ``ndim``-d input, or ``None`` when one
    statistic spans the whole tensor: ``axis`` is ``None``, or the input has fewer than 2
    dimensions (a scalar or a vector, e.g. a bias, has no channel layout). An axis
    outside ``-ndim..ndim-1`` is a ``ValueError``.

    >>> resolve_channel_axis(-1, 4, "xnorscaled"), resolve_channel_axis(0, 1, "xnorscaled")
    (3, None)
    """
    if axis is None or ndim < 2:
        return None
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{where}: channel_axis={axis} is out of range for a {ndim}-d input "
            f"(valid: {-ndim}..{ndim - 1}, or None for one statistic over the tensor)"
        )
    return axis % ndim


def check_ternary_threshold(threshold: Any, twn: Any, where: str) -> tuple[float, bool]:
    """``(threshold, twn)`` of a ternary quantizer, checked.

    The ternary threshold is ``delta = threshold`` (fixed), or with ``twn=True``
    ``delta = threshold * mean|x|`` of the input, the Ternary Weight Networks rule, where
    ``threshold`` is the factor. ``twn`` is a bool; ``threshold`` a finite real ``>= 0``,
    ``None`` taking :data:`DEFAULT_TERNARY_THRESHOLD` (fixed) or :data:`TWN_FACTOR`
    (``twn``); a fixed threshold must be 0 or at least 2**-126 (:data:`SMALLEST_BOUND`).

    >>> check_ternary_threshold(None, False, "steternary")
    (0.05, False)
    >>> check_ternary_threshold(None, True, "steternary")
    (0.7, True)
    """
    twn = check_bool(twn, "twn", where)
    if threshold is None:
        return (TWN_FACTOR if twn else DEFAULT_TERNARY_THRESHOLD), twn
    value = read_scalar(threshold, "threshold", where)  # a 0-d JAX array: its value
    if value is TRACED:  # checked at run time (SPEC.md "Traced hyperparameters")
        return threshold, twn
    threshold = check_non_negative_real(value, "threshold", where)
    if not twn and 0 < threshold < SMALLEST_BOUND:
        raise ValueError(
            f"{where}: threshold must be 0 or at least 2**-126 (float32's smallest normal "
            f"number), got {threshold!r}"
        )
    return threshold, twn


def check_quantizations(quantizations: Any, where: str, *, allow_empty: bool) -> tuple:
    """A sequence (not a string) of callable quantizers, as a tuple; ``TypeError`` for
    another type or a non-callable item, ``ValueError`` for an empty one unless allowed."""
    if isinstance(quantizations, (str, bytes)) or not isinstance(quantizations, Sequence):
        raise TypeError(
            f"{where}: quantizations must be a sequence of quantizers, got "
            f"{type(quantizations).__name__}"
        )
    if not allow_empty and len(quantizations) == 0:
        raise ValueError(f"{where}: quantizations must hold at least one quantizer")
    for q in quantizations:
        if not callable(q):
            raise TypeError(f"{where}: every quantization must be callable, got {q!r}")
    return tuple(quantizations)


# --------------------------------------------------------------------------- DenseNet (helper C)
# shared by bitorch.models.densenet/meliusnet and their bitorch_jax twins (MeliusNet too)

#: the transition entries of BinaryDenseNet/MeliusNet ("fp_conv" and "cs" take ":<groups>")
DENSENET_TRANSITION_ENTRIES = ("bn", "relu", "q_conv", "fp_conv", "pool", "max_pool", "cs")


def parse_densenet_transition(downsample: Any, where: str) -> list[tuple[str, int | None]]:
    """``"bn,max_pool,cs:4"`` -> ``[("bn", None), ("max_pool", None), ("cs", 4)]``;
    ``ValueError`` for an entry not in :data:`DENSENET_TRANSITION_ENTRIES` or bad groups.

    >>> parse_densenet_transition("bn,fp_conv:8", "DenseNet")
    [('bn', None), ('fp_conv', 8)]
    """
    if not isinstance(downsample, str):
        raise TypeError(f"{where}: downsample must be a comma separated str, got {downsample!r}")
    parsed: list[tuple[str, int | None]] = []
    for entry in downsample.split(","):
        name, sep, arg = entry.strip().partition(":")
        if name not in DENSENET_TRANSITION_ENTRIES or (sep and name not in ("fp_conv", "cs")):
            raise ValueError(
                f"{where}: unknown downsample entry {entry!r} (known: bn, relu, q_conv, "
                "fp_conv[:groups], pool, max_pool, cs[:groups])"
            )
        if sep and (not arg.isdigit() or int(arg) < 1):
            raise ValueError(f"{where}: the groups of {entry!r} must be a positive integer")
        parsed.append((name, int(arg) if sep else None))
    return parsed


def densenet_transition_channels(num_features: int, reduction_rate: float) -> int:
    """The channels after a transition, as bitorch 0.4.1 computes them: ``num_features //
    reduction_rate`` rounded (Python's ``round``) to a multiple of 32.

    >>> densenet_transition_channels(448, 1 / (1 / 2.7))
    160
    """
    return int(round((num_features // reduction_rate) / 32)) * 32


def check_densenet_hyperparameters(
    num_init_features: Any, growth_rate: Any, bn_size: Any, dropout: Any, where: str
) -> None:
    """``TypeError``/``ValueError`` naming the first bad DenseNet hyperparameter."""
    for value, label, minimum in (
        (num_init_features, "num_init_features", 1),
        (growth_rate, "growth_rate", 1),
        (bn_size, "bn_size", 0),
    ):
        if not is_int(value):
            raise TypeError(f"{where}: {label} must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"{where}: {label} must be at least {minimum}, got {value}")
    if not is_real(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"{where}: dropout must be a probability in [0, 1), got {dropout!r}")


def densenet_spec_entry(
    spec: dict[Any, Any], num_layers: Any, flex_block_config: Any, where: str
) -> tuple[list[int], list[float], str]:
    """``(block_config, reduction rates, downsample)`` for ``num_layers`` in ``spec``
    (``{num_layers: (block_config, reduction_factors, downsample)}``); with
    ``num_layers=None`` the blocks are ``flex_block_config``; the rates are ``1 /
    factor`` as in 0.4.1. ``ValueError`` for an unknown ``num_layers``, a block config
    that is not a list/tuple of positive ints or a wrong number of reductions."""
    if num_layers not in spec:
        known = ", ".join(repr(k) for k in spec)
        raise ValueError(f"{where}: no spec for num_layers={num_layers!r} (known: {known})")
    block_config, reduction_factor, downsampling = spec[num_layers]
    if num_layers is None and flex_block_config is not None:
        block_config = flex_block_config
    if not isinstance(block_config, (list, tuple)) or not all(
        is_int(n) and n >= 1 for n in block_config
    ):
        raise ValueError(
            f"{where}: block config must be a list of positive ints (layers per dense block), "
            f"got {block_config!r}"
        )
    reduction = [1 / x for x in reduction_factor]
    if len(reduction) != len(block_config) - 1:
        raise ValueError(
            f"{where}: wrong number of reductions ({len(reduction)}) for block config "
            f"{list(block_config)}, should be {len(block_config) - 1}"
        )
    return [int(n) for n in block_config], reduction, downsampling
