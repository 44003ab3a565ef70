"""The quantizers' default hyperparameters: one class, one instance per framework.

``bitorch.quantizations.config`` and ``bitorch_jax.quantizations.config`` are each an
instance of :class:`QuantizationConfig` (changing one does not change the other).
``InputDoReFa``/``WeightDoReFa`` read ``dorefa_bits`` and ``SwishSign`` reads ``beta`` when
they are built without an explicit value. Values are validated when set, so a bad default
fails where it is written, not later.

>>> config = QuantizationConfig()
>>> config.dorefa_bits, config.beta
(1, 5.0)
>>> config.beta = 0
Traceback (most recent call last):
...
ValueError: config.beta: beta must be finite and > 0, got 0.0
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bitorch_common.validation import check_beta, check_bits

__all__ = ["QuantizationConfig"]

_CHECKS = {"dorefa_bits": check_bits, "beta": check_beta}


@dataclass
class QuantizationConfig:
    """Defaults used by quantizers built without explicit hyperparameters."""

    dorefa_bits: int = 1
    beta: float = 5.0

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in _CHECKS:
            known = ", ".join(f.name for f in fields(self))
            raise AttributeError(f"QuantizationConfig has no option {key!r}; options: {known}")
        super().__setattr__(key, _CHECKS[key](value, f"config.{key}"))

    def reset(self) -> None:
        """Put every option back to its default."""
        for f in fields(self):
            setattr(self, f.name, f.default)
