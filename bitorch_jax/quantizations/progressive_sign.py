"""ProgressiveSign: a hardtanh that steepens into sign as training progresses.

Mirror of :mod:`bitorch.quantizations.progressive_sign`. In training mode the forward
value is ``hardtanh(x / max(1 - t, EPSILON))`` with ``t = transform(scale)`` (default
``1 - alpha**(-beta * scale)``), in eval mode the sign; the gradient passes straight
through in both. The scale is the training progress, from 0 at the start to 1 at the end.

**A changing scale under jit.** The scale is an ordinary (array) argument, not a static
one, so a schedule that changes it every step compiles once:

* functional form: ``progressive_sign(x, scale, training=True)`` with ``scale`` a traced
  scalar (an argument of the jitted step);
* object form: ``q(x, scale=s)``; a Flax NNX model keeps the scale in an
  ``nnx.Variable`` (state, so ``nnx.jit`` traces it) and calls
  ``self.q(x, scale=self.scale[...])``, and the training loop sets
  ``model.scale[...] = new_scale`` between steps.

``training`` is static (a Python bool: two modes, two traces). A quantizer object called
without ``scale`` uses its own ``initial_scale`` or, with ``use_global_scaling=True``,
``config.progressive_sign_scale``: both are Python numbers, read when the function is
traced, so inside ``jax.jit`` they are compile-time constants (a jitted function keeps
the value it was traced with; feed changing values as the ``scale`` argument). The
objects are frozen: ``dataclasses.replace(q, training=False)`` is the eval-mode copy.

Precision: with a concrete scale (a Python number, or a concrete array) the temperature
and ``max(1 - t, EPSILON)`` are computed on the host in Python float (float64)
arithmetic, exactly as :mod:`bitorch` does, and the divisor is rounded once to the
compute dtype (float32 for float16/bfloat16), so both frameworks give the same bits.
With a traced scale (or traced ``alpha``/``beta``) they are computed in the compute
dtype on the device, the default transform's divisor directly as
``alpha**(-beta*scale)``: it may differ from the host's by a few ulps (the rounding of
the exponent ``-beta*scale`` is magnified by ``|beta*scale*ln(alpha)|``). The
quotient is one correctly rounded division, clipped to ``[-1, 1]`` and rounded once to
the input dtype; values below the smallest normal of the compute dtype (input or
quotient) are zeros of their sign in both frameworks (XLA on CPU flushes them anyway).

A traced scale, ``alpha``, ``beta`` or temperature cannot be checked when it is given;
its rule (scale in ``[0, 1]``, ``alpha`` finite and ``> 1``, ``beta`` finite and ``> 0``,
the temperature finite) is enforced at run time in training mode: where it is broken the
output is NaN, and ``checkify.checkify(f, errors=checkify.user_checks)`` reports
``"progressive_sign: scale must be in [0, 1], got ..."`` (SPEC.md "Traced
hyperparameters").

>>> q = ProgressiveSign(use_global_scaling=False, initial_scale=0.5, alpha=2.0, beta=2.0)
>>> q(jnp.array([-1.0, -0.25, 0.0, 0.25, 1.0]))  # divides by 2**-1
Array([-1. , -0.5,  0. ,  0.5,  1. ], dtype=float32)
>>> dataclasses.replace(q, training=False)(jnp.array([-0.25, 0.0, 0.25]))
Array([-1.,  1.,  1.], dtype=float32)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from bitorch_common.validation import (
    GlobalScalingConflict,
    check_bool,
    check_positive_real,
    check_progressive_alpha,
    check_scale_source,
    check_temperature,
    check_unit_scale,
)
from bitorch_jax.quantizations.base import (
    Quantization,
    check_float_array,
    compute_dtype,
    straight_through,
    true_divide,
)
from bitorch_jax.quantizations.sign import sign

__all__ = [
    "EPSILON",
    "GlobalScalingConflict",
    "ProgressiveSignConfig",
    "config",
    "ProgressiveSign",
    "progressive_sign",
    "progressive_sign_divisor",
]

#: The smallest divisor: ``max(1 - t, EPSILON)`` keeps ``t >= 1`` from dividing by zero.
EPSILON = 1e-7

_WHERE = "progressive_sign"


def _traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _real(value: Any) -> Any:
    """A concrete one-element real array as its Python number; anything else unchanged
    (a tracer stays a tracer; the checks judge the rest)."""
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and not _traced(value):
        dtype = np.dtype(value.dtype)
        if np.size(value) == 1 and (
            np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
        ):
            return np.asarray(value).item()
    return value


_CONFIG_CHECKS: dict[str, Callable[[Any, str], float]] = {
    "progressive_sign_scale": lambda v, where: check_unit_scale(_real(v), where),
    "progressive_sign_alpha": lambda v, where: check_progressive_alpha(_real(v), where),
    "progressive_sign_beta": lambda v, where: check_positive_real(_real(v), "beta", where),
}


@dataclasses.dataclass
class ProgressiveSignConfig:
    """The global scale and the default ``alpha``/``beta`` of ProgressiveSign (mirror of
    ``bitorch.quantizations.progressive_sign.ProgressiveSignConfig``; another instance).

    Under :func:`jax.jit` the global scale is read when the function is traced (see the
    module docstring): pass a changing scale as an argument instead.
    """

    name: ClassVar[str] = "progressive_sign_config"

    progressive_sign_scale: float = 0.0
    progressive_sign_alpha: float = 4.0
    progressive_sign_beta: float = 10.0

    def __setattr__(self, key: str, value: Any) -> None:
        check = _CONFIG_CHECKS.get(key)
        if check is None:
            raise AttributeError(
                f"ProgressiveSignConfig has no option {key!r}; options: {', '.join(_CONFIG_CHECKS)}"
            )
        super().__setattr__(key, check(value, f"config.{key}"))

    def reset(self) -> None:
        """Put every option back to its default."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, f.default)


