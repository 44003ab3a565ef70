"""Quantizers of bitorch (PyTorch reference) and their registry by name.

>>> from bitorch.quantizations import quantization_from_name
>>> quantization_from_name("sign")()(torch.tensor([-2.0, 0.0]))
tensor([-1.,  1.])
"""

from __future__ import annotations

from types import MappingProxyType

import torch  # noqa: F401  (used by the doctest above)

# Submodules, as in bitorch 0.4.1; a quantizer's submodule is also its functional form
# (bitorch.quantizations.sign(x)), and config's options can be used on it.
from bitorch.quantizations import (
    approx_sign,
    config,
    identity,
    magnitude_aware_sign,
    progressive_sign,
    sign,
    ste_heaviside,
    ste_sign,
    swish_sign,
)
from bitorch.quantizations.approx_sign import ApproxSign, ApproxSignFunction
from bitorch.quantizations.base import STE, Quantization
from bitorch.quantizations.config import QuantizationConfig
from bitorch.quantizations.dorefa import (
    InputDoReFa,
    InputDoReFaFunction,
    WeightDoReFa,
    WeightDoReFaFunction,
    input_dorefa,
    weight_dorefa,
)
from bitorch.quantizations.dorefa_larq import LarqDoReFa, LarqDoReFaFunction, larq_dorefa
from bitorch.quantizations.identity import Identity
from bitorch.quantizations.magnitude_aware_sign import (
    ChannelScaleFunction,
    MagnitudeAwareSign,
    MagnitudeAwareSignFunction,
    XnorScaled,
    xnor_scaled,
)
from bitorch.quantizations.progressive_sign import ProgressiveSign, ProgressiveSignFunctionTrain
from bitorch.quantizations.quantization_scheduler import (
    MixLinearScheduling,
    Quantization_Scheduler,
    ScheduledQuantizer,
    StepScheduling,
)
from bitorch.quantizations.sign import Sign, SignFunction
from bitorch.quantizations.ste_heaviside import SteHeaviside, SteHeavisideFunction
from bitorch.quantizations.ste_sign import SteSign, SteSignFunction
from bitorch.quantizations.swish_sign import SwishSign, SwishSignFunction
from bitorch.quantizations.ternary import SteTernary, SteTernaryFunction, ste_ternary
from bitorch_common.registry import Registry

__all__ = [
    "SteSign",
    "SteSignFunction",
    "ste_sign",
    "MagnitudeAwareSign",
    "MagnitudeAwareSignFunction",
    "magnitude_aware_sign",
    "XnorScaled",
    "ChannelScaleFunction",
    "xnor_scaled",
    "SteTernary",
    "SteTernaryFunction",
    "ste_ternary",
    "LarqDoReFa",
    "LarqDoReFaFunction",
    "larq_dorefa",
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
    "ProgressiveSign",
    "ProgressiveSignFunctionTrain",
    "progressive_sign",
    "Quantization_Scheduler",
    "ScheduledQuantizer",
    "MixLinearScheduling",
    "StepScheduling",
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

for _cls in (
    Sign,
    ApproxSign,
    SwishSign,
    SteHeaviside,
    InputDoReFa,
    WeightDoReFa,
    Identity,
    ProgressiveSign,
    SteSign,
    MagnitudeAwareSign,
    XnorScaled,
    SteTernary,
    LarqDoReFa,
):
    register_custom_quantization(_cls)
del _cls


def __getattr__(name: str) -> object:
    # bitorch 0.4.1's lookup dict, read-only here (register with register_custom_quantization).
    if name == "quantizations_by_name":
        return MappingProxyType({key: _REGISTRY.lookup(key) for key in _REGISTRY.names()})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
