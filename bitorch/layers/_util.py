"""Helpers shared by the layer modules (not public API)."""

from __future__ import annotations

from typing import Any

from torch import nn

from bitorch.layers.config import config
from bitorch.quantizations import _REGISTRY as quantization_registry
from bitorch.quantizations import Quantization
from bitorch_common.validation import check_threshold

__all__ = ["InputActivation", "PropertySetters", "default", "resolve_quantization"]


def default(value: Any, option: str) -> Any:
    """``value``, or the layer config's ``option`` when ``value`` is ``None``."""
    return getattr(config, option) if value is None else value


def resolve_quantization(quantization: str | Quantization, where: str) -> Quantization:
    """A quantizer given by registry name (built with its defaults) or as an instance."""
    return quantization_registry.resolve(quantization, where)


class PropertySetters(nn.Module):
    """Assigning to a property with a setter calls the setter, whatever the value.

    ``nn.Module.__setattr__`` registers a module or parameter value under the attribute
    name without looking at the class, so ``layer.input_quantization = Sign()`` would add
    a child instead of replacing the quantizer the property stands for.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        attribute = getattr(type(self), name, None)
        if isinstance(attribute, property) and attribute.fset is not None:
            attribute.fset(self, value)
        else:
            super().__setattr__(name, value)


class InputActivation(PropertySetters):
    """``input_quantization`` and ``gradient_cancellation_threshold`` of a layer whose input
    goes through its ``activation`` child (a ``QActivation``, as in bitorch 0.4.1): both
    read and set that child's values."""

    activation: Any

    @property
    def input_quantization(self) -> Quantization:
        """The input quantizer (``activation.activation_function``)."""
        return self.activation.activation_function

    @input_quantization.setter
    def input_quantization(self, quantization: str | Quantization) -> None:
        where = type(self).__name__
        self.activation.activation_function = resolve_quantization(quantization, where)

    @property
    def gradient_cancellation_threshold(self) -> float:
        """The input's gradient-cancellation threshold (``activation``'s)."""
        return self.activation.gradient_cancellation_threshold

    @gradient_cancellation_threshold.setter
    def gradient_cancellation_threshold(self, threshold: float) -> None:
        value = check_threshold(threshold, type(self).__name__)
        self.activation.gradient_cancellation_threshold = value