config = ProgressiveSignConfig()


def _check_transform(custom_transform: Any) -> Callable[[Any], Any] | None:
    if custom_transform is not None and not callable(custom_transform):
        raise TypeError(
            f"{_WHERE}: custom_transform must be a callable (scale -> temperature) or None, "
            f"got {type(custom_transform).__name__}"
        )
    return custom_transform


def _check_alpha(alpha: Any) -> Any:
    alpha = _real(config.progressive_sign_alpha if alpha is None else alpha)
    return alpha if _traced(alpha) else check_progressive_alpha(alpha, _WHERE)


def _check_beta(beta: Any) -> Any:
    beta = _real(config.progressive_sign_beta if beta is None else beta)
    return beta if _traced(beta) else check_positive_real(beta, "beta", _WHERE)


def _check_scale(scale: Any, name: str = "scale") -> Any:
    scale = _real(scale)
    return scale if _traced(scale) else check_unit_scale(scale, _WHERE, name)


def progressive_sign_divisor(
    scale: Any,
    *,
    custom_transform: Callable[[Any], Any] | None = None,
    alpha: Any = None,
    beta: Any = None,
    dtype: Any = jnp.float32,
) -> Any:
    """``max(1 - t, EPSILON)`` with ``t = custom_transform(scale)`` or the default
    ``1 - alpha**(-beta * scale)`` (``alpha``/``beta`` default to the config's).

    Concrete arguments: a Python float computed on the host (as bitorch does). A traced
    ``scale``, ``alpha``, ``beta`` or temperature: a 0-d array of ``dtype``, computed on
    the device (then a custom transform is called with a ``dtype`` array).
    """
    custom_transform = _check_transform(custom_transform)
    alpha, beta, scale = _check_alpha(alpha), _check_beta(beta), _check_scale(scale)
    if not any(_traced(v) for v in (scale, alpha, beta)):
        if custom_transform is None:
            temperature = 1 - alpha ** (-beta * scale)
        else:
            temperature = _real(custom_transform(scale))
            if not _traced(temperature):
                temperature = check_temperature(temperature, _WHERE)
        if not _traced(temperature):
            return max(1.0 - temperature, EPSILON)
    else:
        s = jnp.asarray(scale, dtype)
        if custom_transform is None:
            # 1 - t is alpha**(-beta*scale) itself: taken directly, without the
            # cancellation of 1 - (1 - p) that float32 could not afford for a small p.
            slope = jnp.asarray(alpha, dtype) ** (-jnp.asarray(beta, dtype) * s)
            divisor = jnp.maximum(slope, jnp.asarray(EPSILON, dtype))
            return _enforce_rules(divisor, scale, alpha, beta, None)
        temperature = custom_transform(s)
    divisor = jnp.maximum(1 - jnp.asarray(temperature, dtype), jnp.asarray(EPSILON, dtype))
    return _enforce_rules(divisor, scale, alpha, beta, temperature)


