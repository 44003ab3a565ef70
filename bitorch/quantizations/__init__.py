"""Quantizers of bitorch (PyTorch reference) and their registry by name.

>>> from bitorch.quantizations import quantization_from_name
>>> quantization_from_name("sign")()(torch.tensor([-2.0, 0.0]))
tensor([-1.,  1.])
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest above)

from bitorch.quantizations.approx_sign import ApproxSign, ApproxSignFunction, approx_sign
from bitorch.quantizations.base import STE, Quantization
from bitorch.quantizations.config import QuantizationConfig, config
from bitorch.quantizations.dorefa import (
    InputDoReFa,
    InputDoReFaFunction,
    WeightDoReFa,
    WeightDoReFaFunction,
    input_dorefa,
    weight_dorefa,
)
from bitorch.quantizations.identity import Identity, identity
from bitorch.quantizations.sign import Sign, SignFunction, sign
from bitorch.quantizations.ste_heaviside import SteHeaviside, SteHeavisideFunction, ste_heaviside
from bitorch.quantizations.swish_sign import SwishSign, SwishSignFunction, swish_sign
from bitorch_common.registry import Registry

__all__ = [
    "Quantization",
    "STE",
    "Sign",
    "ApproxSign",
    "SwishSign",
    "SteHeaviside",
    "InputDoReFa",
    "WeightDoReFa",
    "Identity",
    "SignFunction",
    "ApproxSignFunction",
    "SwishSignFunction",
    "SteHeavisideFunction",
    "InputDoReFaFunction",
    "WeightDoReFaFunction",
    "sign",
    "approx_sign",
    "swish_sign",
    "ste_heaviside",
    "input_dorefa",
    "weight_dorefa",
    "identity",
    "QuantizationConfig",
    "config",
    "quantization_from_name",
    "quantization_names",
    "register_custom_quantization",
]

_REGISTRY = Registry(Quantization)

register_custom_quantization = _REGISTRY.register
"""Register a :class:`Quantization` subclass under its ``name``; returns the class.

Usable as a class decorator. ``TypeError`` if it is not a Quantization subclass,
``ValueError`` if its name is missing or taken by another class; a new definition of the
same class (same module and qualified name, e.g. a notebook cell run twice) replaces the
old one with a warning. See :class:`bitorch_common.registry.Registry`.
"""

quantization_names = _REGISTRY.names
quantization_from_name = _REGISTRY.lookup

for _cls in (Sign, ApproxSign, SwishSign, SteHeaviside, InputDoReFa, WeightDoReFa, Identity):
    register_custom_quantization(_cls)
del _cls
