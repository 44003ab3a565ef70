"""Default hyperparameters of the bitorch quantizers, in one config object.

``InputDoReFa``/``WeightDoReFa`` read ``config.dorefa_bits`` and ``SwishSign`` reads
``config.beta`` when they are built without an explicit value. Values are validated when
set, so a bad default fails where it is written, not later. The class is
:class:`bitorch_common.config.QuantizationConfig`, shared with ``bitorch_jax`` (which has
its own instance).

Example::

    >>> from bitorch.quantizations.config import config
    >>> config.dorefa_bits
    1
"""

from __future__ import annotations

from bitorch_common.config import QuantizationConfig

__all__ = ["QuantizationConfig", "config"]

config = QuantizationConfig()