def _enforce_rules(divisor: jax.Array, scale: Any, alpha: Any, beta: Any, temperature: Any) -> Any:
    """The argument rules, at run time, for the traced ones among ``scale``, ``alpha``,
    ``beta`` and the temperature (the concrete ones were checked on the host): where one
    is broken the divisor, and so the training-mode output, is NaN, and
    ``checkify.checkify(f, errors=checkify.user_checks)`` reports it by name (SPEC.md
    "Traced hyperparameters"). Judged in each value's own dtype."""
    rules = (
        (scale, "scale must be in [0, 1]", lambda v: (v >= 0) & (v <= 1)),
        (alpha, "alpha must be finite and > 1", lambda v: jnp.isfinite(v) & (v > 1)),
        (beta, "beta must be finite and > 0", lambda v: jnp.isfinite(v) & (v > 0)),
        (temperature, "the temperature must be finite", jnp.isfinite),
    )
    valid = None
    for value, message, rule in rules:
        if _traced(value):
            ok = rule(jnp.asarray(value))
            checkify.debug_check(ok, f"{_WHERE}: {message}, got {{value}}", value=value)
            valid = ok if valid is None else valid & ok
    if valid is None:
        return divisor
    return jnp.where(valid, divisor, jnp.full((), jnp.nan, divisor.dtype))


def _train_values(x: jax.Array, divisor: Any) -> jax.Array:
    """``hardtanh(x / divisor)`` by the precision rules of the module docstring."""
    ct = compute_dtype(x.dtype)
    info = jnp.finfo(ct)
    xf = x.astype(ct)
    xf = jnp.where(jnp.abs(xf) < info.tiny, xf * 0, xf)
    # true_divide keeps the division a true elementwise one (XLA turns x / broadcast(d)
    # into x * (1/d) even for a traced d); it needs a finite numerator, and clipping to
    # the largest finite value changes no quotient that hardtanh does not clip to ±1.
    finite = jnp.clip(xf, -info.max, info.max)
    y = jnp.clip(true_divide(finite, jnp.asarray(divisor, ct)), -1, 1)
    y = jnp.where(jnp.abs(y) < info.tiny, y * 0, y)
    return y.astype(x.dtype)


_progressive_sign_train = straight_through(_train_values)


