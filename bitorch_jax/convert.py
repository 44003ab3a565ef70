"""Carry weights between PyTorch (bitorch) and Flax (bitorch_jax), both ways, bit-exactly.

Sources are a torch ``state_dict``, an ``nn.Module`` or a ``.pt`` file. A file is always
read with ``torch.load(path, weights_only=True)``: a checkpoint that needs arbitrary
unpickling (a pickle that would run code) is refused with :class:`UnsafeCheckpointError`
and nothing in it is executed.

Functions:

- :func:`load_torch_state_dict` -- a ``.pt`` file to a ``state_dict``, safely.
- :func:`torch_to_linen` -- to linen variables ``{"params": ..., "batch_stats": ...}``.
- :func:`torch_to_nnx` -- into an NNX model, in place (``Param`` and ``BatchStat``).
- :func:`linen_to_torch`, :func:`nnx_to_torch` -- back to a torch ``state_dict``.
- :func:`nhwc_flatten_kernel`, :func:`nchw_flatten_kernel` -- the flatten-order fix below.

Layers, recognised by their entries (or checked by type when a module is given):

========================================  ============================================
torch                                     Flax
========================================  ============================================
``Linear``/``QLinear`` ``weight (O, I)``  ``kernel (I, O)`` (transposed)
``ConvNd``/``QConvNd`` ``weight (O, I/g,  ``kernel (*k, I/g, O)`` (OIHW to HWIO; 1-d
*k)``                                     OIW to WIO; 3-d OIDHW to DHWIO)
``bias``                                  ``bias``
``BatchNormNd`` ``weight``/``bias``       ``params`` ``scale``/``bias``
``running_mean``/``running_var``          ``batch_stats`` ``mean``/``var``
``num_batches_tracked``                   dropped (Flax has no counter; see below)
``LayerNorm``/``GroupNorm`` ``weight``    ``scale``
``QLinear``/``QConvNd`` ``scale`` (out,)  ``scale`` (``output_scale=True``; beside a
                                          ``kernel``, so not a norm's ``weight``)
``Embedding``/``EmbeddingBag`` and        ``embedding (N, F)`` (no transpose; needs
``QEmbedding``/``QEmbeddingBag``          the ``nn.Module``, see below)
``weight (N, F)``
``Pact`` ``alpha`` (0-d)                  ``alpha`` (0-d)
``BEmbedding``/``BEmbeddingBag``          collection ``binary_weights``: ``weight``
``weight`` (bool)                         (bool; NNX ``BinaryWeight``)
``RSign`` ``bias`` (C,)                   ``bias`` (C,)
``RPReLU`` ``bias_in``/``slope``/         ``bias_in``/``slope``/``bias_out`` (same
``bias_out`` (C,)                         names)
========================================  ============================================

Module names: torch ``"features.0.weight"`` becomes Flax path ``("features", "0")`` and
leaf ``kernel``; ``name_map`` renames torch module prefixes to dotted Flax paths (for
example ``{"features.0": "Conv_0"}``). For NNX the path is matched as strings, so
``nnx.List`` indices (``layers.0``) match torch ``Sequential`` names directly.

Layout caveats, documented rather than guessed:

- Activations: torch convolutions are NCHW, Flax ones NHWC. Weights convert exactly, but
  a ``Linear`` that follows a ``flatten`` sees the features in ``C, H, W`` order in torch
  and ``H, W, C`` order in Flax. Either transpose to NCHW before flattening in Flax, or
  permute that kernel's rows with :func:`nhwc_flatten_kernel` (and back with
  :func:`nchw_flatten_kernel`). The converter cannot know where a flatten happens.
- A ``state_dict`` alone cannot tell ``ConvTranspose`` (weight ``I, O/g, *k``) from a
  convolution, nor an embedding table ``(N, F)`` from a ``Linear`` weight ``(out, in)``
  (it is taken for a ``Linear``); pass the ``nn.Module`` instead: embeddings are then
  recognised and unsupported layer types are refused. A 0-d ``alpha`` (``Pact``) and a
  ``bool`` ``weight`` (``BEmbedding``) are recognised in a ``state_dict`` too.
- BatchNorm: torch updates ``running_var`` with the unbiased batch variance, Flax with the
  biased one; the converted statistics are exact, later training updates differ by
  ``n / (n - 1)``. torch ``momentum m`` is Flax ``momentum 1 - m``.
- ``num_batches_tracked`` has no Flax counterpart. Converting back, it is taken from
  ``template`` when one is given (bit-exact round trip); without one it is left out, and
  ``load_state_dict`` on a BatchNorm then keeps the module's own counter.

dtypes are kept exactly (float16, bfloat16, float32, float64); float64 needs JAX's x64
mode, and a float64 tensor with x64 off is an error, not a silent cast to float32.

>>> import torch
>>> from bitorch.layers import QLinear
>>> variables = torch_to_linen(QLinear(3, 2).state_dict())
>>> {k: v.shape for k, v in sorted(variables["params"].items())}
{'bias': (2,), 'kernel': (3, 2)}
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

__all__ = [
    "UnsafeCheckpointError",
    "load_torch_state_dict",
    "torch_to_linen",
    "torch_to_nnx",
    "linen_to_torch",
    "nnx_to_torch",
    "nhwc_flatten_kernel",
    "nchw_flatten_kernel",
]

Path = tuple[str, ...]

# PyTorch is optional (the ``torch`` extra): importing this module never imports it, and
# ``nhwc_flatten_kernel`` / ``nchw_flatten_kernel`` work without it. ``torch`` and ``nn``
# below import it on first use; the torch functions check for it before doing anything.
_NEEDS_TORCH = (
    "{what} needs PyTorch, which is not installed (or failed to import). Install the torch "
    'extra: pip install "bitorch-jax[torch]" (from a checkout: pip install -e ".[torch]").'
)


def _import_torch(module: str = "torch", what: str = "bitorch_jax.convert") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(_NEEDS_TORCH.format(what=what), name="torch") from error


class _LazyModule:
    """``torch`` or ``torch.nn``, imported on the first attribute access."""

    __slots__ = ("_module",)

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(_import_torch(self._module), name)

    def __repr__(self) -> str:
        return f"<lazy module {self._module!r}>"


if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = _LazyModule("torch")
    nn = _LazyModule("torch.nn")

_F = TypeVar("_F", bound=Callable[..., Any])


def _needs_torch(function: _F) -> _F:
    """Check for torch before ``function`` runs: without it, the ImportError names the extra."""

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _import_torch(what=f"bitorch_jax.convert.{function.__name__}")
        return function(*args, **kwargs)

    return checked  # type: ignore[return-value]


def _embedding_modules() -> tuple[type, ...]:
    return (nn.Embedding, nn.EmbeddingBag)


def _supported_modules() -> tuple[type, ...]:
    bitorch_layers = importlib.import_module("bitorch.layers")
    return (
        nn.Linear,
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.modules.batchnorm._BatchNorm,
        nn.LayerNorm,
        nn.GroupNorm,
        *_embedding_modules(),
        bitorch_layers.Pact,
        bitorch_layers.BEmbedding,
        bitorch_layers.RSign,
        bitorch_layers.RPReLU,
    )


#: The linen collection of a binary embedding's ``bool`` table (NNX: ``BinaryWeight``).
BINARY_WEIGHTS = "binary_weights"
_COLLECTIONS = ("params", "batch_stats", BINARY_WEIGHTS)


_BATCHNORM_TORCH = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_BATCHNORM_FLAX = {v: k for k, v in _BATCHNORM_TORCH.items()}
#: RPReLU's parameters (ReActNet): the same names in torch and Flax, no transpose.
_SAME_NAME = ("bias_in", "slope", "bias_out")
_STATS = ("mean", "var")


class UnsafeCheckpointError(ValueError):
    """A checkpoint that ``torch.load(..., weights_only=True)`` refused to unpickle."""


# ----------------------------------------------------------------------------- arrays


def _to_numpy(tensor: torch.Tensor, key: str, *, allow_bool: bool = False) -> np.ndarray:
    # Always a copy: ``Tensor.numpy()`` shares the tensor's memory, and JAX may alias a
    # NumPy buffer on CPU, so a later in-place torch update (an optimizer step) would
    # otherwise change the "immutable" JAX array.
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    if allow_bool and tensor.dtype == torch.bool:
        return tensor.numpy().copy()
    if not tensor.is_floating_point():
        raise TypeError(f"convert: {key!r} is a {tensor.dtype} tensor, expected floating point")
    return tensor.numpy().copy()


def _to_torch(array: Any, key: str, *, allow_bool: bool = False) -> torch.Tensor:
    array = np.asarray(array)
    if not array.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
        array = np.ascontiguousarray(array)
    if array.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    if allow_bool and array.dtype == np.bool_:
        return torch.from_numpy(array.copy())
    if array.dtype.kind != "f":
        raise TypeError(f"convert: {key!r} has dtype {array.dtype}, expected floating point")
    return torch.from_numpy(array.copy())


def _to_jax(array: np.ndarray, key: str) -> jax.Array:
    if array.dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"convert: {key!r} is float64 but JAX's x64 mode is off, so it would silently "
            "become float32; enable it (jax.config.update('jax_enable_x64', True) or "
            "`with jax.enable_x64(True):`) or convert the torch weights to float32 first"
        )
    return jnp.asarray(array)


def _torch_weight_to_kernel(weight: np.ndarray) -> np.ndarray:
    if weight.ndim == 2:  # Linear: (out, in) -> (in, out)
        return weight.T
    n = weight.ndim - 2  # ConvNd: (out, in/g, *k) -> (*k, in/g, out)
    return np.transpose(weight, (*range(2, n + 2), 1, 0))


def _kernel_to_torch_weight(kernel: np.ndarray) -> np.ndarray:
    if kernel.ndim == 2:
        return kernel.T
    n = kernel.ndim - 2
    return np.transpose(kernel, (n + 1, n, *range(n)))


def nhwc_flatten_kernel(kernel: Any, chw: tuple[int, ...]) -> Any:
    """Permute a dense kernel's rows from torch's NCHW flatten order to Flax's NHWC order.

    ``kernel`` is ``(C * H * W, out)`` (Flax layout) as converted from a torch ``Linear``
    that follows ``x.flatten(1)`` of an ``(N, C, H, W)`` tensor; the result serves the
    same layer after ``x.reshape(N, -1)`` of the ``(N, H, W, C)`` tensor. ``chw`` is
    ``(C, *spatial)``; any number of spatial dimensions works.

    >>> k = np.arange(6).reshape(6, 1)  # C=2, H=3 (1-d spatial)
    >>> nhwc_flatten_kernel(k, (2, 3))[:, 0]
    array([0, 3, 1, 4, 2, 5])
    """
    c, *spatial = chw
    out = kernel.shape[-1]
    n = len(spatial)
    moved = kernel.reshape(c, *spatial, out).transpose(*range(1, n + 1), 0, n + 1)
    return moved.reshape(-1, out)


def nchw_flatten_kernel(kernel: Any, chw: tuple[int, ...]) -> Any:
    """Inverse of :func:`nhwc_flatten_kernel`: rows from NHWC back to NCHW flatten order."""
    c, *spatial = chw
    out = kernel.shape[-1]
    n = len(spatial)
    moved = kernel.reshape(*spatial, c, out).transpose(n, *range(n), n + 1)
    return moved.reshape(-1, out)


# ----------------------------------------------------------------------------- torch side


@_needs_torch
def load_torch_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pt`` checkpoint with ``torch.load(path, weights_only=True)``.

    Accepts a plain ``state_dict`` or a dict holding one under ``"state_dict"`` or
    ``"model_state_dict"``. A file whose pickle asks for anything beyond tensors and plain
    containers (for example a ``__reduce__`` that would run code) raises
    :class:`UnsafeCheckpointError`; nothing from it is executed.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UnsafeCheckpointError(
            f"refusing to load {os.fspath(path)!r}: torch.load(..., weights_only=True) found "
            f"objects other than tensors and plain containers, which could run code when "
            f"unpickled; nothing was executed. Only load such a file with weights_only=False "
            f"if you trust its source. torch said: {first_line}"
        ) from error
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError(
            f"{os.fspath(path)!r} does not hold a state_dict (a dict of name -> tensor)"
        )
    return dict(loaded)


def _state_dict_of(source: Any) -> Mapping[str, torch.Tensor]:
    if isinstance(source, nn.Module):
        for name, module in source.named_modules():
            own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
            if own and not isinstance(module, _supported_modules()):
                raise ValueError(
                    f"convert: module {name or '<root>'!r} of type {type(module).__name__} is "
                    f"not supported (supported: Linear, Conv1d/2d/3d and their quantized "
                    f"subclasses, BatchNorm, LayerNorm, GroupNorm, Embedding/EmbeddingBag "
                    f"and their quantized subclasses, Pact, BEmbedding/BEmbeddingBag, RSign, "
                    f"RPReLU)"
                )
        return source.state_dict()
    if isinstance(source, (str, os.PathLike)):
        return load_torch_state_dict(source)
    if isinstance(source, Mapping):
        return source
    raise TypeError(
        f"convert: expected a state_dict, an nn.Module or a path, got {type(source).__name__}"
    )


def _group_by_module(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for key, tensor in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = tensor
    return groups


def _flax_path(prefix: str, name_map: Mapping[str, str] | None) -> Path:
    target = name_map.get(prefix, prefix) if name_map else prefix
    return tuple(target.split(".")) if target else ()


def _torch_to_flat(
    source: Any, name_map: Mapping[str, str] | None
) -> dict[tuple[str, Path, str], np.ndarray]:
    """``{(collection, flax module path, leaf): array}`` from a torch source."""
    flat: dict[tuple[str, Path, str], np.ndarray] = {}
    _check_name_map(name_map)
    embeddings = set()
    if isinstance(source, nn.Module):
        embeddings = {
            name for name, module in source.named_modules()
            if isinstance(module, _embedding_modules())
        }  # fmt: skip
    for prefix, entries in _group_by_module(_state_dict_of(source)).items():
        path = _flax_path(prefix, name_map)
        where = f"{prefix + '.' if prefix else ''}"
        if "running_mean" in entries or "running_var" in entries:
            for leaf, tensor in entries.items():
                if leaf == "num_batches_tracked":
                    continue
                if leaf not in _BATCHNORM_TORCH:
                    raise ValueError(f"convert: unsupported BatchNorm entry {where + leaf!r}")
                name = _BATCHNORM_TORCH[leaf]
                collection = "batch_stats" if name in _STATS else "params"
                flat[(collection, path, name)] = _to_numpy(tensor, where + leaf)
            continue
        for leaf, tensor in entries.items():
            collection = "params"
            binary = leaf == "weight" and tensor.dtype == torch.bool and tensor.dim() == 2
            array = _to_numpy(tensor, where + leaf, allow_bool=binary)
            if binary:  # BEmbedding's bool table
                collection, name = BINARY_WEIGHTS, "weight"
            elif leaf == "alpha" and array.ndim == 0:  # Pact
                name = "alpha"
            elif leaf in _SAME_NAME:  # RPReLU
                name = leaf
            elif leaf == "weight" and prefix in embeddings:  # (N, F) as it is
                name = "embedding"
            elif leaf == "weight":
                name = "scale" if array.ndim == 1 else "kernel"
                if array.ndim >= 2:
                    array = _torch_weight_to_kernel(array)
            elif leaf in ("bias", "scale"):  # scale: QLinear/QConv output_scale, (out,)
                name = leaf
            else:
                raise ValueError(
                    f"convert: unsupported entry {where + leaf!r} (expected weight, bias, scale, "
                    f"running_mean, running_var, num_batches_tracked or a 0-d alpha)"
                )
            flat[(collection, path, name)] = array
    return flat


def _check_name_map(name_map: Mapping[str, str] | None) -> None:
    if name_map is None:
        return
    if not isinstance(name_map, Mapping):
        raise TypeError(
            f"convert: name_map must be a mapping of torch prefix -> Flax path, got "
            f"{type(name_map).__name__}"
        )
    targets = list(name_map.values())
    if len(set(targets)) != len(targets):
        raise ValueError(f"convert: name_map maps two torch modules to one Flax path: {name_map}")


# ----------------------------------------------------------------------------- Flax side


@_needs_torch
def torch_to_linen(
    source: Mapping[str, torch.Tensor] | nn.Module | str | os.PathLike,
    *,
    name_map: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Linen variables ``{"params": ..., "batch_stats": ...}`` from torch weights.

    ``batch_stats`` is present only when the source has BatchNorm running statistics,
    ``binary_weights`` only when it has a ``bool`` table (``BEmbedding``). Arrays are
    ``jax.Array`` with the torch dtype.
    """
    variables: dict[str, dict[str, Any]] = {}
    for (collection, path, leaf), array in _torch_to_flat(source, name_map).items():
        node = variables.setdefault(collection, {})
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = _to_jax(array, ".".join((*path, leaf)))
    return variables


