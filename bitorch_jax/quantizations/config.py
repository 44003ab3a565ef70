"""Default hyperparameters of the quantizers, in one config object.

Mirror of :mod:`bitorch.quantizations.config`: ``InputDoReFa``/``WeightDoReFa`` read
``config.dorefa_bits`` and ``SwishSign`` reads ``config.beta`` when built without an
explicit value. Values are validated when set.

Example::

    >>> from bitorch_jax.quantizations.config import config
    >>> config.beta
    5.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bitorch_jax.quantizations.base import check_beta, check_bits

__all__ = ["QuantizationConfig", "config"]


@dataclass
class QuantizationConfig:
    """Defaults used by quantizers built without explicit hyperparameters."""

    dorefa_bits: int = 1
    beta: float = 5.0

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "dorefa_bits":
            value = check_bits(value, "config.dorefa_bits")
        elif key == "beta":
            value = float(check_beta(value, "config.beta"))
        else:
            raise AttributeError(f"QuantizationConfig has no option {key!r}")
        super().__setattr__(key, value)


config = QuantizationConfig()
