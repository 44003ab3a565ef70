"""ProgressiveSign: a hardtanh that steepens into sign as training progresses.

In training mode (``module.training``, as for every ``nn.Module``) the forward value is

    ``q(x) = hardtanh(x / max(1 - t, EPSILON))``,   ``t = transform(scale)``

with a straight-through gradient (``dq/dx = 1``, not masked where hardtanh saturates).
In eval mode it is the sign (``+1`` for ``x >= 0``, ``-1`` below), also straight-through.
The *scale* is the training progress, from 0 at the start to 1 at the end; the default
transform maps it to the temperature ``t = 1 - alpha**(-beta * scale)``, so the slope
``1 / (1 - t) = alpha**(beta * scale)`` grows from 1 (plain hardtanh) exponentially.

The scale of an instance is the global one in :data:`config`
(``config.progressive_sign_scale``, read at every call) or, with
``use_global_scaling=False``, its own ``scale`` attribute (set it as training goes on).

Precision (SPEC.md): the temperature and ``max(1 - t, EPSILON)`` are Python float
(float64) arithmetic; the divisor is then rounded once to the compute dtype (float32
for float16/bfloat16), the input is divided by it with one correctly rounded division,
clipped to ``[-1, 1]`` and rounded once to the input dtype. Values below the smallest
normal number of the compute dtype (input or quotient) are taken as zero of their sign:
XLA on CPU flushes them, and flushing them here makes both frameworks agree everywhere.
NaN gives NaN, ``±inf`` gives ``±1`` in training mode.

``bitorch.quantizations.progressive_sign`` is this module (as in bitorch 0.4.1:
``from bitorch.quantizations.progressive_sign import config``) and, called, the
functional form :func:`progressive_sign`.

Example::

    >>> q = ProgressiveSign(use_global_scaling=False, initial_scale=0.5, alpha=2.0, beta=2.0)
    >>> q(torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0]))  # divides by 2**-1
    tensor([-1.0000, -0.5000,  0.0000,  0.5000,  1.0000])
    >>> q.eval()(torch.tensor([-0.25, 0.0, 0.25]))
    tensor([-1.,  1.,  1.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bitorch.config import Config, register_custom_config
from bitorch.quantizations.base import (
    STE,
    Quantization,
    check_float_tensor,
    compute_dtype,
    make_module_callable,
)
from bitorch.quantizations.sign import SignFunction
from bitorch_common.validation import (
    GlobalScalingConflict,
    check_bool,
    check_positive_real,
    check_progressive_alpha,
    check_scale_source,
    check_temperature,
    check_unit_scale,
)

__all__ = [
    "EPSILON",
    "GlobalScalingConflict",
    "ProgressiveSignConfig",
    "config",
    "ProgressiveSignFunctionTrain",
    "ProgressiveSign",
    "progressive_sign",
]

#: The smallest divisor: ``max(1 - t, EPSILON)`` keeps ``t >= 1`` from dividing by zero.
EPSILON = 1e-7

_WHERE = "progressive_sign"


def _real(value: Any) -> Any:
    """A one-element real tensor as its Python number (bitorch 0.4.1 accepted tensors
    where floats are documented); anything else unchanged, for the checks to judge."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        if value.dtype != torch.bool:
            return value.item()
    return value


_CONFIG_CHECKS: dict[str, Callable[[Any, str], float]] = {
    "progressive_sign_scale": lambda v, where: check_unit_scale(_real(v), where),
    "progressive_sign_alpha": lambda v, where: check_progressive_alpha(_real(v), where),
    "progressive_sign_beta": lambda v, where: check_positive_real(_real(v), "beta", where),
}


class ProgressiveSignConfig(Config):
    """The global scale and the default ``alpha``/``beta`` of ProgressiveSign.

    ``progressive_sign_scale`` is the scale of every instance built with
    ``use_global_scaling=True`` (the default), read at each call: raise it from 0 to 1
    as training goes on. ``progressive_sign_alpha`` (4) and ``progressive_sign_beta``
    (10) are taken by instances built without ``alpha``/``beta`` (when they are built)
    and by :meth:`ProgressiveSign.default_transform` without them (when it is called).
    Values are checked when set (``ValueError``/``TypeError``): the scale must be in
    ``[0, 1]``, alpha finite and ``> 1``, beta finite and ``> 0``; they are stored as
    floats (bitorch 0.4.1 has the ints 4 and 10, so its ``--progressive-sign-alpha``
    option took only ints).

    A :class:`bitorch.config.Config` as in bitorch 0.4.1: ``name`` is
    ``"progressive_sign_config"``, the instance :data:`config` is registered
    (``bitorch.config.config_from_name``), with argparse options and ``get_*``/``set_*``.
    """

    name = "progressive_sign_config"

    progressive_sign_scale = 0.0
    progressive_sign_alpha = 4.0
    progressive_sign_beta = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def __setattr__(self, key: str, value: Any) -> None:
        check = _CONFIG_CHECKS.get(key)
        if check is None:
            raise AttributeError(
                f"ProgressiveSignConfig has no option {key!r}; options: {', '.join(_CONFIG_CHECKS)}"
            )
        super().__setattr__(key, check(value, f"config.{key}"))

    def reset(self) -> None:
        """Put every option back to its default."""
        for key in _CONFIG_CHECKS:
            setattr(self, key, getattr(type(self), key))


