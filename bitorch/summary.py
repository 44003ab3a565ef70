"""``summary(model, *example_inputs)``: parameters per bit width, memory and MACs per layer.

The PyTorch side of :mod:`bitorch_common.summary`, where the rules are (bit widths, stored
and packed memory, binary and full-precision MACs). The layers are the leaf modules (a
layer's quantizers count as part of it) and the modules with parameters of their own; the
example inputs run once through the model (in eval mode and without gradients; the
training flags are restored afterwards) with forward hooks that take each layer's output
shape and count its MACs. Rows are in call order, modules that were not called last
(output shape ``?``). The module itself is callable: ``bitorch.summary(model,
*example_inputs)`` is :func:`summary`.

>>> import torch
>>> from torch import nn
>>> from bitorch.layers import QLinear
>>> info = summary(nn.Sequential(QLinear(8, 4), nn.Linear(4, 2)), torch.zeros(1, 8))
>>> info.params_by_bits, info.binary_macs, info.fp_macs
({1: 32, 32: 14}, 32, 8)
>>> print(info)
Sequential (torch)
+-------+---------+--------+---------+----------+----------+----------+-------------+---------+
| Layer | Type    | Output | # 1-bit | # 32-bit | Stored B | Packed B | Binary MACs | FP MACs |
+-------+---------+--------+---------+----------+----------+----------+-------------+---------+
| 0     | QLinear | (1, 4) |      32 |        4 |      144 |       20 |          32 |       0 |
| 1     | Linear  | (1, 2) |       0 |       10 |       40 |       40 |           0 |       8 |
+-------+---------+--------+---------+----------+----------+----------+-------------+---------+
| Total |         |        |      32 |       14 |      184 |       60 |          32 |       8 |
+-------+---------+--------+---------+----------+----------+----------+-------------+---------+
Total params                 46
  1-bit                      32
  32-bit                     14
Memory stored                184 B
Memory packed                60 B
Compression (stored/packed)  3.07x
MACs binary / FP             32 / 8
Binary share of MACs         80.00%
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch
from torch import nn

from bitorch.quantizations import Quantization
from bitorch_common.summary import (
    LayerSummary,
    ModelSummary,
    dense_macs,
    layer_summary,
    stored_bit_width,
)

__all__ = ["summary", "ModelSummary", "LayerSummary"]


def _quantizer_bits(module: nn.Module, attribute: str) -> int | None:
    quantizer = getattr(module, attribute, None)
    return int(quantizer.bit_width) if isinstance(quantizer, Quantization) else None


def _is_dense(module: nn.Module) -> bool:
    """Dense and (not transposed) convolution layers: the layers whose MACs are counted."""
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.modules.conv._ConvNd) and not module.transposed


def _first_shape(output: Any) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        for item in output:
            shape = _first_shape(item)
            if shape is not None:
                return shape
    return None


def _is_part(name: str, child: nn.Module) -> bool:
    """A part of a layer: a quantizer, or the layer's input activation (bitorch 0.4.1's
    ``activation`` child of ``QLinear``/``QConv*``, a ``QActivation``)."""
    return isinstance(child, Quantization) or (name == "activation" and _is_layer(child))


def _is_layer(module: nn.Module) -> bool:
    """A module whose children (if any) are all parts: a layer, its quantizers part
    of it (``QLinear``, ``QConv2d``, ``QActivation``, ``nn.Linear``, ...)."""
    return all(_is_part(name, child) for name, child in module.named_children())


def _own_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor, bool]]:
    """``(name, tensor, is_parameter)``: the module's own parameters and float buffers,
    and those of its quantizers when it is a layer (a learnable quantizer's scale)."""
    out = [(n, t, True) for n, t in module.named_parameters(recurse=False)]
    out += [(n, t, False) for n, t in module.named_buffers(recurse=False)]
    if _is_layer(module):
        for prefix, child in module.named_children():
            out += [(f"{prefix}.{n}", t, True) for n, t in child.named_parameters()]
            out += [(f"{prefix}.{n}", t, False) for n, t in child.named_buffers()]
    return [(n, t, is_param) for n, t, is_param in out if is_param or t.is_floating_point()]


def _variables(module: nn.Module) -> list[tuple[int, int, int]]:
    """``(count, bit width, itemsize)`` of :func:`_own_tensors`; the ``weight`` counts at
    the weight quantizer's bit width."""
    weight_bits = _quantizer_bits(module, "weight_quantization")
    out = []
    for name, tensor, _ in _own_tensors(module):
        quantizer_bits = weight_bits if name == "weight" else None
        bits = stored_bit_width(tensor.element_size() * 8, quantizer_bits)
        out.append((tensor.numel(), bits, tensor.element_size()))
    return out


def summary(model: nn.Module, *example_inputs: Any) -> ModelSummary:
    """Summarise ``model`` run on ``example_inputs`` (batched: the batch is dimension 0).

    Returns a :class:`~bitorch_common.summary.ModelSummary`: ``print`` it for the table,
    ``.to_dict()``/``.to_json()`` for the numbers. A quantized layer's ``weight`` counts at
    its ``weight_quantization.bit_width``; its MACs are binary when the input and weight
    quantizers are both 1-bit. See :mod:`bitorch_common.summary` for every rule.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: model must be a torch.nn.Module, got {type(model).__name__}")
    # Rows: layers (a quantizer inside a layer is part of it, not a row of its own; one
    # used on its own, say as an activation in a Sequential, is a layer) and modules with
    # tensors of their own.
    parents = {id(c): (m, n) for m in model.modules() for n, c in m.named_children()}

    def is_row(module: nn.Module) -> bool:
        parent, name = parents.get(id(module), (None, ""))
        if parent is not None and _is_part(name, module) and _is_layer(parent):
            return False
        return _is_layer(module) or bool(_own_tensors(module))

    layers = [(name, module) for name, module in model.named_modules() if is_row(module)]
    shapes: dict[int, tuple[int, ...] | None] = {}
    macs: dict[int, int] = {}
    order: list[int] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        key = id(module)
        shape = _first_shape(output)
        if key not in shapes:
            shapes[key] = shape
            order.append(key)
        if _is_dense(module) and shape is not None:
            weight = module.weight
            macs[key] = macs.get(key, 0) + dense_macs(shape, weight.numel(), weight.shape[0])

    handles = [module.register_forward_hook(hook) for _, module in layers]
    training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag

    rank = {key: i for i, key in enumerate(order)}
    layers.sort(key=lambda item: rank.get(id(item[1]), len(rank)))
    rows = []
    for name, module in layers:
        binary = _quantizer_bits(module, "input_quantization") == 1 and (
            _quantizer_bits(module, "weight_quantization") == 1
        )
        rows.append(
            layer_summary(
                name,
                type(module).__name__,
                shapes.get(id(module)),
                _variables(module),
                macs=macs.get(id(module), 0),
                binary=binary,
            )
        )
    return ModelSummary(type(model).__name__, "torch", tuple(rows))


class _CallableModule(types.ModuleType):
    """This module, callable: ``bitorch.summary(model, *example_inputs)`` is
    ``bitorch.summary.summary(model, *example_inputs)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> ModelSummary:
        return summary(*args, **kwargs)


if __name__ in sys.modules:
    sys.modules[__name__].__class__ = _CallableModule