def progressive_sign(
    x: jax.Array,
    scale: Any = None,
    *,
    training: bool = True,
    use_global_scaling: bool | None = None,
    initial_scale: Any = None,
    custom_transform: Callable[[Any], Any] | None = None,
    alpha: Any = None,
    beta: Any = None,
) -> jax.Array:
    """ProgressiveSign with a straight-through gradient.

    ``training=True`` (static): ``hardtanh(x / max(1 - t, EPSILON))`` with ``t`` the
    transform of the scale (``custom_transform``, default ``1 - alpha**(-beta*scale)``);
    ``training=False``: the sign (``+1`` for ``x >= 0``). ``dq/dx = 1`` in both; nothing
    is saved for the backward pass, and the scale gets no gradient.

    ``scale`` (a number in ``[0, 1]``, or a traced scalar: see the module docstring for
    annealing under jit) if given, else ``initial_scale`` (the constructor's name, so
    ``progressive_sign(x, **kw)`` equals ``ProgressiveSign(**kw)(x)``), else the global
    ``config.progressive_sign_scale``; ``use_global_scaling=True`` together with a scale
    is a :class:`GlobalScalingConflict` (``ValueError``). Concrete arguments are checked
    as in :class:`ProgressiveSign`; traced ones cannot be (they have no value yet).

    >>> progressive_sign(jnp.array([-0.1, 0.05, 2.0]), 0.5, alpha=2.0, beta=2.0)
    Array([-0.2,  0.1,  1. ], dtype=float32)
    >>> step = jax.jit(lambda x, s: progressive_sign(x, s))  # one compilation for every s
    >>> [float(step(jnp.array(0.01), s)) for s in (0.0, 0.1, 0.2)]
    [0.009999999776482582, 0.03999999910593033, 0.1599999964237213]
    """
    x = check_float_array(x, _WHERE)
    if _traced(training):
        raise TypeError(
            f"{_WHERE}: training must be a Python bool (it is static: jit the two modes "
            "separately, or mark it with static_argnames), got a traced value"
        )
    training = check_bool(training, "training", _WHERE)
    if scale is not None and initial_scale is not None:
        raise ValueError(f"{_WHERE}: give scale or initial_scale, not both")
    given = scale if scale is not None else initial_scale
    if use_global_scaling is None:
        use_global_scaling = given is None
    # A traced scale has no value to check: a placeholder checks the rest.
    probe = 0.0 if _traced(given) else _real(given)
    _, probe = check_scale_source(use_global_scaling, probe, _WHERE)
    given = given if _traced(given) else probe
    current = config.progressive_sign_scale if given is None else given
    if not training:  # checked as in training mode, but the transform is not called
        _check_transform(custom_transform)
        _check_alpha(alpha)
        _check_beta(beta)
        return sign(x)
    divisor = progressive_sign_divisor(
        current,
        custom_transform=custom_transform,
        alpha=alpha,
        beta=beta,
        dtype=compute_dtype(x.dtype),
    )
    return _progressive_sign_train(x, divisor)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProgressiveSign(Quantization):
    """ProgressiveSign quantization (registry key ``"progressive_sign"``, 1 bit); see
    :func:`progressive_sign`.

    The fields are bitorch 0.4.1's constructor arguments plus ``training`` (torch's
    module mode; default ``True``, as a new torch module): ``use_global_scaling`` (read
    ``config.progressive_sign_scale`` at each call), ``initial_scale`` (this instance's
    scale with ``use_global_scaling=False``; default the config's value when built),
    ``custom_transform`` (scale -> temperature), ``alpha``/``beta`` (the default
    transform's; the config's when ``None``, when built). Checked as in bitorch
    (:class:`bitorch.quantizations.ProgressiveSign`).

    Call it as ``q(x)`` or, to feed a changing (possibly traced) scale, ``q(x, scale=s)``.
    """

    name: ClassVar[str] = "progressive_sign"
    bit_width: ClassVar[int] = 1

    use_global_scaling: bool = True
    initial_scale: float | None = None
    custom_transform: Callable[[Any], Any] | None = None
    alpha: float | None = None
    beta: float | None = None
    training: bool = True

    def __post_init__(self) -> None:
        use_global, initial = check_scale_source(
            self.use_global_scaling, _real(self.initial_scale), _WHERE
        )
        if not use_global and initial is None:
            initial = config.progressive_sign_scale
        object.__setattr__(self, "use_global_scaling", use_global)
        object.__setattr__(self, "initial_scale", initial)
        object.__setattr__(self, "custom_transform", _check_transform(self.custom_transform))
        alpha = config.progressive_sign_alpha if self.alpha is None else _real(self.alpha)
        beta = config.progressive_sign_beta if self.beta is None else _real(self.beta)
        object.__setattr__(self, "alpha", check_progressive_alpha(alpha, _WHERE))
        object.__setattr__(self, "beta", check_positive_real(beta, "beta", _WHERE))
        object.__setattr__(self, "training", check_bool(self.training, "training", _WHERE))

    @property
    def global_scaling(self) -> bool:
        """bitorch 0.4.1's attribute name of ``use_global_scaling``."""
        return self.use_global_scaling

    @property
    def current_scale(self) -> float:
        """The scale a call without ``scale`` uses: the global one, or ``initial_scale``."""
        if self.use_global_scaling:
            return config.progressive_sign_scale
        return self.initial_scale  # type: ignore[return-value]

    @staticmethod
    def default_transform(scale: Any, alpha: Any = None, beta: Any = None) -> Any:
        """The temperature ``1 - alpha**(-beta * scale)`` (``alpha``/``beta`` default to
        the config's at the time of the call); a Python float for concrete arguments,
        an array for traced ones."""
        alpha, beta, scale = _check_alpha(alpha), _check_beta(beta), _check_scale(scale)
        if any(_traced(v) for v in (scale, alpha, beta)):
            s = jnp.asarray(scale)
            return 1 - jnp.asarray(alpha, s.dtype) ** (-jnp.asarray(beta, s.dtype) * s)
        return 1 - alpha ** (-beta * scale)

    def transform(self, scale: Any) -> Any:
        """The temperature of ``scale``: ``custom_transform`` if set, else the default
        transform with this instance's ``alpha`` and ``beta``."""
        scale = _check_scale(scale)
        if self.custom_transform is not None:
            temperature = _real(self.custom_transform(scale))
            return temperature if _traced(temperature) else check_temperature(temperature, _WHERE)
        return self.default_transform(scale, self.alpha, self.beta)

    def quantize(self, x: jax.Array, scale: Any = None) -> jax.Array:
        """``progressive_sign(x, scale)`` with this object's hyperparameters and mode;
        ``scale=None`` uses :attr:`current_scale`."""
        return progressive_sign(
            x,
            self.current_scale if scale is None else scale,
            training=self.training,
            use_global_scaling=False,
            custom_transform=self.custom_transform,
            alpha=self.alpha,
            beta=self.beta,
        )

    def __call__(self, x: jax.Array, scale: Any = None) -> jax.Array:
        """Quantize ``x`` (see :meth:`quantize`)."""
        return self.quantize(x, scale)
