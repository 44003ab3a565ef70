"""Helpers shared by the layer modules (not public API)."""

from __future__ import annotations

from typing import Any

from torch import nn

from bitorch.layers.config import config
from bitorch.quantizations import _REGISTRY as quantization_registry
from bitorch.quantizations import Quantization

__all__ = ["PropertySetters", "default", "resolve_quantization"]


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
