"""Quantizers of bitorch_jax (JAX port of bitorch) and their registry by name.

Mirror of :mod:`bitorch.quantizations`: same classes, same registry keys.

>>> from bitorch_jax.quantizations import quantization_from_name
>>> quantization_from_name("sign")()(jnp.array([-2.0, 0.0]))
Array([-1.,  1.], dtype=float32)
"""

from __future__ import annotations

import jax.numpy as jnp  # noqa: F401  (used by the doctest above)

from bitorch_common.registry import Registry
from bitorch_jax.quantizations.approx_sign import ApproxSign, approx_sign
from bitorch_jax.quantizations.base import Quantization, straight_through
from bitorch_jax.quantizations.config import QuantizationConfig, config
from bitorch_jax.quantizations.dorefa import (
    InputDoReFa,
    WeightDoReFa,
    input_dorefa,
    weight_dorefa,
)
from bitorch_jax.quantizations.dorefa_larq import LarqDoReFa, larq_dorefa
from bitorch_jax.quantizations.identity import Identity, identity
from bitorch_jax.quantizations.magnitude_aware_sign import (
    MagnitudeAwareSign,
    XnorScaled,
    magnitude_aware_sign,
    xnor_scaled,
)
from bitorch_jax.quantizations.progressive_sign import ProgressiveSign, progressive_sign
from bitorch_jax.quantizations.quantization_scheduler import (
    MixLinearScheduling,
    Quantization_Scheduler,
    ScheduledQuantizer,
    StepScheduling,
    mix_linear_scheduling,
    schedule_factor,
    step_scheduling,
)
from bitorch_jax.quantizations.sign import Sign, sign
from bitorch_jax.quantizations.ste_heaviside import SteHeaviside, ste_heaviside
from bitorch_jax.quantizations.ste_sign import SteSign, ste_sign
from bitorch_jax.quantizations.swish_sign import SwishSign, swish_sign
from bitorch_jax.quantizations.ternary import SteTernary, ste_ternary

__all__ = [
    "SteSign",
    "ste_sign",
    "MagnitudeAwareSign",
    "magnitude_aware_sign",
    "XnorScaled",
    "xnor_scaled",
    "SteTernary",
    "ste_ternary",
    "LarqDoReFa",
    "larq_dorefa",
    "Quantization",
    "straight_through",
    "Sign",
    "ApproxSign",
    "SwishSign",
    "SteHeaviside",
    "InputDoReFa",
    "WeightDoReFa",
    "Identity",
    "sign",
    "approx_sign",
    "swish_sign",
    "ste_heaviside",
    "input_dorefa",
    "weight_dorefa",
    "identity",
    "ProgressiveSign",
    "progressive_sign",
    "Quantization_Scheduler",
    "ScheduledQuantizer",
    "MixLinearScheduling",
    "StepScheduling",
    "mix_linear_scheduling",
    "step_scheduling",
    "schedule_factor",
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
