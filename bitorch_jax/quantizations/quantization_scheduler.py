"""Scheduled quantization for bitorch_jax: move from one quantizer to the next.

Mirror of :mod:`bitorch.quantizations.quantization_scheduler`, in two forms.

**Functional, traced factor (compiles once).** :func:`mix_linear_scheduling` and
:func:`step_scheduling` take the progress ``factor`` in ``[0, 1]`` as an ordinary
argument, which may be traced, so a jitted step whose factor changes every call
compiles once; :func:`schedule_factor` gives ``min(step / steps, 1)``:

* ``"mix_linear"``: with ``n`` quantizers, ``s = factor * (n - 1)``, ``i = floor(s)``,
  ``w = s - i``: ``q[i+1](x) * w + q[i](x) * (1 - w)`` (``q[n-1](x)`` once ``i = n - 1``,
  ``q[0](x)`` when ``n = 1``). A traced factor evaluates every quantizer and picks two.
* ``"step"``: ``q[min(floor(factor * n), n - 1)](x)``; a traced factor uses
  :func:`jax.lax.switch` (every branch is compiled, one runs).

The blend of half-precision outputs is computed in float32 and rounded once (SPEC.md).

**Objects, static factor (bitorch's API).** :class:`ScheduledQuantizer`,
:class:`MixLinearScheduling` and :class:`StepScheduling` are frozen quantizer objects
holding ``quantizations``, ``steps`` and ``step_count``; ``q.next_step()`` returns the
copy one step on (torch's ``step()`` changes the module in place; frozen objects cannot).
:class:`Quantization_Scheduler` does bitorch's job for a Flax NNX model: it replaces the
quantizers in the model's layers by scheduled ones and ``scheduler.step()`` puts the
next-step copies in their place. The factor is then part of the (static) layer
configuration, so ``nnx.jit`` compiles once per scheduler step (e.g. once per epoch);
pass ``factor=`` (or use the functions) for a per-iteration schedule.

>>> from bitorch_jax.quantizations import Identity, Sign
>>> x = jnp.array([-0.5, 0.5])
>>> mix_linear_scheduling(x, (Identity(), Sign()), 0.5)
Array([-0.75,  0.75], dtype=float32)
>>> q = MixLinearScheduling(quantizations=(Identity(), Sign()), steps=2)
>>> q(x), q.next_step()(x)
(Array([-0.5,  0.5], dtype=float32), Array([-0.75,  0.75], dtype=float32))
>>> q(x, factor=1.0)
Array([-1.,  1.], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bitorch_common.validation import check_bool, check_quantizations, is_int, is_real
from bitorch_jax.quantizations.base import Quantization, check_float_array, compute_dtype

__all__ = [
    "schedule_factor",
    "mix_linear_scheduling",
    "step_scheduling",
    "ScheduledQuantizer",
    "MixLinearScheduling",
    "StepScheduling",
    "Quantization_Scheduler",
]


def _traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _check_count(value: Any, name: str, where: str, minimum: int) -> int:
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_factor(factor: Any, where: str) -> Any:
    """A concrete factor as a Python float in ``[0, 1]``; a traced one unchanged."""
    if _traced(factor):
        return factor
    if isinstance(factor, (np.ndarray, jax.Array)) and np.size(factor) == 1:
        factor = np.asarray(factor).item()
    if not is_real(factor):
        raise TypeError(f"{where}: factor must be a real number, got {type(factor).__name__}")
    if not 0 <= factor <= 1:
        raise ValueError(f"{where}: factor must be in [0, 1], got {float(factor)!r}")
    return float(factor)


def schedule_factor(step: Any, steps: int) -> Any:
    """``min(step / steps, 1)``: a Python float for a Python ``step``, an array for a
    traced one. ``steps`` is an int ``> 0``.

    >>> schedule_factor(3, 4), schedule_factor(9, 4)
    (0.75, 1.0)
    """
    steps = _check_count(steps, "steps", "schedule_factor", 1)
    if _traced(step):
        return jnp.minimum(step / steps, 1.0)
    step = _check_count(step, "step", "schedule_factor", 0)
    return min(step / steps, 1.0)


def _blend(high: jax.Array, low: jax.Array, weight: Any) -> jax.Array:
    """``high * weight + low * (1 - weight)`` in the compute dtype, rounded once."""
    dtype = jnp.result_type(high, low)
    ct = compute_dtype(dtype)
    if _traced(weight):
        w, rest = weight.astype(ct), 1 - weight.astype(ct)
    else:
        w, rest = jnp.asarray(weight, ct), jnp.asarray(1.0 - weight, ct)
    return (high.astype(ct) * w + low.astype(ct) * rest).astype(dtype)


def mix_linear_scheduling(x: jax.Array, quantizations: Sequence[Any], factor: Any) -> jax.Array:
    """bitorch's ``"mix_linear"`` procedure at progress ``factor`` (see the module
    docstring); ``factor`` in ``[0, 1]`` may be traced. No quantizers: ``x`` itself."""
    where = "mix_linear_scheduling"
    x = check_float_array(x, where)
    qs = check_quantizations(quantizations, where, allow_empty=True)
    factor = _check_factor(factor, where)
    n = len(qs)
    if n == 0:
        return x
    if n == 1:
        return qs[0](x)
    if not _traced(factor):
        scaled = factor * (n - 1)
        low = int(scaled)
        if low + 1 >= n:
            return qs[min(low, n - 1)](x)
        return _blend(qs[low + 1](x), qs[low](x), scaled - low)
    outputs = jnp.stack([q(x) for q in qs])
    # Python float arithmetic in the concrete branch; float32 (or float64) here.
    scaled = jnp.clip(factor, 0, 1).astype(compute_dtype(x.dtype)) * (n - 1)
    low = jnp.clip(jnp.floor(scaled).astype(jnp.int32), 0, n - 1)
    high = jnp.minimum(low + 1, n - 1)
    blended = _blend(outputs[high], outputs[low], scaled - low.astype(scaled.dtype))
    return jnp.where(low + 1 >= n, outputs[low], blended)


def step_scheduling(x: jax.Array, quantizations: Sequence[Any], factor: Any) -> jax.Array:
    """bitorch's ``"step"`` procedure at progress ``factor`` (see the module docstring);
    ``factor`` in ``[0, 1]`` may be traced. No quantizers: ``x`` itself."""
    where = "step_scheduling"
    x = check_float_array(x, where)
    qs = check_quantizations(quantizations, where, allow_empty=True)
    factor = _check_factor(factor, where)
    n = len(qs)
    if n == 0:
        return x
    if not _traced(factor):
        return qs[min(math.floor(factor * n), n - 1)](x)
    index = jnp.clip(jnp.floor(factor * n).astype(jnp.int32), 0, n - 1)
    return jax.lax.switch(index, list(qs), x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduledQuantizer(Quantization):
    """Base of the scheduled quantizers, and a placeholder that marks where a
    :class:`Quantization_Scheduler` (``schedule_all_quantizations=False``) puts one.

    Fields: ``quantizations`` (a tuple of quantizers), ``steps`` (``>= 0``),
    ``step_count`` (``>= 0``). ``factor = min(step_count / steps, 1)`` (0 without steps);
    the bit width is the last quantization's (32 without). The placeholder itself returns
    its input unchanged. Call as ``q(x)`` or ``q(x, factor=f)`` (``f`` may be traced).
    """

    name: ClassVar[str] = "scheduled_quantizer"

    quantizations: tuple[Any, ...] = ()
    steps: int = 0
    step_count: int = 0

    def __post_init__(self) -> None:
        where = type(self).__name__
        quantizations = check_quantizations(self.quantizations, where, allow_empty=True)
        object.__setattr__(self, "quantizations", quantizations)
        object.__setattr__(self, "steps", _check_count(self.steps, "steps", where, 0))
        object.__setattr__(
            self, "step_count", _check_count(self.step_count, "step_count", where, 0)
        )

    @property
    def bit_width(self) -> int:  # type: ignore[override]
        """The last quantization's bit width (32 if it has none, or without any)."""
        return getattr(self.quantizations[-1], "bit_width", 32) if self.quantizations else 32

    @property
    def factor(self) -> float:
        """``min(step_count / steps, 1)``; 0 when ``steps`` is 0."""
        return min(self.step_count / self.steps, 1.0) if self.steps else 0.0

    def next_step(self) -> ScheduledQuantizer:
        """The copy one step on (bitorch's in-place ``step()``); ``ValueError`` without steps."""
        if self.steps == 0:
            raise ValueError(f"{type(self).__name__}: next_step() needs steps > 0")
        return dataclasses.replace(self, step_count=self.step_count + 1)

    def quantize(self, x: jax.Array, factor: Any = None) -> jax.Array:
        """The input unchanged (the placeholder does not quantize)."""
        return check_float_array(x, type(self).__name__)

    def __call__(self, x: jax.Array, factor: Any = None) -> jax.Array:
        """Quantize ``x`` at ``factor`` (default: this object's :attr:`factor`)."""
        return self.quantize(x, factor)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MixLinearScheduling(ScheduledQuantizer):
    """:func:`mix_linear_scheduling` at this object's factor (or ``factor=``)."""

    name: ClassVar[str] = "__mixlinarscheduling__"  # bitorch 0.4.1's spelling

    def quantize(self, x: jax.Array, factor: Any = None) -> jax.Array:
        f = self.factor if factor is None else factor
        return mix_linear_scheduling(x, self.quantizations, f)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepScheduling(ScheduledQuantizer):
    """:func:`step_scheduling` at this object's factor (or ``factor=``)."""

    name: ClassVar[str] = "__stepscheduling__"

    def quantize(self, x: jax.Array, factor: Any = None) -> jax.Array:
        f = self.factor if factor is None else factor
        return step_scheduling(x, self.quantizations, f)


