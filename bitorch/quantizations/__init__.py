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

_REGISTRY: dict[str, type[Quantization]] = {}


def register_custom_quantization(cls: type[Quantization]) -> type[Quantization]:
    """Register a :class:`Quantization` subclass under its ``name``; returns ``cls``.

    Usable as a class decorator. Raises ``TypeError`` if ``cls`` is not a Quantization
    subclass and ``ValueError`` if its name is missing or already taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Quantization)):
        raise TypeError(
            f"register_custom_quantization expects a Quantization subclass, got {cls!r}"
        )
    key = cls.name
    if not isinstance(key, str) or not key or key == Quantization.name:
        raise ValueError(f"{cls.__name__} needs a class attribute `name` (its registry key)")
    if key != key.lower():
        raise ValueError(f"registry keys are lower case; {cls.__name__}.name is {key!r}")
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise ValueError(f"quantization name {key!r} is already registered to {_REGISTRY[key]!r}")
    _REGISTRY[key] = cls
    return cls


def quantization_names() -> list[str]:
    """The registry keys, sorted."""
    return sorted(_REGISTRY)


def quantization_from_name(name: str) -> type[Quantization]:
    """The Quantization class registered under ``name`` (case-insensitive).

    Raises ``TypeError`` for a non-string and ``ValueError`` naming the known keys for an
    unknown name.
    """
    if not isinstance(name, str):
        raise TypeError(f"quantization name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown quantization {name!r}; known names: {', '.join(quantization_names())}"
        ) from None


for _cls in (Sign, ApproxSign, SwishSign, SteHeaviside, InputDoReFa, WeightDoReFa, Identity):
    register_custom_quantization(_cls)
del _cls