def _get_value(variable: nnx.Variable) -> Any:
    # Variable.get_value/set_value (flax >= 0.12, where .value is deprecated); .value before
    return variable.get_value() if hasattr(variable, "get_value") else variable.value


def _set_value(variable: nnx.Variable, value: Any) -> None:
    if hasattr(variable, "set_value"):
        variable.set_value(value)
    else:
        variable.value = value


def _flat_state(model: nnx.Module) -> Any:
    state = nnx.state(model)
    if hasattr(nnx, "to_flat_state"):
        return state, nnx.to_flat_state(state)
    return state, state.flat_state()


def _nnx_variables(flat_state: Any) -> dict[tuple[str, Path, str], Any]:
    found = {}
    binary_weight = importlib.import_module("bitorch_jax.layers.nnx").BinaryWeight
    for path, variable in flat_state:
        if isinstance(variable, nnx.BatchStat):
            collection = "batch_stats"
        elif isinstance(variable, binary_weight):
            collection = BINARY_WEIGHTS
        elif isinstance(variable, nnx.Param):
            collection = "params"
        else:
            continue
        parts = tuple(str(p) for p in path)
        found[(collection, parts[:-1], parts[-1])] = variable
    return found


@_needs_torch
def torch_to_nnx(
    source: Mapping[str, torch.Tensor] | nn.Module | str | os.PathLike,
    model: nnx.Module,
    *,
    name_map: Mapping[str, str] | None = None,
) -> nnx.Module:
    """Write torch weights into the ``Param``/``BatchStat``/``BinaryWeight`` variables of
    ``model``.

    Every torch entry must land on a variable of the same shape, and every ``Param``,
    ``BatchStat`` and ``BinaryWeight`` of the model must receive one; otherwise
    ``ValueError`` names the offending paths and nothing is changed. A ``Param`` (and a
    ``BinaryWeight``) must also have the torch dtype (build the model with the matching
    ``param_dtype``); ``BatchStat`` values take the torch dtype, because Flax creates them
    in float32 whatever ``param_dtype`` is.
    Returns ``model``.
    """
    flat = _torch_to_flat(source, name_map)
    # one state: its variables are written, then the model is updated from it (in flax
    # >= 0.12 they are the model's own variables, before that they were copies)
    state, flat_state = _flat_state(model)
    targets = _nnx_variables(flat_state)
    # matched by path; the collection is checked below so that a mismatch reads clearly
    by_path = {(p, leaf): (c, v) for (c, p, leaf), v in targets.items()}
    unexpected = [".".join((*p, leaf)) for (_, p, leaf) in flat if (p, leaf) not in by_path]
    given = {(p, leaf) for (_, p, leaf) in flat}
    missing = [".".join((*p, leaf)) for (p, leaf) in by_path if (p, leaf) not in given]
    if unexpected or missing:
        raise ValueError(
            f"convert: torch weights and the NNX model do not match; not in the model: "
            f"{unexpected}, not in the torch weights: {missing}"
        )
    updates = []
    for (collection, path, leaf), array in flat.items():
        key = ".".join((*path, leaf))
        target_collection, variable = by_path[(path, leaf)]
        current = _get_value(variable)
        if target_collection != collection:
            raise ValueError(f"convert: {key!r} is a {collection} entry in torch but not in NNX")
        # Flax creates BatchNorm statistics in float32 whatever param_dtype is; they take
        # the torch dtype (exact). Params must already have the torch dtype.
        dtype_differs = current.dtype != array.dtype and collection != "batch_stats"
        if tuple(current.shape) != array.shape or dtype_differs:
            raise ValueError(
                f"convert: {key!r} is {array.dtype}{list(array.shape)} from torch "
                f"but {current.dtype}{list(current.shape)} in the model"
            )
        updates.append((variable, _to_jax(array, key)))
    for variable, value in updates:
        _set_value(variable, value)
    nnx.update(model, state)
    return model


