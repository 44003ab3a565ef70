"""Scheduled quantization: move from one quantizer to the next as training goes on.

A :class:`Quantization_Scheduler` replaces the quantizers inside a model by scheduled
quantizers (all of them, or only the :class:`ScheduledQuantizer` placeholders) that
hold copies of a list of quantizers and a progress ``factor = min(step / steps, 1)``;
``scheduler.step()`` (once per step, e.g. per epoch) advances every one of them. The
procedures (``scheduling_procedure``):

* ``"mix_linear"`` (:class:`MixLinearScheduling`): with ``n`` quantizers,
  ``s = factor * (n - 1)``, ``i = floor(s)``, ``w = s - i``: the output is
  ``q[i+1](x) * w + q[i](x) * (1 - w)`` (just ``q[n-1](x)`` once ``factor = 1``, and
  ``q[0](x)`` when ``n = 1``). The blend of half-precision outputs is computed in
  float32 and rounded once (SPEC.md).
* ``"step"`` (:class:`StepScheduling`): ``q[min(floor(factor * n), n - 1)](x)``.

Example::

    >>> from bitorch.quantizations import Identity, Sign
    >>> model = torch.nn.Sequential(ScheduledQuantizer())
    >>> scheduler = Quantization_Scheduler(model, 2, [Identity(), Sign()], "mix_linear")
    >>> x = torch.tensor([-0.5, 0.5])
    >>> model(x), scheduler.step(), model(x)
    (tensor([-0.5000,  0.5000]), None, tensor([-0.7500,  0.7500]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import torch
from torch.nn import Module

from bitorch.quantizations.base import Quantization
from bitorch_common.validation import check_bool, check_quantizations, is_int

__all__ = [
    "ScheduledQuantizer",
    "MixLinearScheduling",
    "StepScheduling",
    "Quantization_Scheduler",
]


def _check_quantizations(quantizations: Any, where: str, *, allow_empty: bool) -> list[Any]:
    return list(check_quantizations(quantizations, where, allow_empty=allow_empty))


def _check_steps(steps: Any, where: str, *, minimum: int) -> int:
    if not is_int(steps):
        raise TypeError(f"{where}: steps must be an int, got {type(steps).__name__} {steps!r}")
    if steps < minimum:
        raise ValueError(f"{where}: steps must be >= {minimum}, got {steps}")
    return int(steps)


class ScheduledQuantizer(Quantization):
    """Base of the scheduled quantizers, and the placeholder that marks where a
    :class:`Quantization_Scheduler` (with ``schedule_all_quantizations=False``) puts one.

    Holds deep copies of ``quantizations``, ``steps``, ``step_count`` (starts at 0) and
    ``factor = min(step_count / steps, 1)``. Its bit width is the last quantization's (32
    if it has none, or without quantizations). Its own ``quantize`` returns the input
    unchanged; the procedures override it.
    """

    name = "scheduled_quantizer"
    bit_width = 32

    def __init__(self, quantizations: Sequence[Quantization] = (), steps: int = 0) -> None:
        super().__init__()
        where = type(self).__name__
        self.quantizations = [
            deepcopy(q) for q in _check_quantizations(quantizations, where, allow_empty=True)
        ]
        if self.quantizations:
            self.bit_width = getattr(self.quantizations[-1], "bit_width", 32)
        self.step_count = 0
        self.factor = 0.0
        self.steps = _check_steps(steps, where, minimum=0)

    def step(self) -> None:
        """Count one step and update ``factor = min(step_count / steps, 1)``.

        ``ValueError`` if ``steps`` is 0 (bitorch 0.4.1: ``ZeroDivisionError``).
        """
        if self.steps == 0:
            raise ValueError(
                f"{type(self).__name__}: step() needs steps > 0 (it was built with steps=0)"
            )
        self.step_count += 1
        self.factor = min(self.step_count / self.steps, 1.0)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """The input unchanged (the placeholder does not quantize)."""
        return x


def _blend(high: torch.Tensor, low: torch.Tensor, weight: float) -> torch.Tensor:
    """``high * weight + low * (1 - weight)``, halves computed in float32 and rounded once."""
    dtype = torch.result_type(high, low)
    ct = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return (high.to(ct) * weight + low.to(ct) * (1.0 - weight)).to(dtype)


class MixLinearScheduling(ScheduledQuantizer):
    """Linear interpolation between neighbouring quantizations (``"mix_linear"``)."""

    name = "__mixlinarscheduling__"  # bitorch 0.4.1's spelling

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.quantizations)
        if n == 0:
            return x
        if n == 1:
            return self.quantizations[0](x)
        scaled = self.factor * (n - 1)
        low = int(scaled)
        if low + 1 >= n:
            return self.quantizations[min(low, n - 1)](x)
        weight = scaled - low
        return _blend(self.quantizations[low + 1](x), self.quantizations[low](x), weight)


class StepScheduling(ScheduledQuantizer):
    """One quantization at a time, in ``n`` equal stretches of the factor (``"step"``)."""

    name = "__stepscheduling__"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.quantizations)
        if n == 0:
            return x
        return self.quantizations[min(math.floor(self.factor * n), n - 1)](x)


class Quantization_Scheduler(Module):  # noqa: N801  (bitorch 0.4.1's name)
    """Replace quantizers inside ``model`` by scheduled ones and advance them together.

    Args:
        model: the model whose quantizers are replaced (in place).
        steps: the number of steps (e.g. epochs), an int ``> 0``; call :meth:`step` once
            per step.
        quantizations: the quantizers to schedule, a non-empty list (each scheduled
            quantizer holds deep copies).
        scheduling_procedure: ``"mix_linear"`` or ``"step"`` (see the module docstring).
        schedule_all_quantizations: replace every quantizer of the model (True) or only
            the :class:`ScheduledQuantizer` placeholders (False, the default).
        exclude_layers: layer types whose quantizers (and whose sub-modules') are left
            alone; the model itself is never excluded.

    Bad arguments raise ``TypeError``/``ValueError`` naming them (bitorch 0.4.1: asserts,
    and ``KeyError`` for an unknown procedure). Quantizers are found among each module's
    registered sub-modules, in name order, as bitorch 0.4.1's ``dir()`` walk finds them.
    """

    procedure_classes: dict[str, type[ScheduledQuantizer]] = {
        "mix_linear": MixLinearScheduling,
        "step": StepScheduling,
    }

    def __init__(
        self,
        model: Module,
        steps: int,
        quantizations: Sequence[Quantization],
        scheduling_procedure: str,
        schedule_all_quantizations: bool = False,
        exclude_layers: Sequence[type] = (),
    ) -> None:
        super().__init__()
        where = "Quantization_Scheduler"
        if not isinstance(model, Module):
            raise TypeError(f"{where}: model must be a torch.nn.Module, got {type(model).__name__}")
        self.steps = _check_steps(steps, where, minimum=1)
        self.quantizations = _check_quantizations(quantizations, where, allow_empty=False)
        schedule_all_quantizations = check_bool(
            schedule_all_quantizations, "schedule_all_quantizations", where
        )
        exclude = list(exclude_layers)
        if not all(isinstance(t, type) for t in exclude):
            raise TypeError(
                f"{where}: exclude_layers must be a list of types, got {exclude_layers!r}"
            )
        self.scheduled_quantizer = self.get_scheduled_quantizer(scheduling_procedure)
        self.scheduled_quantizer_instances: list[ScheduledQuantizer] = []
        self.replace_quantizations(model, exclude, schedule_all_quantizations)

    def get_scheduled_quantizer(self, procedure: str) -> type[ScheduledQuantizer]:
        """The :class:`ScheduledQuantizer` subclass of ``procedure``; ``ValueError``
        naming the known procedures otherwise."""
        try:
            return self.procedure_classes[procedure]
        except (KeyError, TypeError):
            known = ", ".join(repr(k) for k in self.procedure_classes)
            raise ValueError(
                f"Quantization_Scheduler: unknown scheduling_procedure {procedure!r}; "
                f"known: {known}"
            ) from None

    def replace_quantizations(
        self, model: Module, exclude_layers: Sequence[type], replace_all_quantizations: bool
    ) -> None:
        """Replace the quantizers among ``model``'s sub-modules (every :class:`Quantization`,
        or only :class:`ScheduledQuantizer` placeholders) by new scheduled quantizers, and
        recurse into the sub-modules whose type is not in ``exclude_layers``."""
        wanted = Quantization if replace_all_quantizations else ScheduledQuantizer
        for name in sorted(name for name, _ in model.named_children()):
            if isinstance(getattr(model, name), wanted):
                instance = self.scheduled_quantizer(self.quantizations, self.steps)
                self.scheduled_quantizer_instances.append(instance)
                setattr(model, name, instance)
        for child in model.children():
            if type(child) not in exclude_layers:
                self.replace_quantizations(child, exclude_layers, replace_all_quantizations)

    def step(self) -> None:
        """Advance every scheduled quantizer this scheduler put into the model."""
        for scheduled_quantizer in self.scheduled_quantizer_instances:
            scheduled_quantizer.step()
