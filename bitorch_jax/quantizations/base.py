"""Quantization superclass and the straight-through helper of bitorch_jax.

Mirror of :mod:`bitorch.quantizations.base`. Each quantizer's math is one pure function
built on :func:`jax.custom_vjp`; the :class:`Quantization` objects only call it. The
objects are frozen dataclasses: immutable, hashable and callable, so they can be Flax
module attributes and static arguments of :func:`jax.jit`.

Reverse mode only: forward-mode autodiff of a quantizer (:func:`jax.jvp`,
:func:`jax.jacfwd`, or calling the linear function that :func:`jax.linearize` returns)
raises JAX's ``TypeError`` "can't apply forward-mode autodiff (jvp) to a custom_vjp
function". This is a deliberate choice: ``jax.custom_vjp`` is what gives exact control
over the residuals saved for the backward pass (nothing for a straight-through gradient,
one byte per element for ``ste_heaviside``), and training needs only reverse mode
(:func:`jax.grad`, :func:`jax.vjp`, :func:`jax.jacrev`). Forward-over-reverse
(:func:`jax.hessian`) works: it differentiates the backward rule, which is plain JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bitorch_common.validation import check_beta as _check_beta
from bitorch_common.validation import check_bits

__all__ = [
    "Quantization",
    "straight_through",
    "check_float_array",
    "check_bits",
    "check_beta",
    "compute_dtype",
    "true_divide",
    "negative_nonzero",
    "positive_nonzero",
]

_HALF_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))
_FLOAT_DTYPES = (*_HALF_DTYPES, jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))


def check_float_array(x: Any, quantizer: str) -> jax.Array:
    """Return ``x`` as a JAX array if it is floating point, else raise ``TypeError``.

    Accepts JAX and NumPy arrays, tracers and Python floats. Supported dtypes: float16,
    bfloat16, float32, float64 (float64 needs ``jax_enable_x64``, as everywhere in JAX).
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        if isinstance(x, bool) or not isinstance(x, float):
            raise TypeError(f"{quantizer}: expected a floating-point array, got {type(x).__name__}")
    elif jnp.dtype(dtype) not in _FLOAT_DTYPES:
        raise TypeError(
            f"{quantizer}: expected a floating-point array (float16, bfloat16, float32 or "
            f"float64), got dtype {jnp.dtype(dtype)}"
        )
    return jnp.asarray(x)


def check_beta(beta: Any, quantizer: str) -> Any:
    """Validate ``beta`` as :func:`bitorch_common.validation.check_beta` does, also for a
    concrete 0-d array; a traced ``beta`` is passed on unchecked (it has no value yet)."""
    if isinstance(beta, jax.core.Tracer):
        return beta
    if isinstance(beta, (np.ndarray, jax.Array)):
        if np.ndim(beta) != 0 or not (
            jnp.issubdtype(beta.dtype, jnp.floating) or jnp.issubdtype(beta.dtype, jnp.integer)
        ):
            raise TypeError(f"{quantizer}: beta must be a real scalar, got {beta!r}")
        _check_beta(float(beta), quantizer)
        return beta
    return _check_beta(beta, quantizer)


def compute_dtype(dtype: Any) -> jnp.dtype:
    """The dtype the math runs in: float32 for float16/bfloat16, else ``dtype`` itself.

    SPEC.md: half precision is computed in float32 and rounded once at the end.
    """
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype in _HALF_DTYPES else dtype


def true_divide(numerator: jax.Array, denominator: Any) -> jax.Array:
    """``numerator / denominator`` rounded as IEEE division, also for a scalar denominator.

    XLA's algebraic simplifier rewrites division by a broadcast scalar into multiplication
    by its reciprocal, which can be 1 ulp off the IEEE quotient that NumPy and PyTorch give
    (float32 ``14 / 15`` is one case), and a DoReFa level must be exact. Dividing by
    ``numerator * 0 + denominator`` (XLA does not fold ``x * 0`` for floats) keeps it a
    true elementwise division. That divisor equals ``denominator`` where ``numerator`` is
    finite and is NaN where it is NaN; callers never pass an infinite numerator.
    """
    return numerator / (numerator * 0 + denominator)


_INT_OF_WIDTH = {2: (jnp.int16, jnp.uint16), 4: (jnp.int32, jnp.uint32), 8: (jnp.int64, jnp.uint64)}

# XLA on CPU treats subnormal inputs as zero in float comparisons (``-1e-45 < 0`` is False
# there), while NumPy and PyTorch do not. The two helpers below read the sign from the bit
# pattern instead, with one integer comparison each: a form LLVM does not turn back into a
# float comparison (``(bits & 0x7fffffff) != 0`` it does, inside a fused jit kernel).


def negative_nonzero(x: jax.Array) -> jax.Array:
    """``x < 0`` exactly as IEEE defines it, subnormals included.

    A NaN with its sign bit set counts as negative: callers handle NaN first.
    """
    width = jnp.dtype(x.dtype).itemsize
    bits = jax.lax.bitcast_convert_type(x, _INT_OF_WIDTH[width][1])
    return bits > jnp.asarray(1 << (8 * width - 1), bits.dtype)


