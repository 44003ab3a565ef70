"""``summary(model, *example_inputs)``: parameters per bit width, memory and MACs per layer.

The Flax side of :mod:`bitorch_common.summary`, where the rules are (bit widths, stored and
packed memory, binary and full-precision MACs); the same rules as ``bitorch.summary``. The
model runs once under :func:`jax.eval_shape` (no arithmetic, the model is not changed), so
the example inputs may be arrays or :class:`jax.ShapeDtypeStruct`. The module itself is
callable: ``bitorch_jax.summary(model, *example_inputs)`` is :func:`summary`.

* **NNX** (``nnx.Module``): the model is split and merged inside the trace; each module's
  ``__call__`` is wrapped for the duration of the call to record its output shape (the
  module classes are restored afterwards; do not run the same classes in another thread
  meanwhile). Counted variables: ``nnx.Param`` and ``nnx.BatchStat``.
* **linen** (``nn.Module``): :func:`flax.linen.intercept_methods` records each
  ``__call__``; ``variables`` default to the abstract ones of ``model.init`` (PRNG streams
  ``params`` and ``dropout``). Counted collections: ``params`` and ``batch_stats``.

The layers are the leaf modules and the modules with variables of their own, in call order
(modules that were not called last, output shape ``?``); names are paths joined by ``.``.
Dense and convolution layers (``QLinear``/``QDense``, ``QConv``, ``nnx.Linear``,
``nnx.Conv``, ``nn.Dense``, ``nn.Conv``) have MACs; a quantized layer's ``kernel`` counts
at its ``weight_quantization.bit_width``.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> from bitorch_jax.layers.nnx import QLinear
>>> class Net(nnx.Module):
...     def __init__(self, rngs):
...         self.q = QLinear(8, 4, rngs=rngs)
...         self.fc = nnx.Linear(4, 2, rngs=rngs)
...     def __call__(self, x):
...         return self.fc(self.q(x))
>>> info = summary(Net(nnx.Rngs(0)), jnp.zeros((1, 8)))
>>> info.params_by_bits, info.packed_bytes, info.binary_macs, info.fp_macs
({1: 32, 32: 14}, 60.0, 32, 8)
>>> [(layer.name, layer.type, layer.output_shape) for layer in info.layers]
[('q', 'QLinear', (1, 4)), ('fc', 'Linear', (1, 2))]
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_common.summary import (
    LayerSummary,
    ModelSummary,
    dense_macs,
    layer_summary,
    stored_bit_width,
)
from bitorch_jax.layers import linen as qlinen
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.layers.qactivation import resolve_quantization
from bitorch_jax.quantizations import Quantization

__all__ = ["summary", "ModelSummary", "LayerSummary"]

_Path = tuple[str, ...]

_NNX_DENSE = (qnnx.QLinear, qnnx.QConv, nnx.Linear, nnx.Conv)
_LINEN_DENSE = (qlinen.QDense, qlinen.QConv, nn.Dense, nn.Conv)


def _quantizer_bits(module: Any, attribute: str) -> int | None:
    """``bit_width`` of ``module.<attribute>`` (a quantizer or a registry name), or None."""
    quantizer = getattr(module, attribute, None)
    if isinstance(quantizer, str):
        quantizer = resolve_quantization(quantizer, type(module).__name__)
    return int(quantizer.bit_width) if isinstance(quantizer, Quantization) else None


def _first_shape(output: Any) -> tuple[int, ...] | None:
    leaves = [leaf for leaf in jax.tree.leaves(output) if hasattr(leaf, "shape")]
    return tuple(leaves[0].shape) if leaves else None


def _names(path: Any) -> _Path:
    return tuple(str(p) for p in path)


def _variable_entry(name: str, value: Any, weight_bits: int | None) -> tuple[int, int, int]:
    itemsize = jnp.dtype(value.dtype).itemsize
    bits = stored_bit_width(itemsize * 8, weight_bits if name == "kernel" else None)
    size = 1
    for d in value.shape:
        size *= int(d)
    return size, bits, itemsize


def _layer(
    path: _Path,
    module: Any,
    variables: list[tuple[str, Any]],
    shapes: list[tuple[int, ...] | None],
    dense: bool,
) -> LayerSummary:
    weight_bits = _quantizer_bits(module, "weight_quantization")
    entries = [_variable_entry(name, value, weight_bits) for name, value in variables]
    macs = 0
    kernel = dict(variables).get("kernel")
    if dense and kernel is not None:
        out_features = int(kernel.shape[-1])
        size = entries[[n for n, _ in variables].index("kernel")][0]
        macs = sum(dense_macs(shape, size, out_features) for shape in shapes if shape is not None)
    binary = _quantizer_bits(module, "input_quantization") == 1 and weight_bits == 1
    return layer_summary(
        ".".join(path),
        type(module).__name__,
        shapes[0] if shapes else None,
        entries,
        macs=macs,
        binary=binary,
    )


def _rows(
    modules: dict[_Path, Any],
    owned: dict[_Path, list[tuple[str, Any]]],
    calls: dict[_Path, list[tuple[int, ...] | None]],
    order: list[_Path],
    dense_types: tuple[type, ...],
) -> tuple[LayerSummary, ...]:
    """Leaf modules and modules owning variables, in call order, as LayerSummary rows."""

    def is_leaf(path: _Path) -> bool:
        return not any(len(p) > len(path) and p[: len(path)] == path for p in modules)

    chosen = [p for p in modules if is_leaf(p) or owned.get(p)]
    rank = {path: i for i, path in enumerate(order)}
    chosen.sort(key=lambda p: rank.get(p, len(rank)))
    return tuple(
        _layer(
            path,
            modules[path],
            owned.get(path, []),
            calls.get(path, []),
            isinstance(modules[path], dense_types),
        )
        for path in chosen
    )


@contextlib.contextmanager
def _recording_calls(classes: set[type], paths: Mapping[int, _Path], record: Any) -> Iterator[None]:
    """Wrap ``__call__`` of ``classes`` (where each defines it) to ``record(path, output)``
    once per module call (a ``super().__call__`` inside is not recorded twice)."""
    owners = {next((k for k in cls.__mro__ if "__call__" in k.__dict__), object) for cls in classes}
    owners.discard(object)
    active: list[int] = []
    saved = {owner: owner.__dict__["__call__"] for owner in owners}

    def wrap(original: Any) -> Any:
        def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = id(self) not in active
            active.append(id(self))
            try:
                out = original(self, *args, **kwargs)
            finally:
                active.pop()
            if outer and id(self) in paths:
                record(paths[id(self)], out)
            return out

        return __call__

    try:
        for owner, original in saved.items():
            owner.__call__ = wrap(original)
        yield
    finally:
        for owner, original in saved.items():
            owner.__call__ = original


def _nnx_summary(model: nnx.Module, example_inputs: tuple[Any, ...]) -> ModelSummary:
    modules: dict[_Path, Any] = {}
    owned: dict[_Path, list[tuple[str, Any]]] = {}
    variables: list[tuple[_Path, Any]] = []
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            modules[_names(path)] = node
        elif isinstance(node, (nnx.Param, nnx.BatchStat)):
            variables.append((_names(path), node.get_value()))
    for path, value in variables:
        owner = max((p for p in modules if path[: len(p)] == p), key=len)
        owned.setdefault(owner, []).append((path[-1], value))

    calls: dict[_Path, list[tuple[int, ...] | None]] = {}
    order: list[_Path] = []

    def record(path: _Path, out: Any) -> None:
        if path not in calls:
            order.append(path)
        calls.setdefault(path, []).append(_first_shape(out))

    graphdef, state = nnx.split(model)
    classes = {type(m) for m in modules.values()}

    def run(state: Any, *inputs: Any) -> Any:
        merged = nnx.merge(graphdef, state)
        paths = {
            id(node): _names(path)
            for path, node in nnx.iter_graph(merged)
            if isinstance(node, nnx.Module)
        }
        with _recording_calls(classes, paths, record):
            return merged(*inputs)

    jax.eval_shape(run, state, *example_inputs)
    rows = _rows(modules, owned, calls, order, _NNX_DENSE)
    return ModelSummary(type(model).__name__, "flax.nnx", rows)


def _walk(tree: Mapping[str, Any], prefix: _Path = ()) -> Iterator[tuple[_Path, str, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _walk(value, (*prefix, str(key)))
        else:
            yield prefix, str(key), value


def _linen_summary(
    model: nn.Module, example_inputs: tuple[Any, ...], variables: Mapping[str, Any] | None
) -> ModelSummary:
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    if variables is None:
        variables = jax.eval_shape(lambda *x: model.init(rngs, *x), *example_inputs)
    modules: dict[_Path, Any] = {}
    calls: dict[_Path, list[tuple[int, ...] | None]] = {}
    order: list[_Path] = []

    def interceptor(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            path = _names(context.module.path)
            if path not in calls:
                order.append(path)
                modules[path] = context.module
            calls.setdefault(path, []).append(_first_shape(out))
        return out

    def run(variables: Any, *inputs: Any) -> Any:
        with nn.intercept_methods(interceptor):
            return model.apply(variables, *inputs, mutable=True, rngs={"dropout": rngs["dropout"]})

    jax.eval_shape(run, variables, *example_inputs)
    owned: dict[_Path, list[tuple[str, Any]]] = {}
    for collection in ("params", "batch_stats"):
        for path, name, value in _walk(variables.get(collection, {})):
            owned.setdefault(path, []).append((name, value))
    for path in owned:
        modules.setdefault(path, model if not path else _Unknown())
    rows = _rows(modules, owned, calls, order, _LINEN_DENSE)
    return ModelSummary(type(model).__name__, "flax.linen", rows)


class _Unknown:
    """A module that owns variables but was not called (no module object to describe)."""


def summary(
    model: nnx.Module | nn.Module,
    *example_inputs: Any,
    variables: Mapping[str, Any] | None = None,
) -> ModelSummary:
    """Summarise ``model`` (NNX or linen) run on ``example_inputs`` (batched: the batch
    is dimension 0). ``variables``: linen only, the variables to describe (default: the
    abstract ones of ``model.init``).

    Returns a :class:`~bitorch_common.summary.ModelSummary`: ``print`` it for the table,
    ``.to_dict()``/``.to_json()`` for the numbers; see :mod:`bitorch_common.summary` for
    every rule and :mod:`bitorch_jax.summary` for an example.
    """
    if isinstance(model, nnx.Module):
        if variables is not None:
            raise TypeError("summary: variables= is for linen modules; an NNX model holds its own")
        return _nnx_summary(model, example_inputs)
    if isinstance(model, nn.Module):
        return _linen_summary(model, example_inputs, variables)
    raise TypeError(
        f"summary: model must be a flax.nnx.Module or a flax.linen.Module, got "
        f"{type(model).__name__}"
    )


class _CallableModule(types.ModuleType):
    """This module, callable: ``bitorch_jax.summary(model, *example_inputs)`` is
    ``bitorch_jax.summary.summary(model, *example_inputs)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> ModelSummary:
        return summary(*args, **kwargs)


if __name__ in sys.modules:
    sys.modules[__name__].__class__ = _CallableModule