def _flat_to_torch(
    flat: dict[tuple[str, Path, str], Any],
    name_map: Mapping[str, str] | None,
    template: Mapping[str, torch.Tensor] | None,
) -> OrderedDict[str, torch.Tensor]:
    _check_name_map(name_map)
    inverse = {v: k for k, v in (name_map or {}).items()}
    modules: dict[Path, dict[tuple[str, str], Any]] = {}
    for (collection, path, leaf), array in flat.items():
        modules.setdefault(path, {})[(collection, leaf)] = array
    result: dict[str, torch.Tensor] = {}
    for path, leaves in modules.items():
        dotted = ".".join(path)
        prefix = inverse.get(dotted, dotted)
        where = f"{prefix + '.' if prefix else ''}"
        is_batchnorm = any(leaf in _STATS for _, leaf in leaves)
        has_kernel = any(leaf == "kernel" for _, leaf in leaves)
        for (collection, leaf), value in leaves.items():
            array = np.asarray(value)
            if collection == BINARY_WEIGHTS:
                if leaf != "weight":
                    raise ValueError(f"convert: unsupported Flax entry {dotted}.{leaf}")
                result[where + "weight"] = _to_torch(array, where + "weight", allow_bool=True)
                continue
            if is_batchnorm:
                if leaf not in _BATCHNORM_FLAX:
                    raise ValueError(f"convert: unsupported BatchNorm entry {dotted}.{leaf}")
                name = _BATCHNORM_FLAX[leaf]
            elif leaf == "kernel":
                name, array = "weight", _kernel_to_torch_weight(array)
            elif leaf == "scale" and has_kernel:  # QLinear/QConv output_scale
                name = "scale"
            elif leaf in ("scale", "embedding"):
                name = "weight"
            elif leaf in ("bias", "alpha", *_SAME_NAME):
                name = leaf
            else:
                raise ValueError(f"convert: unsupported Flax entry {dotted}.{leaf}")
            result[where + name] = _to_torch(array, where + name)
    if template is None:
        return OrderedDict(sorted(result.items()))
    ordered: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, reference in template.items():
        if key in result:
            tensor = result.pop(key)
            if tensor.shape != reference.shape or tensor.dtype != reference.dtype:
                raise ValueError(
                    f"convert: {key!r} is {tensor.dtype}{list(tensor.shape)} but the template "
                    f"has {reference.dtype}{list(reference.shape)}"
                )
            ordered[key] = tensor
        elif key.rpartition(".")[2] == "num_batches_tracked":
            ordered[key] = reference.detach().cpu().clone()
        else:
            raise ValueError(f"convert: the template has {key!r}, the Flax weights do not")
    if result:
        raise ValueError(f"convert: not in the template: {sorted(result)}")
    return ordered