def positive_nonzero(x: jax.Array) -> jax.Array:
    """``x > 0`` exactly as IEEE defines it, subnormals included (see :func:`negative_nonzero`)."""
    width = jnp.dtype(x.dtype).itemsize
    bits = jax.lax.bitcast_convert_type(x, _INT_OF_WIDTH[width][0])
    return bits > 0


def _check_like_input(forward: Callable[..., Any], x: Any, y: Any) -> None:
    """The contract of :func:`straight_through`: ``forward``'s output has the shape and
    dtype of its input ``x`` (checked at trace time: shapes and dtypes are static)."""
    fname = getattr(forward, "__name__", repr(forward))
    if not (hasattr(y, "shape") and hasattr(y, "dtype")):
        raise TypeError(
            f"straight_through: {fname} must return an array of the input's shape and "
            f"dtype, got {type(y).__name__}"
        )
    x_shape, x_dtype = jnp.shape(x), jnp.result_type(x)
    if jnp.dtype(y.dtype) != jnp.dtype(x_dtype):
        raise TypeError(
            f"straight_through: {fname} returned dtype {jnp.dtype(y.dtype)} for an input of "
            f"dtype {jnp.dtype(x_dtype)}; the output must have the input's dtype (the "
            "gradient passes to the input unchanged), e.g. end with .astype(x.dtype)"
        )
    if tuple(y.shape) != tuple(x_shape):
        raise ValueError(
            f"straight_through: {fname} returned shape {tuple(y.shape)} for an input of "
            f"shape {tuple(x_shape)}; the output must have the input's shape (the gradient "
            "passes to the input unchanged)"
        )


def straight_through(
    forward: Callable[..., jax.Array] | None = None, *, static_argnums: Sequence[int] = ()
) -> Any:
    """Give ``forward`` a straight-through gradient: the JAX counterpart of torch ``STE``.

    The returned function computes ``forward(x, *args)`` and its VJP passes the output
    cotangent to ``x`` unchanged (``dq/dx = 1``); the other arguments get no gradient.
    Arguments at ``static_argnums`` (such as ``bits``) must be hashable Python values;
    the rest may be traced arrays. Nothing is saved for the backward pass. The output
    must have the shape and dtype of ``x``: otherwise calling the function raises, when it
    is traced, ``TypeError`` (dtype) or ``ValueError`` (shape) naming ``forward`` and both
    dtypes or shapes. Use as a decorator, with or without arguments.
    Like every ``custom_vjp`` function it supports reverse mode only: :func:`jax.jvp` on it
    raises ``TypeError`` (see the module docstring).

    Example::

        >>> @straight_through
        ... def floor_q(x):
        ...     return jnp.floor(x)
        >>> jax.grad(lambda x: floor_q(x).sum())(jnp.array([0.5, 1.7]))
        Array([1., 1.], dtype=float32)
    """
    if forward is None:
        return functools.partial(straight_through, static_argnums=static_argnums)
    static = tuple(sorted(static_argnums))
    if 0 in static:
        raise ValueError("straight_through: argument 0 is the input and cannot be static")

    def checked_forward(*args: Any) -> jax.Array:
        y = forward(*args)
        _check_like_input(forward, args[0], y)
        return y

    @functools.partial(jax.custom_vjp, nondiff_argnums=static)
    def ste(*args: Any) -> jax.Array:
        return checked_forward(*args)

    def ste_fwd(*args: Any) -> tuple[jax.Array, tuple[None, ...]]:
        # The residual is a tuple of Nones, one per non-static argument: it has no array
        # leaves (nothing is saved) but tells the backward rule how many cotangents to give.
        return checked_forward(*args), (None,) * (len(args) - len(static))

    def ste_bwd(*nondiff_res_g: Any) -> tuple:
        res, g = nondiff_res_g[-2], nondiff_res_g[-1]
        return (g, *res[1:])

    ste.defvjp(ste_fwd, ste_bwd)
    return functools.wraps(forward)(ste)


_INIT_REFUSED = """\
{cls} defines __init__, but a bitorch_jax Quantization must not: it is a frozen dataclass
whose fields are its hyperparameters, and its equality and hash (which jax.jit static
arguments and Flax modules use to tell two quantizers apart) are computed from those
fields. With a hand-written __init__ every instance would compare equal to every other
one and a jitted function would silently reuse the first trace. Declare each
hyperparameter as an annotated field instead, and validate or normalise it in
__post_init__ with object.__setattr__:

    class {cls}(Quantization):
        name = "{name}"  # registry key: a plain class attribute, not a field
        t: float = 0.0   # a hyperparameter: an annotated field with its default

        def __post_init__(self):
            object.__setattr__(self, "t", float(self.t))

        def quantize(self, x):
            ...

and build it with keyword arguments: {cls}(t=0.9)."""

# Field objects that Quantization.__init_subclass__ put back as class attributes so that a
# ``@dataclasses.dataclass`` decorator written on top sees the same field specifications;
# _settle() replaces them with their defaults once the class is complete.
_PENDING = "_Quantization__pending_fields"