def _children(value: Any) -> list[Any]:
    """The NNX modules held by an attribute value (directly or in a list, tuple or dict)."""
    from flax import nnx

    if isinstance(value, nnx.Module):
        return [value]
    if isinstance(value, Mapping):
        return [m for v in value.values() for m in _children(v)]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "List":
        return [m for v in value for m in _children(v)]
    return []


class Quantization_Scheduler:  # noqa: N801  (bitorch 0.4.1's name)
    """bitorch's quantization scheduler for a Flax NNX model (changed in place).

    The arguments are bitorch's: ``steps`` (an int ``> 0``), ``quantizations`` (a
    non-empty sequence), ``scheduling_procedure`` (``"mix_linear"`` or ``"step"``),
    ``schedule_all_quantizations`` (every quantizer attribute of every layer, or only
    :class:`ScheduledQuantizer` placeholders) and ``exclude_layers`` (layer types left
    alone, with their sub-modules). :meth:`step` replaces every scheduled quantizer by its
    next-step copy; ``scheduled_quantizer_instances`` lists the current ones. Each new
    factor is a new static configuration: ``nnx.jit`` compiles once per scheduler step.
    """

    procedure_classes: ClassVar[dict[str, type[ScheduledQuantizer]]] = {
        "mix_linear": MixLinearScheduling,
        "step": StepScheduling,
    }

    def __init__(
        self,
        model: Any,
        steps: int,
        quantizations: Sequence[Any],
        scheduling_procedure: str,
        schedule_all_quantizations: bool = False,
        exclude_layers: Sequence[type] = (),
    ) -> None:
        from flax import nnx

        where = "Quantization_Scheduler"
        if not isinstance(model, nnx.Module):
            raise TypeError(
                f"{where}: model must be a flax.nnx.Module (linen modules are immutable: "
                f"build them with ScheduledQuantizer objects instead), got {type(model).__name__}"
            )
        self.steps = _check_count(steps, "steps", where, 1)
        self.quantizations = check_quantizations(quantizations, where, allow_empty=False)
        replace_all = check_bool(schedule_all_quantizations, "schedule_all_quantizations", where)
        exclude = tuple(exclude_layers)
        if not all(isinstance(t, type) for t in exclude):
            raise TypeError(f"{where}: exclude_layers must be types, got {exclude_layers!r}")
        self.scheduled_quantizer = self.get_scheduled_quantizer(scheduling_procedure)
        self.scheduled_quantizer_instances: list[ScheduledQuantizer] = []
        self._slots: list[tuple[Any, str]] = []
        self.replace_quantizations(model, exclude, replace_all)

    def get_scheduled_quantizer(self, procedure: str) -> type[ScheduledQuantizer]:
        """The class of ``procedure``; ``ValueError`` naming the known ones otherwise."""
        try:
            return self.procedure_classes[procedure]
        except (KeyError, TypeError):
            known = ", ".join(repr(k) for k in self.procedure_classes)
            raise ValueError(
                f"Quantization_Scheduler: unknown scheduling_procedure {procedure!r}; "
                f"known: {known}"
            ) from None

    def replace_quantizations(
        self, model: Any, exclude_layers: Sequence[type], replace_all_quantizations: bool
    ) -> None:
        """Replace ``model``'s quantizer attributes (in name order) and recurse into its
        sub-modules whose type is not in ``exclude_layers``."""
        wanted = Quantization if replace_all_quantizations else ScheduledQuantizer
        names = sorted(k for k in vars(model) if not k.startswith("_"))
        for name in names:
            if isinstance(getattr(model, name), wanted):
                instance = self.scheduled_quantizer(
                    quantizations=self.quantizations, steps=self.steps
                )
                setattr(model, name, instance)
                self.scheduled_quantizer_instances.append(instance)
                self._slots.append((model, name))
        for name in names:
            for child in _children(getattr(model, name)):
                if type(child) not in exclude_layers:
                    self.replace_quantizations(child, exclude_layers, replace_all_quantizations)

    def step(self) -> None:
        """Put every scheduled quantizer's next-step copy in its place."""
        for i, (owner, name) in enumerate(self._slots):
            advanced = self.scheduled_quantizer_instances[i].next_step()
            setattr(owner, name, advanced)
            self.scheduled_quantizer_instances[i] = advanced