@_needs_torch
def linen_to_torch(
    variables: Mapping[str, Any],
    *,
    name_map: Mapping[str, str] | None = None,
    template: Mapping[str, torch.Tensor] | None = None,
) -> OrderedDict[str, torch.Tensor]:
    """A torch ``state_dict`` from linen variables (``params``, ``batch_stats`` and
    ``binary_weights``).

    ``template`` (a torch ``state_dict``) fixes key order, checks shapes and dtypes, and
    supplies ``num_batches_tracked``; without it keys are sorted and the counter is left
    out. ``name_map`` is the same torch-prefix -> Flax-path mapping as for
    :func:`torch_to_linen`.
    """
    flat: dict[tuple[str, Path, str], Any] = {}
    for collection in _COLLECTIONS:
        leaves, _ = jax.tree_util.tree_flatten_with_path(variables.get(collection, {}))
        for keypath, leaf in leaves:
            parts = tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in keypath)
            flat[(collection, parts[:-1], parts[-1])] = leaf
    unknown = set(variables) - set(_COLLECTIONS)
    if unknown:
        raise ValueError(f"convert: unsupported linen collections {sorted(unknown)}")
    return _flat_to_torch(flat, name_map, template)


@_needs_torch
def nnx_to_torch(
    model: nnx.Module,
    *,
    name_map: Mapping[str, str] | None = None,
    template: Mapping[str, torch.Tensor] | None = None,
) -> OrderedDict[str, torch.Tensor]:
    """A torch ``state_dict`` from an NNX model's ``Param``, ``BatchStat`` and
    ``BinaryWeight`` variables.

    ``template`` and ``name_map`` as in :func:`linen_to_torch`.
    """
    variables = _nnx_variables(_flat_state(model)[1])
    flat = {key: _get_value(variable) for key, variable in variables.items()}
    return _flat_to_torch(flat, name_map, template)
