"""Default hyperparameters of the bitorch_jax quantizers, in one config object.

Mirror of :mod:`bitorch.quantizations.config` (the same class,
:class:`bitorch_common.config.QuantizationConfig`, another instance):
``InputDoReFa``/``WeightDoReFa`` read ``config.dorefa_bits`` and ``SwishSign`` reads
``config.beta`` when built without an explicit value. Values are validated when set.

Example::

    >>> from bitorch_jax.quantizations.config import config
    >>> config.beta
    5.0
"""

from __future__ import annotations

from bitorch_common.config import QuantizationConfig

__all__ = ["QuantizationConfig", "config"]

config = QuantizationConfig()
