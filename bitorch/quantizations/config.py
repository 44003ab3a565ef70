"""Default hyperparameters of the bitorch quantizers, in one config object.

``InputDoReFa``/``WeightDoReFa`` read ``config.dorefa_bits`` and ``SwishSign`` reads
``config.beta`` when they are built without an explicit value (or with ``None``). Values
are validated when set, so a bad default fails where it is written, not later.

As in bitorch 0.4.1 this module holds the class :class:`QuantizationConfig` and its
instance ``config``, and ``bitorch.quantizations.config`` is this module. The options can
also be read and set on the module itself (``bitorch.quantizations.config.beta = 2.0``
sets ``config.beta``); setting a name that is no option there is an ``AttributeError``.

:class:`QuantizationConfig` is :class:`bitorch_common.config.QuantizationConfig` (the
class ``bitorch_jax`` shares; each framework has its own instance) and a
:class:`bitorch.config.Config`: it has bitorch 0.4.1's ``name``
(``"quantization_config"``), argparse options (``--dorefa-bits``, ``--beta``) and
``get_*``/``set_*`` accessors, and is registered (``bitorch.config.config_from_name``).

Example::

    >>> from bitorch.quantizations.config import config
    >>> config.dorefa_bits
    1
"""

from __future__ import annotations

import sys
import types
from typing import Any

from bitorch.config import Config, register_custom_config
from bitorch_common import config as _common

__all__ = ["Config", "QuantizationConfig", "config"]


class QuantizationConfig(_common.QuantizationConfig, Config):
    """The quantizers' defaults (``dorefa_bits = 1``, ``beta = 5.0``), validated when set."""

    name = "quantization_config"

    def __init__(self, dorefa_bits: int = 1, beta: float = 5.0) -> None:
        _common.QuantizationConfig.__init__(self, dorefa_bits=dorefa_bits, beta=beta)
        Config.__init__(self)


config = QuantizationConfig()
register_custom_config(config)


class _ConfigModule(types.ModuleType):
    """This module, with the options of ``config`` readable and settable on it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(self.__dict__["config"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__") or name in self.__dict__:
            super().__setattr__(name, value)
        else:  # an option (validated), or an AttributeError that lists the options
            setattr(self.__dict__["config"], name, value)


sys.modules[__name__].__class__ = _ConfigModule
