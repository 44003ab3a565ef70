"""The layers' defaults, as bitorch 0.4.1's ``bitorch.layers.config``.

:class:`LayerConfig` is a :class:`bitorch.config.Config` named ``"layer_config"``; its
instance ``config`` is registered (``bitorch.config.config_from_name("layer_config")``,
argparse options ``--input-quantization``, ``--weight-quantization``,
``--debug-activated``, ``--padding-value``, ``--gradient-cancellation-threshold``,
``--pact-bits``). A layer reads the config when it is built, wherever an argument is
left at ``None`` (the default): changing ``config`` changes the layers built afterwards,
not the ones that exist.

===================================  =========  ============================================
option                               default    read by
===================================  =========  ============================================
``input_quantization``               ``"sign"`` ``QActivation`` (and the layers' input),
                                                ``QEmbedding``/``QEmbeddingBag`` output
``weight_quantization``              ``"sign"`` ``QLinear``, ``QConv*``, embeddings
``gradient_cancellation_threshold``  ``1.0``    ``QActivation``, ``QLinear``, ``QConv*``
``padding_value``                    ``-1.0``   ``QConv*`` (``pad_value``)
``pact_bits``                        ``4``      ``Pact``
``debug_activated``                  ``False``  the debug layers (print / draw when True)
===================================  =========  ============================================

Values are checked when they are set (a bad default fails where it is written). Unlike
bitorch 0.4.1, an explicit falsy argument is not replaced by the config value: a layer
built with ``gradient_cancellation_threshold=0`` has cancellation off, ``pad_value=0``
pads with 0.

>>> from bitorch.layers.config import config
>>> config.gradient_cancellation_threshold
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bitorch.config import Config, register_custom_config
from bitorch.quantizations import _REGISTRY as quantization_registry
from bitorch.quantizations import Quantization
from bitorch_common.validation import (
    check_bits,
    check_bool,
    check_pad_value,
    check_quantization_spec,
    check_threshold,
)

__all__ = ["LayerConfig", "config"]


def _quantization_option(value: Any, where: str) -> Any:
    check_quantization_spec(value, Quantization, where)
    if isinstance(value, str):
        try:
            quantization_registry.lookup(value)
        except ValueError as error:  # an unknown name fails here, listing the known ones
            raise ValueError(f"{where}: {error}") from None
    return value


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "input_quantization": _quantization_option,
    "weight_quantization": _quantization_option,
    "debug_activated": lambda value, where: check_bool(value, "debug_activated", where),
    "padding_value": check_pad_value,
    "gradient_cancellation_threshold": check_threshold,
    "pact_bits": check_bits,
}


class LayerConfig(Config):
    """Defaults of the quantized layers (bitorch 0.4.1's ``LayerConfig``)."""

    name = "layer_config"

    #: quantization of the layers' inputs (and of the embeddings' outputs)
    input_quantization: str | Quantization = "sign"
    #: quantization of the layers' weights
    weight_quantization: str | Quantization = "sign"
    #: print / draw in the debug layers
    debug_activated: bool = False
    #: the constant the quantized convolutions pad their (quantized) input with
    padding_value: float = -1.0
    #: gradient cancellation: the input gradient is zeroed where ``|x| > threshold``
    gradient_cancellation_threshold: float = 1.0
    #: bits of the Pact activation
    pact_bits: int = 4

    def __setattr__(self, key: str, value: Any) -> None:
        check = _CHECKS.get(key)
        if check is not None:
            value = check(value, f"config.{key}")
        super().__setattr__(key, value)

    def get_quantization_function(self, quantization: str | Quantization) -> Quantization:
        """The quantizer named ``quantization`` (built with its defaults), or
        ``quantization`` itself when it is a :class:`~bitorch.quantizations.Quantization`.

        An unknown name is a ``ValueError`` listing the known names; any other type a
        ``TypeError`` (bitorch 0.4.1: ``ValueError``).
        """
        return quantization_registry.resolve(quantization, "get_quantization_function")


config = LayerConfig()
register_custom_config(config)
