"""Whole-network parity: a bitorch (torch) model against its bitorch_jax NNX twin.

:func:`compare_models` runs both networks on the same NCHW input, in eval mode and in
train mode, and compares, each under its torch name and in torch layout:

* the logits, one loss (cross-entropy with integer labels, or your own pair of loss
  functions) and, after one backward pass of that loss, the input gradient and EVERY
  parameter gradient (NNX gradients are mapped to torch ``state_dict`` names, kernels
  transposed back, with :func:`bitorch_jax.convert.linen_to_torch`);
* after the train-mode step, the BatchNorm running statistics (torch
  ``running_mean``/``running_var`` against NNX ``BatchStat`` ``mean``/``var``);
* every intermediate activation: torch forward hooks on ``named_modules()`` and, on the
  Flax side, :func:`record_nnx_outputs` (a context manager that wraps ``__call__`` at class
  level for the classes of the model's submodules and records each output by its NNX
  path; here while tracing the ``jax.jit`` gradient pass, which returns them). 4-d
  activations are transposed from NHWC to NCHW. The report names the FIRST layer, in
  torch execution order (a module's hook fires when it returns, so inner layers come
  before their containers), whose output differs beyond the tolerance. Torch modules
  without an NNX module at the same path are not compared and are listed in the row's
  notes, except the quantizer submodules of bitorch's layers
  (NNX keeps quantizers as plain attributes).

Tolerance: :func:`bitorch_common.tolerances.model_tolerance` (per dtype, with its reason).
Boundary flips: a binarising layer (``QConv``/``QLinear``/``QActivation``) whose inputs
agree within the tolerance on both sides can still quantize an element differently when
the two values lie on either side of the rounding boundary (0 for sign). Such an element
is a *boundary flip*: counted and listed, not a failure. A flip changes the layer's output
by a whole quantization step, so from that layer on (and for the loss, the logits and every
gradient of that mode) the differences are measured and shown but not judged; everything
before it still is. Inputs that differ beyond the tolerance are a divergence of the layer
that produced them, found first.

Gradient flips: the straight-through gradient of a quantizing layer is masked (gradient
cancellation ``|x| <= t``, clipped STEs), and so is the gradient of a ReLU (at 0) or a
Hardtanh/ReLU6 module (at its bounds); two inputs that agree within the tolerance
but lie on either side of a mask boundary (``0.99999905`` and ``1.0000004`` with
``t = 1``) pass the cotangent on one side and 0 on the other, while the forward outputs
agree. The layer's local gradient is evaluated (with bitorch's own module) on both sides'
inputs; an element where it is zero on one side only is a *gradient flip*: counted and
listed. The forward pass and the gradients of the modules that run after that layer stay
judged; the input gradient and the gradients of the modules that finish before the last
such layer (and of that layer itself) are measured and shown but not judged.

The ``models`` subcommand (``python -m parity_tests models``) runs :func:`compare_models`
over the zoo table :data:`ZOO` for the names importable from both ``bitorch.models`` and
``bitorch_jax.models``.

>>> import torch, bitorch_jax.models as jm, bitorch.models as tm
>>> from flax import nnx
>>> t = tm.model_from_name("lenet")((2, 1, 28, 28), 10)
>>> f = jm.model_from_name("lenet")((2, 1, 28, 28), 10, rngs=nnx.Rngs(0))
>>> x = np.random.default_rng(0).normal(size=(4, 1, 28, 28)).astype(np.float32)
>>> report = compare_models(t, f, x, name="LeNet")  # doctest: +SKIP
>>> report.ok, [r.params for r in report]  # doctest: +SKIP
(True, ['eval', 'train'])
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx

from bitorch_common.comparison import MAX_LISTED, Element, json_safe
from bitorch_common.tolerances import ModelTolerance, dtype_name, model_tolerance
from bitorch_jax.convert import linen_to_torch, nnx_to_torch, torch_to_nnx
from parity_tests.backends import from_torch, jax_x64, to_torch
from parity_tests.report import ParityReport, ParityResult

__all__ = [
    "MODEL_DTYPES",
    "MODES",
    "ModelSpec",
    "ZOO",
    "ModelElement",
    "ModelResult",
    "compare_models",
    "record_nnx_outputs",
    "zoo_names",
    "build_pair",
    "run_zoo",
    "main",
]

#: dtypes of the ``models`` subcommand (and the only ones :func:`compare_models` takes).
MODEL_DTYPES: tuple[str, ...] = ("float64", "float32")
#: The modes compared, in this order (eval first: it changes no state).
MODES: tuple[str, ...] = ("eval", "train")

LossPair = tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[..., Any]]


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelElement(Element):
    """One element the two models disagree on (or a boundary flip). ``kind`` names the
    array: ``logits``, ``loss``, ``input grad``, ``grad <torch name>``,
    ``running_var <module>``, ``activation <module>`` or ``flip <module>``; ``index`` is in
    torch layout."""

    def describe(self, left: str = "torch", right: str = "jax") -> str:
        where = "[" + ", ".join(str(i) for i in self.index) + "]"
        text = f"{self.kind} at {where}:"
        if self.pre_round is not None:
            text += f" pre-round {left}={self.input!r}, {right}={self.pre_round!r};"
        text += f" {left}={self.left!r}, {right}={self.right!r}"
        diff = abs(self.left - self.right)
        if np.isfinite(diff):
            text += f", |diff|={diff:.3g}"
        if self.allowed is not None:
            text += f", allowed {self.allowed:.3g}"
        if self.reason:
            text += f" ({self.reason})"
        return text


@dataclass
class ModelResult(ParityResult):
    """One model, dtype and mode (``params`` is ``eval`` or ``train``); a table row like
    the quantizer and layer rows (``kind="model"``).

    ``max_forward_diff``: logits and loss; ``max_grad_diff``: input and parameter
    gradients; ``grad_tolerance_used``: the largest share of the model tolerance used by
    any judged array (activations and running statistics included). Extra fields:
    ``first_divergence`` (the first layer, in torch execution order, whose output differs
    beyond the tolerance; ``None`` when none does), ``flip_layer`` (the first layer with a
    boundary flip), ``grad_flip_layer`` (the last layer, in torch execution order, with a
    gradient flip: the gradients of modules finishing before it are not judged),
    ``layers_compared``, ``failed_arrays`` (the judged arrays with elements beyond the
    tolerance, in comparison order), ``arrays`` (every compared array: its max ``|diff|``,
    the share of the tolerance used, whether it was judged) and ``notes``.
    """

    first_divergence: str | None = None
    flip_layer: str | None = None
    grad_flip_layer: str | None = None
    layers_compared: int = 0
    failed_arrays: list[str] = field(default_factory=list)
    arrays: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rtol: float = 0.0
    array_rtol: float = 0.0

    def details(self) -> str:
        lines = [super().details()] if super().details() else []
        if self.first_divergence is not None:
            info = self.arrays.get(f"activation {self.first_divergence}", {})
            lines.append(
                f"FIRST DIVERGENCE in {self.title}: layer {self.first_divergence!r} "
                f"(max |diff| {info.get('max_diff', float('nan')):.3g}, "
                f"{info.get('share', float('nan')):.3g} x the tolerance)"
            )
        if self.flip_layer is not None:
            lines.append(
                f"from layer {self.flip_layer!r} on (after its boundary flip) the outputs, "
                "the loss, the logits and the gradients of this mode were measured but not "
                "judged"
            )
        if self.grad_flip_layer is not None:
            lines.append(
                f"gradient flip(s), the last at layer {self.grad_flip_layer!r}: the input "
                "gradient and the gradients of the modules that finish before it (and of the "
                "layer itself) were measured but not judged"
            )
        lines += [f"note ({self.title}): {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(
            first_divergence=self.first_divergence,
            flip_layer=self.flip_layer,
            grad_flip_layer=self.grad_flip_layer,
            layers_compared=self.layers_compared,
            failed_arrays=list(self.failed_arrays),
            rtol=self.rtol,
            array_rtol=self.array_rtol,
            arrays={k: {kk: json_safe(vv) for kk, vv in v.items()} for k, v in self.arrays.items()},
            notes=list(self.notes),
        )
        return out


class _Judge:
    """Compares arrays (torch layout) into one :class:`ModelResult` with one tolerance."""

    def __init__(self, result: ModelResult, tol: ModelTolerance) -> None:
        self.result = result
        self.tol = tol
        self.judging = True  # False after a boundary flip
        self.grad_flip_at: int | None = None  # torch order position of the last gradient flip

    def compare(
        self, label: str, a: np.ndarray, b: np.ndarray, *, which: str, scale: float | None = None
    ) -> bool:
        """Compare ``a`` (torch) with ``b`` (jax); ``which`` is ``forward``, ``grad`` or
        ``other``; ``scale``: see :meth:`ModelTolerance.allowed`. Returns whether the array
        diverges (judged or not)."""
        result = self.result
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            result.problems.append(
                f"{label}: torch {a.dtype}{list(a.shape)}, jax {b.dtype}{list(b.shape)}"
            )
            return True
        a64, b64 = a.astype(np.float64).reshape(a.shape), b.astype(np.float64).reshape(b.shape)
        if a64.ndim == 0:
            a64, b64 = a64.reshape(1), b64.reshape(1)
        nan_a, nan_b = np.isnan(a64), np.isnan(b64)
        both = ~(nan_a | nan_b)
        allowed = self.tol.allowed(a64, b64, scale)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(both & (a64 != b64), np.abs(a64 - b64), 0.0)
            share_all = np.where(both & (a64 != b64), diff / allowed, 0.0)
        bad = (nan_a != nan_b) | (both & (a64 != b64) & ~(diff <= allowed))
        finite = diff[np.isfinite(diff)]
        largest = float(finite.max()) if finite.size else 0.0
        shares = share_all[np.isfinite(share_all)]
        share = float(shares.max()) if shares.size else 0.0
        diverges = bool(bad.any())
        self.result.arrays[label] = {
            "max_diff": largest,
            "share": share,
            "elements": int(a64.size),
            "judged": self.judging,
        }
        if not self.judging:
            return diverges
        result.elements += int(a64.size)
        if which == "forward":
            result.max_forward_diff = max(result.max_forward_diff, largest)
        elif which == "grad":
            result.max_grad_diff = max(result.max_grad_diff, largest)
        result.grad_tolerance_used = max(result.grad_tolerance_used, share)
        reason = f"model_tolerance({result.dtype})"
        if diverges:
            result.failed_arrays.append(label)
        for index in zip(*np.nonzero(bad), strict=True):
            result.failures += 1
            if len(result.failure_list) < MAX_LISTED:
                result.failure_list.append(
                    ModelElement(
                        kind=label,
                        sample=0,
                        index=tuple(int(i) for i in index),
                        input=float("nan"),
                        cotangent=float("nan"),
                        left=float(a64[index]),
                        right=float(b64[index]),
                        allowed=float(allowed[index]),
                        reason=reason,
                    )
                )
        return diverges


# ----------------------------------------------------------------------------- recording


def _module_paths(model: nnx.Module) -> dict[int, str]:
    """``id(submodule) -> dotted NNX path`` (the root left out; a shared module once)."""
    paths: dict[int, str] = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module) and path and id(node) not in paths:
            paths[id(node)] = ".".join(str(p) for p in path)
    return paths


def _defining_class(cls: type) -> type | None:
    for klass in cls.__mro__:
        if "__call__" in vars(klass):
            return klass
    return None


@contextlib.contextmanager
def record_nnx_outputs(
    model: nnx.Module, *, inputs_of: Sequence[str] = (), traced: bool = False
) -> Iterator[dict[str, list[Any]]]:
    """Record what every submodule of ``model`` returns while the block runs (eagerly).

    Yields ``{path: [output of call 1, call 2, ...]}`` (NumPy arrays), keys being dotted
    NNX paths (``"_model.0"``), which are the torch module names of a zoo twin. For the
    paths in ``inputs_of`` the first positional argument is recorded too, under
    ``"<path>:input"``. ``__call__`` is wrapped at class level for the classes that
    define the submodules' ``__call__`` and restored on exit; a call from inside another
    call of the same module (``super().__call__``) is recorded once. Traced values (under
    ``jax.jit``/``nnx.grad``) are left out, unless ``traced=True``: then every output is
    kept as it is (JAX arrays or tracers), to be returned from the traced function, as
    :func:`compare_models` does under one ``jax.jit``.

    >>> from bitorch_jax.models.layers import ReLU, Sequential, Tanh
    >>> net = Sequential(Tanh(), ReLU())
    >>> with record_nnx_outputs(net) as seen:
    ...     _ = net(jnp.array([-1.0, 2.0]))
    >>> sorted(seen), seen["1"][0].tolist()
    (['0', '1'], [0.0, 0.9640275835990906])
    """
    paths = _module_paths(model)
    wanted_inputs = set(inputs_of)
    seen: dict[str, list[Any]] = {}
    active: set[int] = set()
    classes: dict[type, Any] = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module) and path:
            klass = _defining_class(type(node))
            if klass is not None and klass not in classes:
                classes[klass] = vars(klass)["__call__"]

    def keep(value: Any) -> Any:
        if traced:
            return value if isinstance(value, (jax.Array, np.ndarray)) else None
        if isinstance(value, jax.core.Tracer):
            return None
        if isinstance(value, (jax.Array, np.ndarray)):
            return np.array(value)
        return None

    def wrap(original: Any) -> Any:
        def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807
            key = id(self)
            path = paths.get(key)
            if path is None or key in active:
                return original(self, *args, **kwargs)
            active.add(key)
            try:
                out = original(self, *args, **kwargs)
            finally:
                active.discard(key)
            value = keep(out)
            if value is not None:
                seen.setdefault(path, []).append(value)
                if path in wanted_inputs and args:
                    arg = keep(args[0])
                    if arg is not None:
                        seen.setdefault(f"{path}:input", []).append(arg)
            return out

        return __call__

    try:
        for klass, original in classes.items():
            setattr(klass, "__call__", wrap(original))  # noqa: B010
        yield seen
    finally:
        for klass, original in classes.items():
            setattr(klass, "__call__", original)  # noqa: B010


def _torch_quantizer(module: torch.nn.Module) -> torch.nn.Module | None:
    """The input quantizer of a bitorch ``QActivation``/``QConv*``/``QLinear``, else None."""
    from bitorch.layers import QActivation

    if isinstance(module, QActivation):
        return module.activation_function
    inner = getattr(module, "activation", None)
    if isinstance(inner, QActivation):
        return inner.activation_function
    return None


#: Float activations whose gradient is a 0/1 mask (ReLU at 0, Hardtanh/ReLU6 at their
#: bounds): their inputs are recorded and checked for gradient flips like a quantizer's.
_MASKED_ACTIVATIONS = (torch.nn.ReLU, torch.nn.Hardtanh)


def _torch_masked(module: torch.nn.Module) -> torch.nn.Module | None:
    """The module computing a layer's masked local gradient: the ``QActivation`` of a
    quantizing layer (the layer itself, or its ``activation``: quantizer and gradient
    cancellation), or a ReLU/Hardtanh module itself; else None."""
    from bitorch.layers import QActivation

    if isinstance(module, (QActivation, *_MASKED_ACTIVATIONS)):
        return module
    inner = getattr(module, "activation", None)
    return inner if isinstance(inner, QActivation) else None


def _records_input(module: torch.nn.Module) -> bool:
    """Whether a module's input is recorded (boundary and gradient flip checks)."""
    return _torch_quantizer(module) is not None or _torch_masked(module) is not None