config = ProgressiveSignConfig()
register_custom_config(config)


def _divisor(temperature: float) -> float:
    """``max(1 - t, EPSILON)`` in Python float arithmetic (bitorch 0.4.1's expression)."""
    return max(1.0 - temperature, EPSILON)


def _train_values(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """``hardtanh(x / max(1 - t, EPSILON))`` by the precision rules of the module docstring."""
    ct = compute_dtype(x.dtype)
    tiny = torch.finfo(ct).tiny
    xf = x.to(ct)
    xf = torch.where(xf.abs() < tiny, xf * 0, xf)
    # A tensor on x's device, not a Python number: CUDA divides by a CPU scalar as a
    # multiplication by its reciprocal, which is not the correctly rounded quotient.
    divisor = torch.tensor(_divisor(temperature), dtype=ct, device=x.device)
    y = torch.clamp(xf / divisor, -1.0, 1.0)
    y = torch.where(y.abs() < tiny, y * 0, y)
    return y.to(x.dtype)


class ProgressiveSignFunctionTrain(STE):
    """The training-mode function: ``hardtanh(x / max(1 - temperature, EPSILON))`` with
    a straight-through gradient (the output gradient is returned unchanged; the
    temperature gets none). ``ProgressiveSignFunctionTrain.apply(x, temperature)``, as in
    bitorch 0.4.1; ``temperature`` is a Python number. Nothing is saved for backward.
    """

    @staticmethod
    def forward(input_tensor: torch.Tensor, temperature: float) -> torch.Tensor:  # type: ignore[override]
        return _train_values(input_tensor, temperature)


def default_temperature(scale: float, alpha: float, beta: float) -> float:
    """``1 - alpha**(-beta * scale)`` in Python float arithmetic (arguments unchecked)."""
    return 1 - alpha ** (-beta * scale)


def _temperature(
    scale: float, custom_transform: Callable[[float], Any] | None, alpha: float, beta: float
) -> float:
    if custom_transform is None:
        return default_temperature(scale, alpha, beta)
    return check_temperature(_real(custom_transform(scale)), _WHERE)


def _check_transform(custom_transform: Any) -> Callable[[float], Any] | None:
    if custom_transform is not None and not callable(custom_transform):
        raise TypeError(
            f"{_WHERE}: custom_transform must be a callable (scale -> temperature) or None, "
            f"got {type(custom_transform).__name__}"
        )
    return custom_transform


def progressive_sign(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    training: bool = True,
    use_global_scaling: bool | None = None,
    initial_scale: float | None = None,
    custom_transform: Callable[[float], float] | None = None,
    alpha: float | None = None,
    beta: float | None = None,
) -> torch.Tensor:
    """Functional form of :class:`ProgressiveSign`.

    ``training=True``: ``hardtanh(x / max(1 - t, EPSILON))`` with ``t`` the transform of
    the scale; ``training=False``: the sign. Both pass the gradient straight through.

    The scale is ``scale`` if given, else ``initial_scale`` (the constructor's name, so
    ``progressive_sign(x, **kw)`` equals ``ProgressiveSign(**kw)(x)`` in the same mode),
    else the global ``config.progressive_sign_scale``; ``use_global_scaling=True`` with a
    scale is a :class:`GlobalScalingConflict` (a ``ValueError``), as in the constructor.
    ``custom_transform`` maps the scale to the temperature (default
    ``1 - alpha**(-beta * scale)``); ``alpha``/``beta`` default to the config's.
    Every argument is checked in both modes (see :class:`ProgressiveSign`).

    >>> progressive_sign(torch.tensor([-0.1, 0.05, 2.0]), 0.5, alpha=2.0, beta=2.0)
    tensor([-0.2000,  0.1000,  1.0000])
    """
    x = check_float_tensor(x, _WHERE)
    training = check_bool(training, "training", _WHERE)
    custom_transform = _check_transform(custom_transform)
    alpha = check_progressive_alpha(
        _real(config.progressive_sign_alpha if alpha is None else alpha), _WHERE
    )
    beta = check_positive_real(
        _real(config.progressive_sign_beta if beta is None else beta), "beta", _WHERE
    )
    if scale is not None and initial_scale is not None:
        raise ValueError(f"{_WHERE}: give scale or initial_scale, not both")
    given = _real(scale if scale is not None else initial_scale)
    if use_global_scaling is None:
        use_global_scaling = given is None
    _, given = check_scale_source(use_global_scaling, given, _WHERE)
    current = config.progressive_sign_scale if given is None else given
    if not training:
        return SignFunction.apply(x)
    return ProgressiveSignFunctionTrain.apply(
        x, _temperature(current, custom_transform, alpha, beta)
    )


class ProgressiveSign(Quantization):
    """ProgressiveSign quantization (registry key ``"progressive_sign"``, 1 bit).

    The constructor is bitorch 0.4.1's. ``use_global_scaling=True`` reads the scale from
    ``config.progressive_sign_scale`` at every call; otherwise the instance has its own
    ``scale`` (``initial_scale``, default the config's value when built), which is set as
    training goes on (``q.scale = 0.4``). ``custom_transform`` maps the scale to the
    temperature (default :meth:`default_transform`); ``alpha``/``beta`` are its
    parameters, taken from the config when ``None`` (when the instance is built).

    Checked arguments (``TypeError`` for a wrong type, ``ValueError`` for a wrong value;
    bitorch 0.4.1 checks none of them): ``use_global_scaling`` a bool; a scale a real
    number in ``[0, 1]``; ``alpha`` finite and ``> 1``; ``beta`` finite and ``> 0``;
    ``custom_transform`` a callable returning a finite real number; ``initial_scale``
    together with ``use_global_scaling=True`` is a :class:`GlobalScalingConflict`
    (``ValueError`` and, as in 0.4.1, ``RuntimeWarning``). An explicit ``0`` is kept
    (bitorch 0.4.1's ``value or default`` replaced ``0`` by the config's value).

    Training and eval mode are the module's (``.train()``/``.eval()``; a new module is in
    training mode).
    """

    name = "progressive_sign"
    bit_width = 1

    def __init__(
        self,
        use_global_scaling: bool = True,
        initial_scale: float | None = None,
        custom_transform: Callable[[float], float] | None = None,
        alpha: float | None = None,
        beta: float | None = None,
    ) -> None:
        super().__init__()
        use_global_scaling, initial_scale = check_scale_source(
            use_global_scaling, _real(initial_scale), _WHERE
        )
        self.global_scaling = use_global_scaling
        self._initial_scale = initial_scale
        self.scale = config.progressive_sign_scale if initial_scale is None else initial_scale
        self.custom_transform = _check_transform(custom_transform)
        self.alpha = config.progressive_sign_alpha if alpha is None else alpha
        self.beta = config.progressive_sign_beta if beta is None else beta

    # Checked attributes: plain attributes in bitorch 0.4.1, set the same way here.
    @property
    def scale(self) -> float:
        """This instance's own scale (used when ``global_scaling`` is off), in ``[0, 1]``."""
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._scale = check_unit_scale(_real(value), _WHERE)

    @property
    def alpha(self) -> float:
        """Base of the default transform, finite and ``> 1``."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_progressive_alpha(_real(value), _WHERE)

    @property
    def beta(self) -> float:
        """Factor of the scale in the default transform's exponent, finite and ``> 0``."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_positive_real(_real(value), "beta", _WHERE)

    @property
    def use_global_scaling(self) -> bool:
        """The constructor argument: ``global_scaling`` (bitorch 0.4.1's attribute)."""
        return self.global_scaling

    @property
    def initial_scale(self) -> float | None:
        """The constructor's ``initial_scale`` (``None`` when not given)."""
        return self._initial_scale

    @property
    def current_scale(self) -> float:
        """The scale in use now: the global one, or this instance's ``scale``."""
        if self.global_scaling:
            return config.progressive_sign_scale
        return self.scale

    @staticmethod
    def default_transform(
        scale: float, alpha: float | None = None, beta: float | None = None
    ) -> float:
        """The temperature ``1 - alpha**(-beta * scale)``; ``alpha``/``beta`` default to the
        config's values at the time of the call. Arguments are checked."""
        scale = check_unit_scale(_real(scale), _WHERE)
        alpha = check_progressive_alpha(
            _real(config.progressive_sign_alpha if alpha is None else alpha), _WHERE
        )
        beta = check_positive_real(
            _real(config.progressive_sign_beta if beta is None else beta), "beta", _WHERE
        )
        return default_temperature(scale, alpha, beta)

    def transform(self, scale: float) -> float:
        """The temperature of ``scale``: ``custom_transform`` if set, else the default
        transform with this instance's ``alpha`` and ``beta``."""
        scale = check_unit_scale(_real(scale), _WHERE)
        return _temperature(scale, self.custom_transform, self.alpha, self.beta)

    def extra_repr(self) -> str:
        where = "global" if self.global_scaling else f"scale={self.scale}"
        transform = (
            "" if self.custom_transform is None else f", custom_transform={self.custom_transform!r}"
        )
        return f"{where}, alpha={self.alpha}, beta={self.beta}{transform}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        x = check_float_tensor(x, _WHERE)
        if self.training:
            return ProgressiveSignFunctionTrain.apply(x, self.transform(self.current_scale))
        return SignFunction.apply(x)


make_module_callable(__name__, progressive_sign)