def _settle(cls: type) -> None:
    """Replace the ``dataclasses.Field`` class attributes left for a decorator (see
    :meth:`Quantization.__init_subclass__`) by their defaults, as ``dataclass`` does."""
    pending = cls.__dict__.get(_PENDING)
    if pending is None:
        return
    for attr, fld in pending.items():
        if cls.__dict__.get(attr) is fld:
            if fld.default is dataclasses.MISSING:
                delattr(cls, attr)
            else:
                setattr(cls, attr, fld.default)
    delattr(cls, _PENDING)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Quantization:
    """Superclass of quantizer objects; mirror of ``bitorch.quantizations.Quantization``.

    Subclasses set the class attributes ``name`` (registry key) and ``bit_width`` (or a
    ``bit_width`` property) and implement :meth:`quantize`. Calling the object calls
    ``quantize``.

    Every subclass is a frozen, keyword-only dataclass, with or without a
    ``@dataclasses.dataclass(frozen=True, kw_only=True)`` decorator: its hyperparameters
    are annotated fields, equality and hash are computed from them (so two quantizers with
    different hyperparameters are different static arguments of :func:`jax.jit` and
    different Flax module attributes), and setting any attribute after construction raises
    :class:`dataclasses.FrozenInstanceError` (``dataclasses.replace`` makes a changed
    copy). Validate or normalise fields in ``__post_init__`` with ``object.__setattr__``.
    A subclass that defines ``__init__`` is refused with ``TypeError`` when it is created.

    Example::

        >>> @straight_through(static_argnums=(1,))
        ... def thresh(x, t):
        ...     return jnp.where(x > t, 1.0, -1.0).astype(x.dtype)
        >>> class Thresh(Quantization):
        ...     name = "thresh"  # registry key: a class attribute, not a field
        ...     t: float = 0.0  # a hyperparameter: an annotated field
        ...     def __post_init__(self):
        ...         object.__setattr__(self, "t", float(self.t))
        ...     def quantize(self, x):
        ...         return thresh(x, self.t)
        >>> Thresh(t=0.5) == Thresh(t=0.5), Thresh(t=0.5) == Thresh(t=0.9)
        (True, False)
        >>> Thresh(t=0.5)(jnp.array([0.2, 0.7]))
        Array([-1.,  1.], dtype=float32)
    """

    name: ClassVar[str] = "__abstract__"
    bit_width: ClassVar[int] = 32

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            raise TypeError(
                _INIT_REFUSED.format(
                    cls=cls.__name__, name=str(cls.__dict__.get("name", cls.__name__.lower()))
                )
            )
        # The bases are complete (a decorator on them has run): settle their fields first.
        for base in reversed(cls.__mro__[1:]):
            _settle(base)
        pending = {k: v for k, v in cls.__dict__.items() if isinstance(v, dataclasses.Field)}
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        # dataclass's own frozen __setattr__/__delattr__ let a subclass instance set names
        # that are not fields; the base's (below) refuse every name. Removing them also lets
        # an explicit ``@dataclasses.dataclass(frozen=True, ...)`` decorator process the class
        # a second time (it refuses to overwrite them), and the Field objects put back give
        # that second pass the same field specifications as the first.
        for method in ("__setattr__", "__delattr__"):
            if method in cls.__dict__:
                delattr(cls, method)
        if pending:
            for attr, fld in pending.items():
                setattr(cls, attr, fld)
            setattr(cls, _PENDING, pending)

    def __new__(cls, *args: Any, **kwargs: Any) -> Quantization:
        _settle(cls)
        return super().__new__(cls)

    @property
    def bitwidth(self) -> int:
        """Deprecated alias of :attr:`bit_width`."""
        warnings.warn(
            "Quantization.bitwidth is deprecated, use bit_width", DeprecationWarning, stacklevel=2
        )
        return self.bit_width

    def quantize(self, x: jax.Array) -> jax.Array:
        """Quantize ``x``. Subclasses implement this with a ``custom_vjp`` function."""
        raise NotImplementedError(f"{type(self).__name__} does not implement quantize()")

    def __call__(self, x: jax.Array) -> jax.Array:
        """Quantize ``x`` with :meth:`quantize`."""
        return self.quantize(x)


def _frozen_setattr(self: Quantization, attr: str, value: Any) -> None:
    if any(f.name == attr and f.init for f in dataclasses.fields(self)):
        how = f"; dataclasses.replace(quantizer, {attr}=...) makes a changed copy"
    else:
        how = f" and {attr!r} is not one of its fields"
    raise dataclasses.FrozenInstanceError(
        f"cannot assign to {attr!r}: {type(self).__name__} is frozen{how}"
    )


def _frozen_delattr(self: Quantization, attr: str) -> None:
    raise dataclasses.FrozenInstanceError(
        f"cannot delete {attr!r}: {type(self).__name__} is frozen"
    )


# Set after the decorator: ``dataclass(frozen=True)`` refuses a class body that defines them.
Quantization.__setattr__ = _frozen_setattr  # type: ignore[method-assign,assignment]
Quantization.__delattr__ = _frozen_delattr  # type: ignore[method-assign,assignment]