@contextlib.contextmanager
def _record_torch(model: torch.nn.Module) -> Iterator[tuple[list[tuple[str, int]], dict]]:
    """``(order, seen)``: torch forward hooks on every named module; ``order`` is the
    ``(name, call number)`` of each module's output in execution order; quantizing
    layers and masked activations (:func:`_records_input`) also record their input
    under ``"<name>:input"`` (a copy taken before the module runs: an in-place ReLU
    overwrites it)."""
    order: list[tuple[str, int]] = []
    seen: dict[str, list[np.ndarray]] = {}
    handles = []

    def hook_for(name: str) -> Any:
        def hook(module: Any, args: tuple, output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                return
            calls = seen.setdefault(name, [])
            order.append((name, len(calls)))
            calls.append(from_torch(output))

        return hook

    def pre_hook_for(name: str) -> Any:
        def pre_hook(module: Any, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen.setdefault(f"{name}:input", []).append(from_torch(args[0]))

        return pre_hook

    try:
        for name, module in model.named_modules():
            if name:
                if _records_input(module):
                    handles.append(module.register_forward_pre_hook(pre_hook_for(name)))
                handles.append(module.register_forward_hook(hook_for(name)))
        yield order, seen
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------- layouts


def _to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if x.ndim == 4 else x


def _to_nchw(x: np.ndarray) -> np.ndarray:
    """A 4-d NHWC array as NCHW; other ranks as they are."""
    x = np.asarray(x)
    return np.moveaxis(x, -1, 1) if x.ndim == 4 else x


def _torch_dtype_of(model: torch.nn.Module) -> str:
    for p in model.parameters():
        if p.is_floating_point():
            return dtype_name(p.dtype)
    return "float32"


def _ce_torch(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def _ce_jax(logits: jax.Array, labels: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


# ----------------------------------------------------------------------------- state


@contextlib.contextmanager
def _kept_state(torch_model: torch.nn.Module, flax_model: nnx.Module) -> Iterator[None]:
    """Both models' weights, statistics and train/eval modes as they were, afterwards."""
    torch_modes = {m: m.training for m in torch_model.modules()}
    torch_state = {k: v.detach().clone() for k, v in torch_model.state_dict().items()}
    flax_state = jax.tree.map(lambda a: a, nnx.state(flax_model))  # arrays are immutable
    flax_modes = []
    for _, node in nnx.iter_graph(flax_model):
        if isinstance(node, nnx.Module):
            for attr in ("use_running_average", "deterministic"):
                if attr in vars(node):
                    flax_modes.append((node, attr, getattr(node, attr)))
    try:
        yield
    finally:
        with torch.no_grad():
            torch_model.load_state_dict(torch_state)
        for m, training in torch_modes.items():
            m.training = training
        nnx.update(flax_model, flax_state)
        for node, attr, value in flax_modes:
            setattr(node, attr, value)


def _set_mode(torch_model: torch.nn.Module, flax_model: nnx.Module, mode: str) -> None:
    if mode == "eval":
        torch_model.eval()
        flax_model.eval()
    else:
        torch_model.train()
        flax_model.train()


# ----------------------------------------------------------------------------- runs


def _torch_run(
    model: torch.nn.Module, x: np.ndarray, labels: np.ndarray, loss_fn: Any
) -> dict[str, Any]:
    xt = to_torch(x).requires_grad_(True)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    with _record_torch(model) as (order, seen):
        logits = model(xt)
    loss = loss_fn(logits, torch.from_numpy(labels))
    grads = torch.autograd.grad(loss, [xt, *(p for _, p in params)], allow_unused=True)
    param_grads = {}
    for (name, p), g in zip(params, grads[1:], strict=True):
        param_grads[name] = from_torch(g) if g is not None else np.zeros(tuple(p.shape), x.dtype)
    stats = {
        k: from_torch(v)
        for k, v in model.state_dict().items()
        if k.endswith(("running_mean", "running_var"))
    }
    return {
        "logits": from_torch(logits),
        "loss": from_torch(loss),
        "x_grad": from_torch(grads[0]) if grads[0] is not None else np.zeros_like(x),
        "param_grads": param_grads,
        "frozen": [n for n, p in model.named_parameters() if not p.requires_grad],
        "order": order,
        "seen": seen,
        "stats": stats,
    }


def _flax_run(
    model: nnx.Module,
    x: np.ndarray,
    labels: np.ndarray,
    loss_fn: Any,
    inputs_of: Sequence[str],
) -> dict[str, Any]:
    """One jitted forward and backward pass of the loss that also returns every
    submodule's output (recorded while tracing the very forward pass whose gradient is
    taken) and the updated state (BatchNorm statistics in train mode).

    Fallbacks, each named in the row's notes: where some primal value cannot be returned
    from the gradient pass, a separate forward pass on a copy of the model records them
    (in the same program; XLA may round it differently from the gradient pass); where
    ``jax.jit`` of the gradient fails, everything runs eagerly."""
    graphdef, state = nnx.split(model)

    def step(state: Any, inp: jax.Array, lab: jax.Array, *, inside: bool) -> tuple:
        seen: dict[str, list[Any]] = {}
        if not inside:  # fresh Variable objects (eagerly, merge would share the model's own)
            probe = nnx.merge(graphdef, jax.tree.map(lambda a: a, state))
            with record_nnx_outputs(probe, inputs_of=inputs_of, traced=True) as seen:
                probe(inp)
        m = nnx.merge(graphdef, jax.tree.map(lambda a: a, state))

        def f(m: nnx.Module, inp: jax.Array) -> tuple:
            inner: dict[str, list[Any]] = {}
            if inside:  # record the very forward pass whose gradient is taken
                with record_nnx_outputs(m, inputs_of=inputs_of, traced=True) as inner:
                    logits = m(inp)
            else:
                logits = m(inp)
            return loss_fn(logits, lab), (logits, dict(inner))

        grad_fn = nnx.value_and_grad(f, argnums=(0, 1), has_aux=True)
        (loss, (logits, inner_seen)), (g_model, g_x) = grad_fn(m, inp)
        return loss, logits, dict(inner_seen) if inside else dict(seen), g_model, g_x, nnx.state(m)

    args = (state, jnp.asarray(_to_nhwc(x)), jnp.asarray(labels))
    note = None
    # full-precision float32 convolutions and dots: a GPU would otherwise use TF32
    # (10-bit mantissa) where torch's CPU run does not; on CPU nothing changes
    with jax.default_matmul_precision("highest"):
        try:
            # activations recorded inside the gradient pass: they are the values the logits and
            # gradients come from (a separate forward may be compiled, and rounded, otherwise)
            out = jax.jit(functools.partial(step, inside=True))(*args)
        except Exception as exc:  # noqa: BLE001 - some primals cannot be returned from there
            try:
                out = jax.jit(functools.partial(step, inside=False))(*args)
                note = (
                    "activations recorded in a separate jitted forward pass "
                    f"({type(exc).__name__} inside the gradient pass)"
                )
            except Exception as exc2:  # noqa: BLE001 - e.g. a layer jit + grad cannot linearize
                note = (
                    f"jax.jit of the NNX forward/backward failed ({type(exc2).__name__}: "
                    f"{str(exc2).splitlines()[0][:160]}); ran eagerly instead"
                )
                out = step(*args, inside=False)
    loss, logits, seen, g_model, g_x, new_state = out
    nnx.update(model, new_state)
    param_grads = {
        k: from_torch(v) for k, v in linen_to_torch({"params": g_model.to_pure_dict()}).items()
    }
    stats = {
        k: from_torch(v)
        for k, v in nnx_to_torch(model).items()
        if k.endswith(("running_mean", "running_var"))
    }
    return {
        "logits": np.asarray(logits),
        "loss": np.asarray(loss),
        "x_grad": _to_nchw(np.asarray(g_x)),
        "param_grads": param_grads,
        "seen": {k: [np.asarray(v) for v in vs] for k, vs in seen.items()},
        "stats": stats,
        "note": note,
    }


def _compare_activations(
    judge: _Judge, torch_run: dict[str, Any], flax_run: dict[str, Any], model: torch.nn.Module
) -> None:
    """Layer by layer in torch execution order: boundary flips on quantizing layers'
    inputs, then each output; names the first diverging layer."""
    result = judge.result
    modules = dict(model.named_modules())
    t_seen, f_seen = torch_run["seen"], flax_run["seen"]
    missing: list[str] = []
    count_mismatch: list[str] = []
    for position, (name, call) in enumerate(torch_run["order"]):
        if name not in f_seen:
            if call == 0:
                missing.append(name)
            continue
        if call >= len(f_seen[name]):
            if call == len(f_seen[name]):
                count_mismatch.append(
                    f"{name} (torch {len(t_seen[name])} calls, jax {len(f_seen[name])})"
                )
            continue
        label = name if len(t_seen[name]) == 1 else f"{name}#{call}"
        quantizer = _torch_quantizer(modules[name])
        masked = _torch_masked(modules[name])
        key = f"{name}:input"
        if judge.judging and key in t_seen and key in f_seen:
            if call < len(t_seen[key]) and call < len(f_seen[key]):
                x_t = t_seen[key][call]
                x_f = np.ascontiguousarray(_to_nchw(f_seen[key][call]))
                if x_f.shape == x_t.shape and quantizer is not None:
                    _check_flips(judge, label, quantizer, x_t, x_f)
                if x_f.shape == x_t.shape and masked is not None and judge.judging:
                    _check_grad_flips(judge, label, position, masked, x_t, x_f)
        a = t_seen[name][call]
        b = _to_nchw(f_seen[name][call])
        result.layers_compared += 1
        was_judging = judge.judging
        if judge.compare(f"activation {label}", a, b, which="other") and was_judging:
            if result.first_divergence is None:
                result.first_divergence = label
    quantizing = [n for n, m in modules.items() if n and _torch_quantizer(m) is not None]
    internal = [n for n in missing if any(n.startswith(f"{q}.") for q in quantizing)]
    other = [n for n in missing if n not in internal]
    if other:
        shown = ", ".join(other[:8]) + (" ..." if len(other) > 8 else "")
        result.notes.append(
            f"{len(other)} torch module(s) have no NNX module at that path (not compared): {shown}"
        )
    if count_mismatch:
        result.notes.append("called a different number of times: " + "; ".join(count_mismatch))


def _list_flips(
    judge: _Judge,
    kind: str,
    x_t: np.ndarray,
    x_f: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    differ: np.ndarray,
    reason: str,
) -> int:
    """Count and list the elements where ``differ`` holds and the two inputs agree within
    the tolerance (``left``/``right``: the two sides' values there); returns the count."""
    result = judge.result
    a, b = x_t.astype(np.float64), x_f.astype(np.float64)
    with np.errstate(invalid="ignore"):
        flips = differ & (np.abs(a - b) <= judge.tol.allowed(a, b))
    n = int(flips.sum())
    result.flips += n
    for index in zip(*np.nonzero(flips), strict=True):
        if len(result.flip_list) >= MAX_LISTED:
            break
        result.flip_list.append(
            ModelElement(
                kind=kind,
                sample=0,
                index=tuple(int(i) for i in index),
                input=float(a[index]),
                cotangent=float("nan"),
                left=float(left[index]),
                right=float(right[index]),
                pre_round=float(b[index]),
                reason=reason,
            )
        )
    return n


def _check_flips(
    judge: _Judge, label: str, quantizer: torch.nn.Module, x_t: np.ndarray, x_f: np.ndarray
) -> None:
    """Boundary flips of one quantizing layer's input, both NCHW (see the module
    docstring)."""
    with torch.no_grad():
        q_t = from_torch(quantizer(to_torch(x_t))).astype(np.float64)
        q_f = from_torch(quantizer(to_torch(x_f))).astype(np.float64)
    differ = (q_t != q_f) & ~(np.isnan(q_t) & np.isnan(q_f))
    reason = "the inputs agree within the tolerance but straddle the rounding boundary"
    if _list_flips(judge, f"flip {label}", x_t, x_f, q_t, q_f, differ, reason):
        judge.result.flip_layer = judge.result.flip_layer or label
        judge.judging = False


def _check_grad_flips(
    judge: _Judge,
    label: str,
    position: int,
    masked: torch.nn.Module,
    x_t: np.ndarray,
    x_f: np.ndarray,
) -> None:
    """Gradient flips of one quantizing layer's or masked activation's input, both NCHW
    (see the module docstring)."""
    local = []
    with torch.enable_grad():
        for v in (x_t, x_f):
            tv = to_torch(v).requires_grad_(True)
            out = masked(tv.clone())  # an in-place ReLU may not write to a leaf
            (g,) = torch.autograd.grad(out, tv, torch.ones_like(out), allow_unused=True)
            local.append(np.zeros(v.shape) if g is None else from_torch(g).astype(np.float64))
    g_t, g_f = local
    reason = (
        "the inputs agree within the tolerance but straddle a boundary of the layer's "
        "gradient mask (its local gradient, torch vs jax)"
    )
    differ = (g_t == 0) != (g_f == 0)
    if _list_flips(judge, f"gradient flip {label}", x_t, x_f, g_t, g_f, differ, reason):
        # every module finishing before the LAST gradient flip may lie upstream of one
        if judge.grad_flip_at is None or position > judge.grad_flip_at:
            judge.grad_flip_at = position
            judge.result.grad_flip_layer = label


def _labels(labels: Any, n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    if labels is None:
        return rng.integers(0, num_classes, size=n).astype(np.int64)
    out = np.asarray(labels)
    if out.shape != (n,) or out.dtype.kind not in "iu":
        raise ValueError(
            f"compare_models: labels must be {n} integers (one per input row), got "
            f"{out.dtype}{list(out.shape)}"
        )
    if out.min() < 0 or out.max() >= num_classes:
        raise ValueError(f"compare_models: labels must lie in [0, {num_classes}), got {out}")
    return out.astype(np.int64)


def compare_models(
    torch_model: torch.nn.Module,
    flax_model: nnx.Module,
    inputs: Any,
    *,
    labels: Any = None,
    loss: LossPair | None = None,
    convert: bool = True,
    modes: Sequence[str] = MODES,
    name: str | None = None,
    seed: int = 0,
    tolerance: ModelTolerance | None = None,
) -> ParityReport:
    """Compare a torch model with its NNX twin; one :class:`ModelResult` row per mode.

    ``inputs``: one NCHW (or ``(N, features)``) array, NumPy, torch or JAX; it is cast
    to the torch model's parameter dtype (float32 or float64), and the NNX model gets it
    as NHWC. ``convert=True`` first writes the torch weights into ``flax_model``
    (:func:`bitorch_jax.convert.torch_to_nnx`, no name map: the twin's state paths must be
    the torch names); ``False`` takes both as given. A float64 NNX model must be built
    under ``jax.enable_x64(True)``; the comparison enables x64 itself.

    ``labels``: integer class per row (default: random, from ``seed``); ``loss``:
    ``(torch_fn, jax_fn)``, each ``(logits, labels) -> scalar`` (default: mean
    cross-entropy). ``modes``: ``"eval"`` and/or ``"train"``. Both models are left as they
    were (weights, statistics, train/eval modes). ``tolerance``: default
    :func:`~bitorch_common.tolerances.model_tolerance` of the dtype.
    """
    if not isinstance(torch_model, torch.nn.Module):
        raise TypeError(f"compare_models: torch_model must be a torch nn.Module, got "
                        f"{type(torch_model).__name__}")  # fmt: skip
    if not isinstance(flax_model, nnx.Module):
        raise TypeError(f"compare_models: flax_model must be an NNX Module, got "
                        f"{type(flax_model).__name__}")  # fmt: skip
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"compare_models: modes must be among {MODES}, got {list(modes)!r}")
    dtype = _torch_dtype_of(torch_model)
    if dtype not in MODEL_DTYPES:
        raise ValueError(
            f"compare_models: the torch model is {dtype}; models are compared in "
            f"{' and '.join(MODEL_DTYPES)} only"
        )
    if isinstance(inputs, torch.Tensor):
        x = from_torch(inputs)
    else:
        x = np.asarray(inputs)
    x = np.ascontiguousarray(x.astype(dtype))
    tol = tolerance or model_tolerance(dtype)
    loss_torch, loss_jax = loss if loss is not None else (_ce_torch, _ce_jax)
    label = name or type(torch_model).__name__
    report = ParityReport()
    with jax_x64(dtype), _kept_state(torch_model, flax_model):
        if convert:
            torch_to_nnx(torch_model, flax_model)
        with torch.no_grad():
            torch_model.eval()
            probe = torch_model(to_torch(x))
        # labels: one per row, classes from the logits' last axis (any for a user loss)
        n = int(probe.shape[0]) if probe.ndim else 1
        num_classes = int(probe.shape[-1]) if probe.ndim >= 2 else 1
        rng = np.random.default_rng(seed)
        ys = _labels(labels, n, num_classes, rng)
        quantizing = [nm for nm, m in torch_model.named_modules() if nm and _records_input(m)]
        for mode in modes:
            result = ModelResult(label, mode, dtype, jax.default_backend(), kind="model",
                                 rtol=tol.rtol, array_rtol=tol.array_rtol)  # fmt: skip
            report.results.append(result)
            try:
                _set_mode(torch_model, flax_model, mode)
                t_run = _torch_run(torch_model, x, ys, loss_torch)
                f_run = _flax_run(flax_model, x, ys, loss_jax, quantizing)
                _compare_runs(_Judge(result, tol), t_run, f_run, torch_model, mode)
            except Exception as exc:  # noqa: BLE001 - an ERROR row names what raised
                result.error = f"{type(exc).__name__}: {exc}"
    return report


def _compare_runs(
    judge: _Judge, t: dict[str, Any], f: dict[str, Any], torch_model: torch.nn.Module, mode: str
) -> None:
    result = judge.result
    if f.get("note"):
        result.notes.append(f["note"])
    _compare_activations(judge, t, f, torch_model)
    judge.compare("logits", t["logits"], f["logits"], which="forward")
    judge.compare("loss", t["loss"], f["loss"], which="forward")
    cut = judge.grad_flip_at
    first_done: dict[str, int] = {}
    for position, (module, _) in enumerate(t["order"]):
        first_done.setdefault(module, position)

    def grad_judged(module: str | None) -> bool:
        """After a gradient flip, only the gradients of modules finishing after it."""
        return cut is None or (module is not None and first_done.get(module, -1) > cut)

    def compare_grad(label: str, a: Any, b: Any, module: str | None, **kw: Any) -> None:
        judging = judge.judging
        judge.judging = judging and grad_judged(module)
        try:
            judge.compare(label, a, b, which="grad", **kw)
        finally:
            judge.judging = judging

    compare_grad("input grad", t["x_grad"], f["x_grad"], None)
    t_grads, f_grads = t["param_grads"], dict(f["param_grads"])
    # a torch parameter with requires_grad off (e.g. QuickNet's fixed blur) has no
    # gradient; its Flax twin may be a Param behind stop_gradient: its gradient must be 0
    for key in t.get("frozen", ()):
        if key in f_grads:
            g = np.asarray(f_grads.pop(key))
            nonzero = np.flatnonzero(g != 0)
            if nonzero.size:
                index = np.unravel_index(nonzero[0], g.shape)
                result.problems.append(
                    f"grad {key}: frozen in torch (requires_grad=False) but the Flax gradient "
                    f"is non-zero at {nonzero.size} element(s), first at "
                    f"{list(map(int, index))}: {g[index]!r}"
                )
    only = sorted(set(t_grads) ^ set(f_grads))
    if only:
        result.problems.append(f"parameter gradients on one side only: {only}")
    module_scale: dict[str, float] = {}
    for grads in (t_grads, f_grads):
        for key, g in grads.items():
            module = key.rpartition(".")[0]
            g = np.abs(np.asarray(g, dtype=np.float64))
            finite = g[np.isfinite(g)]
            top = float(finite.max()) if finite.size else 0.0
            module_scale[module] = max(module_scale.get(module, 0.0), top)
    for key in [k for k in t_grads if k in f_grads]:
        scale = module_scale[key.rpartition(".")[0]]
        compare_grad(f"grad {key}", t_grads[key], f_grads[key], key.rpartition(".")[0],
                     scale=scale)  # fmt: skip
    if mode == "train":
        t_stats, f_stats = t["stats"], f["stats"]
        if set(t_stats) != set(f_stats):
            result.problems.append(
                f"running statistics on one side only: {sorted(set(t_stats) ^ set(f_stats))}"
            )
        for key in [k for k in t_stats if k in f_stats]:
            module, _, stat = key.rpartition(".")
            scale = None
            var_key = f"{module}.running_var"
            if stat == "running_mean" and var_key in t_stats:
                # a batch mean sums values of the size of the batch's standard deviation;
                # a mean near 0 by cancellation carries their rounding error
                scale = float(np.sqrt(np.nanmax(np.abs(t_stats[var_key]))))
            judge.compare(
                f"{stat} {module}", t_stats[key], f_stats[key], which="other", scale=scale
            )


# ----------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry of the ``models`` subcommand: NCHW ``input_shape`` (batch included),
    ``num_classes``, constructor ``kwargs``; ``quick``: in the default selection;
    ``submodule``: where an unregistered class lives (``bitorch[_jax].models.<submodule>``);
    ``calibrate``: BatchNorm running statistics from one train-mode pass over the input
    instead of random ones (networks whose un-binarised activations otherwise grow past
    the float32 range in eval mode)."""

    input_shape: tuple[int, ...]
    num_classes: int = 10
    kwargs: dict = field(default_factory=dict)
    quick: bool = True
    submodule: str | None = None
    calibrate: bool = False


#: Zoo names (bitorch 0.4.1's) -> a small input. The ``models`` subcommand runs the names
#: importable from both registries; ``quick=False`` ones only with ``--models all``.
# fmt: off
ZOO: dict[str, ModelSpec] = {
    "LeNet": ModelSpec((4, 1, 28, 28)),
    "ResnetE18": ModelSpec((2, 3, 16, 16)),
    "ResnetE34": ModelSpec((2, 3, 16, 16), quick=False),
    "Resnet18V1": ModelSpec((2, 3, 16, 16)),
    "Resnet34V1": ModelSpec((2, 3, 16, 16), quick=False),
    # bottleneck ResNets: BatchNorm statistics from the input (with random ones the
    # un-binarised activations reach 1e57 and float32 overflows, a 0.4.1 property, see
    # docs/SPEC.md); 32x32, batch 4: no train-mode BatchNorm over 2 values per channel
    "Resnet50V1": ModelSpec((4, 3, 32, 32), quick=False, calibrate=True),
    "Resnet152V1": ModelSpec((4, 3, 32, 32), quick=False, calibrate=True),
    "Resnet18V2": ModelSpec((2, 3, 16, 16)),
    "Resnet34V2": ModelSpec((2, 3, 16, 16), quick=False),
    "Resnet50V2": ModelSpec((4, 3, 32, 32), quick=False, calibrate=True),
    "Resnet152V2": ModelSpec((4, 3, 32, 32), quick=False, calibrate=True),
    # 64x64, batch 4: at 32x32 the last section is 1x1, and a train-mode BatchNorm over 2
    # values per channel amplifies rounding by 1/sqrt(var + eps) (a degenerate test)
    "QuickNetSmall": ModelSpec((4, 3, 64, 64)),
    "QuickNet": ModelSpec((4, 3, 64, 64), quick=False),
    "QuickNetLarge": ModelSpec((4, 3, 64, 64), quick=False),
    "DenseNet28": ModelSpec((2, 3, 32, 32)),
    "DenseNet37": ModelSpec((2, 3, 32, 32), quick=False),
    "DenseNet45": ModelSpec((2, 3, 32, 32), quick=False),
    "MeliusNet22": ModelSpec((2, 3, 32, 32)),
    "MeliusNet23": ModelSpec((2, 3, 32, 32), quick=False),
    "MeliusNet29": ModelSpec((2, 3, 32, 32), quick=False, submodule="meliusnet"),
    "MeliusNet42": ModelSpec((2, 3, 32, 32), quick=False),
    "MeliusNet59": ModelSpec((2, 3, 32, 32), quick=False),
    "MeliusNetA": ModelSpec((2, 3, 32, 32), quick=False),
    "MeliusNetB": ModelSpec((2, 3, 32, 32), quick=False),
    "MeliusNetC": ModelSpec((2, 3, 32, 32), quick=False),
}
# fmt: on


def _zoo_class(module: Any, name: str) -> Any:
    """The model class ``name`` of ``bitorch.models``/``bitorch_jax.models``: registered
    (``model_from_name``), else a package attribute, else one of the ``submodule`` of its
    :data:`ZOO` entry (0.4.1 defines ``MeliusNet29`` in ``models.meliusnet`` without
    registering or exporting it); ``None`` when none exists."""
    if name.lower() in module.model_names():
        return module.model_from_name(name)
    cls = getattr(module, name, None)
    spec = ZOO.get(name)
    if cls is None and spec is not None and spec.submodule:
        try:
            inner = importlib.import_module(f"{module.__name__}.{spec.submodule}")
        except ImportError:
            return None
        cls = getattr(inner, name, None)
    return cls if isinstance(cls, type) else None


def zoo_names() -> tuple[list[str], list[str]]:
    """``(runnable, skip messages)``: the :data:`ZOO` names defined in both
    ``bitorch.models`` and ``bitorch_jax.models`` (registered, or a module attribute;
    table order), and why the others are not run (a package that fails to import, or a
    name missing from one of them)."""
    found: dict[str, set[str]] = {}
    skipped = []
    for label, module in (("bitorch.models", "bitorch.models"),
                          ("bitorch_jax.models", "bitorch_jax.models")):  # fmt: skip
        try:
            registry = __import__(module, fromlist=["model_names"])
            found[label] = {n for n in ZOO if _zoo_class(registry, n) is not None}
        except Exception as exc:  # noqa: BLE001 - the zoo may be incomplete
            found[label] = set()
            skipped.append(f"{label} does not import ({type(exc).__name__}: {exc})")
    both = [n for n in ZOO if all(n in names for names in found.values())]
    absent = [n for n in ZOO if n not in both]
    if absent:
        skipped.append(f"not in both bitorch.models and bitorch_jax.models (skipped): "
                       f"{', '.join(absent)}")  # fmt: skip
    return both, skipped


def _randomize_batchnorms(model: torch.nn.Module, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm weights and running statistics (fresh ones are 1/0), so that
    eval mode and the conversion of every tensor are exercised."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            c = module.num_features
            dtype = module.running_mean.dtype
            with torch.no_grad():
                module.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.3, c)).to(dtype))
                module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c)).to(dtype))
                if module.affine:
                    module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c)).to(dtype))
                    module.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, c)).to(dtype))


def _calibrate_batchnorms(model: torch.nn.Module, x: np.ndarray) -> None:
    """Running statistics of every BatchNorm from one train-mode pass over ``x``
    (cumulative average), as a trained checkpoint has them; momenta and modes restored."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            model(to_torch(x))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)


def build_pair(
    name: str, dtype: str, seed: int = 0
) -> tuple[torch.nn.Module, nnx.Module, np.ndarray]:
    """``(torch model, NNX model, NCHW input)`` of zoo entry ``name`` in ``dtype``; call
    (and use the NNX model) under ``jax_x64(dtype)`` for float64."""
    import bitorch.models as torch_models
    import bitorch_jax.models as jax_models

    spec = ZOO[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # num_classes by keyword: 0.4.1's QuickNetSmall/Large take it only so
    t_model = _zoo_class(torch_models, name)(
        spec.input_shape, num_classes=spec.num_classes, **spec.kwargs
    )
    t_model = t_model.to(getattr(torch, dtype))
    _randomize_batchnorms(t_model, rng)
    f_model = _zoo_class(jax_models, name)(
        spec.input_shape, num_classes=spec.num_classes, **spec.kwargs,
        rngs=nnx.Rngs(seed), param_dtype=jnp.dtype(dtype),
    )  # fmt: skip
    x = rng.normal(size=spec.input_shape).astype(dtype)
    if spec.calibrate:
        _calibrate_batchnorms(t_model, x)
    return t_model, f_model, x


def run_zoo(
    names: Sequence[str],
    dtypes: Sequence[str] = MODEL_DTYPES,
    *,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> ParityReport:
    """:func:`compare_models` for each zoo name and dtype (eval and train rows)."""
    report = ParityReport()
    total, done = len(names) * len(dtypes), 0
    for name in names:
        for dtype in dtypes:
            if progress is not None:
                progress(done, total, f"{name} {dtype}")
            try:
                with jax_x64(dtype):
                    t_model, f_model, x = build_pair(name, dtype, seed)
                report.results += compare_models(t_model, f_model, x, name=name, seed=seed).results
            except Exception as exc:  # noqa: BLE001 - building failed: ERROR rows
                for mode in MODES:
                    row = ModelResult(name, mode, dtype, jax.default_backend(), kind="model")
                    row.error = f"{type(exc).__name__}: {exc}"
                    report.results.append(row)
            done += 1
    if progress is not None:
        progress(total, total, "done")
    return report


# ----------------------------------------------------------------------------- command

RULES = (
    "Models (params: eval/train mode; torch vs NNX with bitorch_jax.convert weights): "
    "logits, loss, input gradient, every parameter gradient (torch names and layout), "
    "BatchNorm running statistics after the train step and every intermediate activation "
    "within model_tolerance (bitorch_common/tolerances.py); the first layer (torch order) "
    "beyond it is named. A boundary flip (a quantizing layer's inputs agree within the "
    "tolerance but quantize differently: they straddle 0 for sign) is counted; from that "
    "layer on, that mode's results are shown but not judged. A gradient flip (the inputs "
    "agree but straddle a mask boundary of the straight-through gradient, e.g. |x| = 1 of "
    "gradient cancellation) is counted too; the input gradient and the gradients of the "
    "modules finishing before that layer are then shown but not judged."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parity_tests models",
        description="Compare the bitorch model zoo (torch) with bitorch_jax's NNX twins: "
        "logits, loss, gradients, BatchNorm statistics and every activation, in eval and "
        "train mode. Runs the zoo names importable from both registries.",
    )
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="zoo names, comma list or 'all' (default: the quick set)")  # fmt: skip
    parser.add_argument("--dtypes", nargs="+", metavar="DTYPE",
                        help=f"default: {' '.join(MODEL_DTYPES)}")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--list", action="store_true", help="list the runnable names and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress indicator")
    return parser


def _split(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m parity_tests models``: 0 when every model matches, 1 if not, 2 for a
    usage error."""
    from parity_tests.__main__ import _Progress

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    runnable, skipped = zoo_names()
    wanted = _split(args.models)
    try:
        dtypes = list(dict.fromkeys(dtype_name(d) for d in (_split(args.dtypes) or MODEL_DTYPES)))
        bad_dtypes = [d for d in dtypes if d not in MODEL_DTYPES]
        if bad_dtypes:
            raise ValueError(f"models run in {' and '.join(MODEL_DTYPES)} only, got {bad_dtypes}")
        by_lower = {n.lower(): n for n in ZOO}
        if wanted is None:
            names = [n for n in runnable if ZOO[n].quick]
        elif wanted == ["all"]:
            names = list(runnable)
        else:
            unknown = [w for w in wanted if w.lower() not in by_lower]
            if unknown:
                raise ValueError(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(ZOO)}")
            names = [by_lower[w.lower()] for w in dict.fromkeys(wanted)]
            absent = [n for n in names if n not in runnable]
            if absent:
                raise ValueError(
                    f"not in both bitorch.models and bitorch_jax.models: "
                    f"{', '.join(absent)} (runnable: {', '.join(runnable) or 'none'})"
                )
    except (ValueError, TypeError) as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for n in runnable:
            spec = ZOO[n]
            print(f"{n}  input {spec.input_shape}, {spec.num_classes} classes"
                  f"{'' if spec.quick else '  (only with --models all)'}")  # fmt: skip
        for line in skipped:
            print(line, file=sys.stderr)
        return 0
    out = sys.stdout
    print(f"bitorch-jax model parity: bitorch (torch {torch.__version__}) vs bitorch_jax "
          f"(jax {jax.__version__}), NNX", file=out)  # fmt: skip
    print(f"{len(names)} model(s) x {len(dtypes)} dtype(s) ({', '.join(dtypes)}) x eval/train; "
          f"seed {args.seed}; torch on cpu, jax on {jax.default_backend()}", file=out)  # fmt: skip
    for line in skipped:
        print(line, file=out)
    print(file=out)
    progress = _Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.quiet)
    start = time.perf_counter()
    report = run_zoo(names, dtypes, seed=args.seed, progress=progress)
    report.skipped += skipped
    elapsed = time.perf_counter() - start
    print(report.table(), file=out)
    print(file=out)
    print(report.summary(), file=out)
    largest = report.largest_by_dtype()
    if largest:
        print(largest, file=out)
    for dtype in dtypes:
        tol = model_tolerance(dtype)
        print(f"model_tolerance({dtype}): rtol={tol.rtol:g}, array_rtol={tol.array_rtol:g}",
              file=out)  # fmt: skip
    print(RULES, file=out)
    for r in report.results:
        if r.first_divergence:  # type: ignore[attr-defined]
            print(f"{r.quantizer} {r.dtype} {r.params}: first divergence at "  # type: ignore[attr-defined]
                  f"{r.first_divergence}", file=out)  # fmt: skip
    details = report.details()
    if details:
        print(file=out)
        print(details, file=out)
    verdict = "PASS: every model matches" if report.ok else "FAIL: see above"
    print(f"\n{verdict} ({elapsed:.1f} s)", file=out)
    if args.json:
        text = report.to_json(
            torch=torch.__version__, jax=jax.__version__, seed=args.seed,
            dtypes=dtypes, models=names, command="models",
        )  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0 if report.ok else 1
