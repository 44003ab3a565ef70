"""Layer parity: bitorch's quantized layers (torch) vs bitorch_jax's linen and NNX classes.

The case table (:data:`CASES`) holds ``QLinear``, ``QConv1d/2d/3d`` and ``QActivation``
configurations: padding (ints, pairs, ``"same"`` with even kernels, ``"valid"``), stride,
dilation, groups, bias, ``pad_value`` and gradient-cancellation variants. Both
``python -m parity_tests`` (:func:`run_layer_cases`) and the pytest suite
(``tests/layers``) run it with the runners here:

* :func:`make_arrays` draws the input, weight, bias and a random non-unit cotangent once
  in NumPy (torch layout), with ``0``, ``-0.0``, ``+-1``, ``+-threshold``, values just past
  it, ``+-3``, ``+-inf`` and ``+-0.5`` planted twice in the input (once at the start, once
  at random positions, so strided and dilated windows see them too);
* :func:`run_torch` runs the bitorch layer (autograd); :func:`run_flax` runs the linen
  and the NNX class with weights from :mod:`bitorch_jax.convert` under one ``jax.jit``
  (forward and VJP of both; the shared math is compiled once); :func:`run_jax` runs the
  pure function. Every result is in torch layout (weight gradients converted back with
  :func:`bitorch_jax.convert.linen_to_torch`), so arrays compare element for element.

Comparison (:func:`compare_layer`): outputs of layers whose quantizers are both 1-bit are
sums of +-1 (and ``pad_value``) products plus one bias addition, exact in both
frameworks, so they must be bit-equal; every other output and every gradient must be
within :func:`bitorch_common.tolerances.layer_tolerance` (``rtol``/``atol``). NaN
positions must match, and where ``|x| > threshold > 0`` the input gradient must be
exactly 0 on both sides (gradient cancellation). A failure names the array
(``output``, ``input grad``, ``weight grad``, ``bias grad``), the element, both values and
the allowed difference.

bitorch 0.4.1's other layers (``PadModule``, ``Pact``, ``QEmbedding``,
``QEmbeddingBag``, ``BEmbedding``, ``BEmbeddingBag``, ``QConv2d_NoAct``) have their own
small table, :data:`EXTRA_CASES` (:class:`ExtraLayerCase`), run by the same rows and the
same comparison: outputs, input gradients (``x``, ``per_sample_weights``), weight
gradients (the table, ``alpha``, the kernel) in torch layout. A binary embedding's
"weight grad" is the gradient with respect to its decoded float table: torch's
``unique_vectors.grad`` scattered into the table's rows, JAX's gradient with respect to
``vectors``. ``select_layer_cases(None)`` (the command without ``--layers``) runs both
tables; ``"all"`` names :data:`CASES` and ``"extra"`` names :data:`EXTRA_CASES`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

import bitorch.layers as torch_layers
import bitorch.quantizations as tq
import bitorch_jax.quantizations as jq
from bitorch.layers import QActivation, QConv1d, QConv2d, QConv3d, QLinear
from bitorch_common.comparison import MAX_LISTED, Element
from bitorch_common.quantizers import row
from bitorch_common.tolerances import layer_tolerance
from bitorch_jax.convert import linen_to_torch, torch_to_linen, torch_to_nnx
from bitorch_jax.layers import linen as qlinen
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.layers import q_activation, q_conv, q_linear
from parity_tests import backends
from parity_tests.report import ParityReport, ParityResult

__all__ = [
    "LayerCase",
    "Case",
    "CASES",
    "CASE_IDS",
    "ExtraLayerCase",
    "EXTRA_CASES",
    "EXTRA_CASE_IDS",
    "LAYER_DTYPES",
    "ARRAY_NAMES",
    "select_layer_cases",
    "make_arrays",
    "torch_layer",
    "run_torch",
    "run_flax",
    "run_jax",
    "run_linen",
    "run_nnx",
    "compare_layer",
    "layer_rows",
    "run_layer_cases",
]

HIGHEST = jax.lax.Precision.HIGHEST


def _zeros(key: Any, shape: Sequence[int], dtype: Any = np.float32) -> jax.Array:
    """NNX parameter init without a JAX computation (each would compile; the weights are
    overwritten by the conversion anyway)."""
    return jax.device_put(np.zeros(shape, dtype))


_TORCH_CONV = {1: QConv1d, 2: QConv2d, 3: QConv3d}

#: Layers are compared in these dtypes only (halves: see the quantizer rows).
LAYER_DTYPES: tuple[str, ...] = ("float32", "float64")

#: Result keys (as :func:`run_torch` and :func:`run_flax` return them) -> names in reports.
ARRAY_NAMES: dict[str, str] = {
    "y": "output",
    "x_grad": "input grad",
    "weight_grad": "weight grad",
    "bias_grad": "bias grad",
    "alpha_grad": "alpha grad",
    "psw_grad": "per_sample_weights grad",
    "scale_grad": "scale grad",  # QLinear/QConv output_scale
    # ReActNet's RSign (bias, above) and RPReLU
    "bias_in_grad": "bias_in grad",
    "slope_grad": "slope grad",
    "bias_out_grad": "bias_out grad",
}


def _bit_width(spec: tuple[str, dict]) -> int | None:
    name, params = spec
    try:
        return row(name).bit_width_of(params)
    except KeyError:  # a registered quantizer without a row of the table
        return None


@dataclass(frozen=True)
class LayerCase:
    """One layer configuration. ``n``: 0 = QLinear, 1..3 = QConvNd, -1 = QActivation."""

    id: str
    n: int
    in_features: int = 4
    out_features: int = 6
    kernel_size: tuple[int, ...] = ()
    spatial: tuple[int, ...] = ()
    batch: tuple[int, ...] = (2,)
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = False
    pad_value: float = -1.0
    input_q: tuple[str, dict] = ("sign", {})
    weight_q: tuple[str, dict] = ("sign", {})
    threshold: float = 1.0
    extra: dict = field(default_factory=dict)

    @property
    def exact_forward(self) -> bool:
        """Both quantizers are 1-bit: outputs are exact sums of +-1 (and ``pad_value``)
        products plus one bias addition, so they are equal bit for bit. Not with an output
        scale: XLA may fuse ``y * scale + bias`` into one FMA (one rounding, torch: two)."""
        one_bit = all(_bit_width(spec) == 1 for spec in (self.input_q, self.weight_q))
        return one_bit and not self.extra.get("output_scale")

    @property
    def layer(self) -> str:
        """The bitorch class: ``QLinear``, ``QConv2d``, ``QActivation``, ..."""
        return {-1: "QActivation", 0: "QLinear"}.get(self.n, f"QConv{self.n}d")

    @property
    def description(self) -> str:
        """The layer and its arguments, e.g. ``QConv2d(3, 4, (3, 3), padding=1, ...)``."""

        def q(spec: tuple[str, dict]) -> str:
            name, params = spec
            inner = ", ".join(f"{k}={v}" for k, v in params.items())
            return f"{name}({inner})" if inner else name

        parts = [] if self.n == -1 else [str(self.in_features), str(self.out_features)]
        if self.n > 0:
            parts.append(str(self.kernel_size))
            defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
            for key, default in defaults.items():
                value = getattr(self, key)
                if value != default:
                    parts.append(f"{key}={value!r}")
            parts.append(f"pad_value={self.pad_value}")
        if self.n >= 0:
            parts.append(f"bias={self.bias}")
            parts += [f"{key}={value!r}" for key, value in self.extra.items()]
            parts.append(f"weight={q(self.weight_q)}")
        parts.append(f"input={q(self.input_q)}")
        parts.append(f"threshold={self.threshold}")
        return f"{self.layer}({', '.join(parts)}) on input {self.input_shape()}"

    def input_shape(self) -> tuple[int, ...]:
        if self.n == -1:
            return (*self.batch, 3, 5)
        if self.n == 0:
            return (*self.batch, self.in_features)
        return (*self.batch, self.in_features, *self.spatial)


#: The name the layer tests use.
Case = LayerCase

# Inputs are small, and each case combines several variants: a compile per case and
# dtype dominates the run time. The cases put every mistake the command must catch within
# reach: |x| == threshold (``>=`` instead of ``>``), pad_value 0.5 (neither 0 nor its own
# quantized value: padding with 0, padding before quantizing), even kernels with "same"
# (the odd pad on the wrong side), biases, non-symmetric kernels (spatial axes reversed
# by the conversion), non-1-bit quantizers (outputs within the tolerance).
# fmt: off
CASES: list[LayerCase] = [
    LayerCase("linear-bias", 0, 7, 5, batch=(6,), bias=True),
    LayerCase("linear-unbatched-threshold0", 0, 16, 3, batch=(), threshold=0.0),
    LayerCase(
        "linear-approxsign-weightdorefa2",
        0, 8, 5, batch=(4,), bias=True, threshold=0.5,
        input_q=("approxsign", {}), weight_q=("weightdorefa", {"bits": 2}),
    ),
    LayerCase(
        "linear-2x3-batch-inputdorefa2-steheaviside",
        0, 5, 4, batch=(2, 3), bias=True, threshold=0.5,
        input_q=("inputdorefa", {"bits": 2}), weight_q=("steheaviside", {}),
    ),
    LayerCase("conv1d-pad1-padvalue0.5", 1, 3, 5, (3,), (9,), padding=1, pad_value=0.5),
    LayerCase("conv1d-stride2-dil2-pad2-bias", 1, 4, 6, (3,), (11,), stride=2, padding=2,
              dilation=2, bias=True),
    LayerCase("conv1d-groups2-same-even-kernel", 1, 4, 6, (4,), (8,), padding="same",
              groups=2),
    LayerCase(
        "conv2d-rect-stride-dil-groups-bias",
        2, 4, 6, (2, 3), (7, 8),
        stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=True,
    ),
    LayerCase("conv2d-same-even-kernel-dil1x2", 2, 2, 3, (2, 3), (6, 6), padding="same",
              dilation=(1, 2)),
    LayerCase("conv2d-unbatched-padvalue0-threshold0", 2, 2, 3, (3, 3), (5, 5), batch=(),
              padding=1, pad_value=0.0, threshold=0.0),
    LayerCase(
        "conv2d-padvalue+1-approxsign-weightdorefa2",
        2, 3, 4, (3, 3), (5, 4), padding=2, pad_value=1.0, threshold=0.7,
        input_q=("approxsign", {}), weight_q=("weightdorefa", {"bits": 2}),
    ),
    LayerCase(
        "conv2d-inputdorefa2-swishsign3",
        2, 2, 4, (3, 2), (4, 5), padding=(1, 2), threshold=0.5,
        input_q=("inputdorefa", {"bits": 2}), weight_q=("swishsign", {"beta": 3.0}),
    ),
    LayerCase("conv2d-depthwise-bias", 2, 4, 8, (3, 3), (5, 5), padding=1, groups=4,
              bias=True),
    LayerCase("conv3d-same-even-kernel-padvalue0.5", 3, 2, 3, (2, 2, 2), (4, 5, 3),
              padding="same", pad_value=0.5),
    LayerCase("conv3d-stride2-valid-groups2-bias", 3, 4, 4, (3, 3, 3), (5, 5, 6), stride=2,
              padding="valid", groups=2, bias=True),
    LayerCase("activation-sign", -1, threshold=1.0),
    LayerCase("activation-approxsign-threshold0.5", -1, threshold=0.5,
              input_q=("approxsign", {})),
    LayerCase("activation-steheaviside-threshold0", -1, threshold=0.0,
              input_q=("steheaviside", {})),
    LayerCase("activation-swishsign5", -1, threshold=1.3, input_q=("swishsign", {"beta": 5.0})),
]
# fmt: on

# ---- learnable output scales (issue 13, XNOR-Net's per-output-channel scale) ----------
# ``extra={"output_scale": True}``: torch's and Flax's ``scale`` parameter (drawn
# non-unit, both signs), multiplied onto the output before the bias; its gradient is
# compared as "scale grad". (torch refuses padding="same" with a stride > 1, so the
# Flax-only SAME-with-stride is tested against nnx.Conv in tests/jax/test_layer_dtypes.py.)
# fmt: off
CASES += [
    LayerCase("linear-outputscale-bias", 0, 7, 5, batch=(4,), bias=True,
              extra={"output_scale": True}),
    LayerCase("linear-outputscale-approxsign-weightdorefa2", 0, 6, 3, batch=(2, 2),
              threshold=0.5, input_q=("approxsign", {}), weight_q=("weightdorefa", {"bits": 2}),
              extra={"output_scale": True}),
    LayerCase("conv1d-outputscale-same-even-kernel-padvalue0.5", 1, 3, 4, (4,), (7,),
              padding="same", pad_value=0.5, extra={"output_scale": True}),
    LayerCase("conv2d-outputscale-stride2-groups2-bias", 2, 4, 6, (3, 2), (6, 7), stride=2,
              padding=1, groups=2, bias=True, extra={"output_scale": True}),
]
# fmt: on
# ---- end of the output-scale block -------------------------------------------------------
CASE_IDS = [case.id for case in CASES]


def select_layer_cases(ids: Iterable[str] | None) -> list[Any]:
    """The cases named by ``ids`` (table order kept as given); ``None``: both tables
    (:data:`CASES` and :data:`EXTRA_CASES`); ``["all"]``: :data:`CASES`; ``["extra"]``:
    :data:`EXTRA_CASES`; ``["none"]`` or ``[]``: none. Unknown ids raise ``ValueError``."""
    if ids is None:
        return [*CASES, *EXTRA_CASES]
    wanted = list(dict.fromkeys(ids))
    groups: dict[str, list[Any]] = {"all": list(CASES), "extra": list(EXTRA_CASES)}
    if len(wanted) == 1 and wanted[0] in groups:
        return groups[wanted[0]]
    if wanted in ([], ["none"]):
        return []
    by_id = {case.id: case for case in (*CASES, *EXTRA_CASES)}
    alone = ("all", "extra", "none")
    unknown = [w for w in wanted if w not in by_id]
    if unknown or len(wanted) > 1 and any(w in alone for w in wanted):
        bad = unknown or [w for w in wanted if w in alone]
        raise ValueError(
            f"unknown layer case(s): {', '.join(bad)} ('all', 'extra' and 'none' stand "
            f"alone); known: {', '.join([*CASE_IDS, *EXTRA_CASE_IDS])}"
        )
    return [by_id[w] for w in wanted]


# ----------------------------------------------------------------------------- inputs


def torch_quantization(spec: tuple[str, dict]) -> tq.Quantization:
    name, params = spec
    return tq.quantization_from_name(name)(**params)


def jax_quantization(spec: tuple[str, dict]) -> jq.Quantization:
    name, params = spec
    return jq.quantization_from_name(name)(**params)


def _special_values(case: LayerCase, np_dtype: np.dtype) -> np.ndarray:
    t = np_dtype.type(case.threshold)
    past = np.nextafter(t, np_dtype.type(np.inf))
    values = [0.0, -0.0, 1.0, -1.0, t, -t, past, -past, 3.0, -3.0, np.inf, -np.inf, 0.5, -0.5]
    return np.array(values, np_dtype)


def make_arrays(case: LayerCase, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Input ``x``, ``weight``, ``bias`` and cotangent ``g`` (torch layout) in ``dtype``."""
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    x = rng.normal(scale=1.2, size=case.input_shape()).astype(np_dtype)
    special = _special_values(case, np_dtype)
    flat = x.reshape(-1)
    head = min(len(special), flat.size)
    flat[:head] = special[:head]
    # a second copy at random positions: strided/dilated windows skip some inputs
    rest = flat.size - head
    if rest:
        where = head + rng.permutation(rest)[: min(len(special), rest)]
        flat[where] = special[: len(where)]
    arrays = {"x": x}
    if case.n == -1:
        out_shape = x.shape
    else:
        if case.n == 0:
            w_shape = (case.out_features, case.in_features)
        else:
            w_shape = (case.out_features, case.in_features // case.groups, *case.kernel_size)
        w = rng.uniform(-1.5, 1.5, size=w_shape).astype(np_dtype)
        w.reshape(-1)[:4] = np.array([0.0, -0.0, 1.0, -1.0], np_dtype)
        arrays["weight"] = w
        if case.bias:
            arrays["bias"] = rng.normal(size=case.out_features).astype(np_dtype)
        if case.extra.get("output_scale"):
            magnitude = rng.uniform(0.25, 2.0, size=case.out_features)
            sign = np.where(np.arange(case.out_features) % 2, -1.0, 1.0)
            arrays["scale"] = (magnitude * sign).astype(np_dtype)
        out_shape = _output_shape(case)
    arrays["g"] = rng.normal(scale=1.7, size=out_shape).astype(np_dtype)
    return arrays


def _output_shape(case: LayerCase) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(torch_layer(case, "float32")(torch.zeros(case.input_shape())).shape)


def torch_layer(case: LayerCase, dtype: str, arrays: dict | None = None) -> torch.nn.Module:
    """The bitorch layer of ``case`` (weights from ``arrays`` when given)."""
    torch_dtype = getattr(torch, dtype)
    quantization = torch_quantization(case.input_q)
    if case.n == -1:
        return QActivation(quantization, gradient_cancellation_threshold=case.threshold)
    common = {
        "input_quantization": quantization,
        "weight_quantization": torch_quantization(case.weight_q),
        "gradient_cancellation_threshold": case.threshold,
        "bias": case.bias,
        "dtype": torch_dtype,
        **_scale_kwargs(case),
    }
    if case.n == 0:
        layer = QLinear(case.in_features, case.out_features, **common)
    else:
        layer = _TORCH_CONV[case.n](
            case.in_features,
            case.out_features,
            case.kernel_size,
            stride=case.stride,
            padding=case.padding,
            dilation=case.dilation,
            groups=case.groups,
            pad_value=case.pad_value,
            **common,
        )
    if arrays is not None:
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(arrays["weight"]))
            if case.bias:
                layer.bias.copy_(torch.from_numpy(arrays["bias"]))
            if "scale" in arrays:
                layer.scale.copy_(torch.from_numpy(arrays["scale"]))
    return layer


def _scale_kwargs(case: LayerCase) -> dict[str, Any]:
    """``{"output_scale": True}`` for an output-scale case (the layers' keyword), else ``{}``."""
    return {"output_scale": True} if case.extra.get("output_scale") else {}


# ----------------------------------------------------------------------------- runners


def run_torch(
    case: LayerCase, arrays: dict[str, np.ndarray], dtype: str, device: Any = "cpu"
) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """Output and gradients of the bitorch layer, and the layer (on the CPU)."""
    layer = torch_layer(case, dtype, arrays)
    on_device = layer.to(device)
    x = torch.tensor(arrays["x"], device=device, requires_grad=True)
    y = on_device(x)
    y.backward(torch.from_numpy(arrays["g"]).to(device))
    result = {"y": y, "x_grad": x.grad}
    if case.n >= 0:
        result["weight_grad"] = on_device.weight.grad
        if case.bias:
            result["bias_grad"] = on_device.bias.grad
        if on_device.scale is not None:
            result["scale_grad"] = on_device.scale.grad
    result = {k: v.detach().cpu().numpy() for k, v in result.items()}
    return layer.cpu(), result


def to_flax_layout(case: LayerCase, a: np.ndarray) -> np.ndarray:
    """Channels-first (torch) to channels-last (Flax) for convolution inputs/outputs."""
    if case.n <= 0:
        return a
    return np.moveaxis(a, -case.n - 1, -1)


def from_flax_layout(case: LayerCase, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if case.n <= 0:
        return a
    return np.moveaxis(a, -1, -case.n - 1)


def jax_kwargs(case: LayerCase) -> dict[str, Any]:
    """Keyword arguments of the pure function (and of the Flax classes)."""
    kwargs: dict[str, Any] = {
        "input_quantization": jax_quantization(case.input_q),
        "gradient_cancellation_threshold": case.threshold,
    }
    if case.n >= 0:
        kwargs["weight_quantization"] = jax_quantization(case.weight_q)
        kwargs["precision"] = HIGHEST
    if case.n > 0:
        kwargs.update(
            strides=case.stride,
            padding=case.padding,
            kernel_dilation=case.dilation,
            feature_group_count=case.groups,
            pad_value=case.pad_value,
        )
    return kwargs


def _forward_backward(f: Any) -> Any:
    """``(params, x, g) -> (f(params, x), params cotangent, x cotangent)``, one jit."""

    @jax.jit
    def run(params: Any, x: jax.Array, g: jax.Array) -> tuple:
        y, vjp = jax.vjp(f, params, x)
        return (y, *vjp(g))

    return run


def _grads_to_torch(case: LayerCase, x_grad: Any, params_grad: dict) -> dict[str, np.ndarray]:
    result = {"x_grad": from_flax_layout(case, x_grad)}
    if case.n >= 0:
        weights = linen_to_torch({"params": params_grad})
        result["weight_grad"] = weights["weight"].numpy()
        if case.bias:
            result["bias_grad"] = weights["bias"].numpy()
        if "scale" in weights:
            result["scale_grad"] = weights["scale"].numpy()
    return result


def _flax_inputs(case: LayerCase, arrays: dict, device: Any = None) -> tuple[jax.Array, ...]:
    x = np.ascontiguousarray(to_flax_layout(case, arrays["x"]))
    g = np.ascontiguousarray(to_flax_layout(case, arrays["g"]))
    return jax.device_put((x, g), device)


def run_jax(
    case: LayerCase, torch_module: torch.nn.Module, arrays: dict, device: Any = None
) -> dict[str, np.ndarray]:
    """Output and gradients of the pure bitorch_jax function, under ``jax.jit``."""
    params = torch_to_linen(torch_module).get("params", {})
    x, g = _flax_inputs(case, arrays, device)
    if device is not None:
        params = jax.device_put(params, device)
    kwargs = jax_kwargs(case)
    if case.n == -1:

        def f(params: dict, x: jax.Array) -> jax.Array:
            return q_activation(
                x, kwargs["input_quantization"], kwargs["gradient_cancellation_threshold"]
            )
    else:
        layer_fn = functools.partial(q_linear if case.n == 0 else q_conv, **kwargs)

        def f(params: dict, x: jax.Array) -> jax.Array:
            return layer_fn(x, params["kernel"], params.get("bias"), scale=params.get("scale"))

    y, params_grad, x_grad = _forward_backward(f)(params, x, g)
    return {"y": from_flax_layout(case, y), **_grads_to_torch(case, x_grad, params_grad)}


def _zeros_like_init(key: Any, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jnp.zeros(shape, dtype)


def linen_module(case: LayerCase, dtype: str) -> Any:
    """The linen class of ``case`` (``QDense``/``QConv``/``QActivation``)."""
    kwargs = jax_kwargs(case)
    if case.n == -1:
        return qlinen.QActivation(
            kwargs["input_quantization"],
            gradient_cancellation_threshold=kwargs["gradient_cancellation_threshold"],
        )
    # linen checks given parameters against the initialiser's shape (``eval_shape``):
    # a zeros initialiser traces in no time, lecun_normal's tracing costs ~40 ms a layer
    common = {"use_bias": case.bias, "param_dtype": dtype, "kernel_init": _zeros_like_init,
              "bias_init": _zeros_like_init, **_scale_kwargs(case), **kwargs}  # fmt: skip
    if case.n == 0:
        return qlinen.QDense(case.out_features, **common)
    return qlinen.QConv(case.out_features, case.kernel_size, **common)


def nnx_module(case: LayerCase, dtype: str) -> Any:
    """The NNX class of ``case`` (``QLinear``/``QConv``/``QActivation``), zero-initialised
    (the weights are written by :func:`bitorch_jax.convert.torch_to_nnx`)."""
    kwargs = jax_kwargs(case)
    if case.n == -1:
        return qnnx.QActivation(
            kwargs["input_quantization"],
            gradient_cancellation_threshold=kwargs["gradient_cancellation_threshold"],
        )
    common = {
        "use_bias": case.bias,
        "param_dtype": dtype,
        "kernel_init": _zeros,
        "bias_init": _zeros,
        "rngs": nnx.Rngs(0),
        **_scale_kwargs(case),
        **kwargs,
    }
    if case.n == 0:
        return qnnx.QLinear(case.in_features, case.out_features, **common)
    return qnnx.QConv(case.in_features, case.out_features, case.kernel_size, **common)


def _same_arrays(a: Any, b: Any) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    return all(
        np.asarray(u).dtype == np.asarray(v).dtype and np.array_equal(u, v, equal_nan=True)
        for u, v in zip(la, lb, strict=True)
    )


def run_flax(
    case: LayerCase,
    torch_module: torch.nn.Module,
    arrays: dict,
    dtype: str,
    device: Any = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{"linen": results, "nnx": results}``: both classes with converted weights.

    linen gets :func:`~bitorch_jax.convert.torch_to_linen`'s variables, NNX its own
    variables written by :func:`~bitorch_jax.convert.torch_to_nnx`. When the two
    conversions agree bit for bit (checked here), both classes run on that one parameter
    tree under one ``jax.jit``, forward and VJP, so XLA compiles their shared math once;
    otherwise each runs on its own parameters and ``"nnx"`` gets a ``"converted"`` entry
    (both trees) that :func:`compare_layer` reports element by element. Call inside
    :func:`parity_tests.backends.jax_x64` for float64.
    """
    linen = linen_module(case, dtype)
    nnx_layer = nnx_module(case, dtype)
    params = torch_to_linen(torch_module).get("params", {})
    torch_to_nnx(torch_module, nnx_layer)
    graphdef, state = nnx.split(nnx_layer)
    nnx_params = nnx.to_pure_dict(state)
    differ = not _same_arrays(params, nnx_params)

    def linen_f(p: dict, x: jax.Array) -> jax.Array:
        return linen.apply({"params": p} if p else {}, x)

    def nnx_f(p: dict, x: jax.Array) -> jax.Array:
        s = jax.tree_util.tree_map(lambda v: v, state)
        nnx.replace_by_pure_dict(s, p)
        return nnx.merge(graphdef, s)(x)

    def both(p: dict, q: dict, x: jax.Array, g: jax.Array) -> tuple:
        out = []
        for f, weights in ((linen_f, p), (nnx_f, q)):
            y, vjp = jax.vjp(f, weights, x)
            out.append((y, *vjp(g)))
        return tuple(out)

    x, g = _flax_inputs(case, arrays, device)
    if device is not None:
        params, nnx_params = jax.device_put((params, nnx_params), device)
    if differ:
        runs = jax.jit(both)(params, nnx_params, x, g)
    else:  # one parameter argument: XLA sees (and compiles) the shared math once
        runs = jax.jit(lambda p, x, g: both(p, p, x, g))(params, x, g)
    results = {}
    for name, (y, params_grad, x_grad) in zip(("linen", "nnx"), runs, strict=True):
        results[name] = {
            "y": from_flax_layout(case, y),
            **_grads_to_torch(case, x_grad, params_grad),
        }
    if differ:
        results["nnx"]["converted"] = (
            jax.tree_util.tree_map(np.asarray, params),
            jax.tree_util.tree_map(np.asarray, nnx_params),
        )
    return results


def run_linen(case: LayerCase, torch_module: torch.nn.Module, arrays: dict) -> dict:
    """The linen class alone (float32), as the layer tests use it."""
    return run_flax(case, torch_module, arrays, "float32")["linen"]


def run_nnx(case: LayerCase, torch_module: torch.nn.Module, arrays: dict) -> dict:
    """The NNX class alone (float32), as the layer tests use it."""
    return run_flax(case, torch_module, arrays, "float32")["nnx"]


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class LayerElement(Element):
    """One element of a layer array the two sides disagree on; ``kind`` names the array
    (``output``, ``input grad``, ...), ``input`` is ``x`` there (input grads only, else
    NaN). ``side`` is set for a gradient-cancellation violation of one side alone."""

    side: str | None = None

    def describe(self, left: str = "torch", right: str = "jax") -> str:
        where = "[" + ", ".join(str(i) for i in self.index) + "]"
        text = f"{self.kind} at {where}:"
        if not np.isnan(self.input):
            text += f" input={self.input!r},"
        if self.side is not None:
            return f"{text} {self.side}={self.right!r}, must be exactly 0 ({self.reason})"
        text += f" {left}={self.left!r}, {right}={self.right!r}"
        diff = abs(self.left - self.right)
        if np.isfinite(diff):
            text += f", |diff|={diff:.3g}"
        if self.allowed is not None:
            text += f", allowed {self.allowed:.3g}"
        if self.reason:
            text += f" ({self.reason})"
        return text


def _element(
    kind: str,
    index: tuple,
    x: np.ndarray | None,
    a: Any,
    b: Any,
    allowed: float,
    reason: str,
    side: str | None = None,
) -> LayerElement:
    return LayerElement(
        kind=kind,
        sample=0,
        index=tuple(int(i) for i in index),
        input=float(x[index]) if x is not None else float("nan"),
        cotangent=float("nan"),
        left=float(a),
        right=float(b),
        allowed=float(allowed),
        reason=reason,
        side=side,
    )


def _fail(result: ParityResult, element: LayerElement) -> None:
    result.failures += 1
    if len(result.failure_list) < MAX_LISTED:
        result.failure_list.append(element)


def _compare_converted(result: ParityResult, converted: tuple[dict, dict]) -> None:
    """torch_to_linen's and torch_to_nnx's parameters (Flax layout) must be bit-equal."""
    linen, nnx_params = converted
    for name in sorted(set(linen) | set(nnx_params)):
        if name not in linen or name not in nnx_params:
            result.problems.append(f"converted {name}: only one of linen/nnx has it")
            continue
        a, b = np.atleast_1d(linen[name]), np.atleast_1d(nnx_params[name])
        if a.shape != b.shape or a.dtype != b.dtype:
            result.problems.append(
                f"converted {name}: linen {a.dtype}{list(a.shape)}, nnx {b.dtype}{list(b.shape)}"
            )
            continue
        reason = "torch_to_nnx must write what torch_to_linen returns (Flax layout)"
        nan = (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
        for index in zip(*np.nonzero(~((a == b) | nan)), strict=True):
            _fail(result, _element(f"converted {name}", index, None, a[index], b[index], 0.0,
                                   reason))  # fmt: skip


def compare_layer(
    case: LayerCase,
    result: ParityResult,
    left: dict[str, Any],
    right: dict[str, Any],
    x: np.ndarray,
    *,
    exact_forward: bool | None = None,
) -> None:
    """Compare ``left`` (torch, or a CPU run) with ``right`` into ``result``, array by
    array: bit-equal outputs when ``exact_forward`` (default :attr:`LayerCase.exact_forward`),
    else ``layer_tolerance(dtype)``; equal NaN positions. An array of another shape or
    dtype is a problem of the row (not compared)."""
    tol = layer_tolerance(result.dtype)
    exact_forward = case.exact_forward if exact_forward is None else exact_forward
    if "converted" in right:
        _compare_converted(result, right["converted"])
    for key, label in ARRAY_NAMES.items():
        if key not in left and key not in right:
            continue
        if key not in left or key not in right:
            result.problems.append(f"{label}: only one side has it")
            continue
        a, b = np.asarray(left[key]), np.asarray(right[key])
        if a.shape != b.shape or a.dtype != b.dtype:
            result.problems.append(
                f"{label}: {result.left} {a.dtype}{list(a.shape)}, "
                f"{result.right} {b.dtype}{list(b.shape)}"
            )
            continue
        result.elements += a.size
        xs = x if key == "x_grad" and x is not None and x.shape == a.shape else None
        if a.ndim == 0:  # a scalar (Pact's alpha): one element, index [0]
            a, b = a.reshape(1), b.reshape(1)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        for index in zip(*np.nonzero(nan_a != nan_b), strict=True):
            _fail(result, _element(f"{label} NaN", index, xs, a[index], b[index], 0.0,
                                   "NaN positions must match"))  # fmt: skip
        both = ~(nan_a | nan_b)
        equal = (a == b) & both
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(both & ~equal, np.abs(a.astype(np.float64) - b), 0.0)
        exact = key == "y" and exact_forward
        if exact:
            allowed = np.zeros(a.shape)
            reason = "1-bit quantizers: exact sums, bit-equal"
        else:
            allowed = tol.atol + tol.rtol * np.abs(b.astype(np.float64))
            reason = f"layer_tolerance({result.dtype}): rtol={tol.rtol:g}, atol={tol.atol:g}"
        bad = both & ~equal & ~(diff <= allowed)  # inf - inf is NaN: bad unless equal
        finite = diff[np.isfinite(diff)]
        largest = float(finite.max()) if finite.size else 0.0
        if key == "y":
            result.max_forward_diff = max(result.max_forward_diff, largest)
        else:
            result.max_grad_diff = max(result.max_grad_diff, largest)
        if not exact:
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(both & ~equal, diff / allowed, 0.0)
            share = share[np.isfinite(share)]
            if share.size:
                result.grad_tolerance_used = max(result.grad_tolerance_used, float(share.max()))
        for index in zip(*np.nonzero(bad), strict=True):
            _fail(result, _element(label, index, xs, a[index], b[index], allowed[index], reason))


def check_cancelled(
    case: LayerCase, result: ParityResult, x: np.ndarray, runs: dict[str, dict]
) -> None:
    """Gradient cancellation: where ``|x| > threshold > 0`` each run's input gradient
    is exactly 0; the input must have such elements, and torch's input gradient must
    not be all zero (then the comparison would check nothing)."""
    if case.threshold > 0:
        cancelled = np.abs(x) > case.threshold
        if not cancelled.any():
            result.problems.append(f"no input past the threshold {case.threshold}")
        reason = f"|x| > threshold {case.threshold}: gradient cancellation"
        for name, run in runs.items():
            grad = np.asarray(run["x_grad"])
            if grad.shape != x.shape:
                continue  # a problem of the row already
            for index in zip(*np.nonzero(cancelled & (grad != 0)), strict=True):
                element = _element("input grad", index, x, 0.0, grad[index], 0.0, reason, name)
                _fail(result, element)
    for name, run in runs.items():
        if name.startswith("torch") and not np.any(np.asarray(run["x_grad"]) != 0):
            result.problems.append(f"{name} input grad is all zero: the case checks nothing")


# ----------------------------------------------------------------------------- rows


@contextmanager
def _torch_gpu_exact() -> Iterator[None]:
    """TF32 off in torch (as the GPU layer test does); restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _device_runs(case: Any, dtype: str, arrays: dict, device: str) -> dict[str, dict]:
    """``{"torch": ..., "linen": ..., "nnx": ...}`` on ``device`` (``cpu``/``gpu``)."""
    extra = isinstance(case, ExtraLayerCase)
    with _torch_gpu_exact():
        torch_run = run_torch_extra if extra else run_torch
        layer, want = torch_run(case, arrays, dtype, backends._torch_device(device))
    with backends.jax_x64(dtype):
        flax_run = run_flax_extra if extra else run_flax
        flax = flax_run(case, layer, arrays, dtype, backends._jax_device(device))
    return {"torch": want, **flax}


def layer_rows(
    case: LayerCase, dtype: str, devices: Sequence[str], seed: int = 0
) -> list[ParityResult]:
    """The rows of one case and dtype on ``devices`` (present ones only).

    Per device: torch vs linen and torch vs NNX (params ``linen``/``nnx``). With a GPU
    also each framework's CPU vs its GPU result (``torch cpu/gpu``, ``jax cpu/gpu``);
    every GPU comparison allows the tolerance for outputs too (GPU convolution
    algorithms such as Winograd round even integer-valued sums). A framework that raises
    gives ``ERROR`` rows with its message.
    """
    extra = isinstance(case, ExtraLayerCase)
    arrays = make_extra_arrays(case, dtype, seed) if extra else make_arrays(case, dtype, seed)
    need = sorted(set(devices) | ({"cpu"} if "gpu" in devices else set()))
    runs: dict[str, dict[str, dict]] = {}
    errors: dict[str, str] = {}
    for device in need:
        try:
            runs[device] = _device_runs(case, dtype, arrays, device)
        except Exception as exc:  # noqa: BLE001 - reported as an ERROR row, not hidden
            errors[device] = f"{type(exc).__name__}: {exc}"
    # (device label, params label, left framework:device, right framework:device)
    pairs = [(d, flax, f"torch:{d}", f"{flax}:{d}") for d in devices for flax in ("linen", "nnx")]
    if "gpu" in devices:
        pairs += [("torch cpu/gpu", "torch", "torch:cpu", "torch:gpu")]
        pairs += [("jax cpu/gpu", f, f"{f}:cpu", f"{f}:gpu") for f in ("linen", "nnx")]
    rows = []
    for label, params, left, right in pairs:
        (fw_left, dev_left), (fw_right, dev_right) = left.split(":"), right.split(":")
        same = dev_left == dev_right
        result = ParityResult(
            case.id,
            params,
            dtype,
            label,
            left=fw_left if same else left,
            right=fw_right if same else right,
            kind="layer",
        )
        failed = [errors[d] for d in (dev_left, dev_right) if d in errors]
        if failed:
            result.error = failed[0]
        else:
            a, b = runs[dev_left][fw_left], runs[dev_right][fw_right]
            try:
                compare_layer(case, result, a, b, arrays.get("x"),
                              exact_forward=None if label == "cpu" else False)  # fmt: skip
                if extra:
                    check_gradients_flow(result, {result.left: a, result.right: b})
                else:
                    check_cancelled(case, result, arrays["x"], {result.left: a, result.right: b})
            except Exception as exc:  # noqa: BLE001
                result.error = f"{type(exc).__name__}: {exc}"
        rows.append(result)
    return rows


def run_layer_cases(
    cases: Sequence[LayerCase],
    *,
    dtypes: Iterable[str] = LAYER_DTYPES,
    devices: Sequence[str] = ("cpu",),
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> ParityReport:
    """Every case x dtype (float32/float64 of ``dtypes``) on ``devices`` (resolved: present
    ones only); the layer part of ``python -m parity_tests``."""
    names = [d for d in dtypes if d in LAYER_DTYPES]
    report = ParityReport()
    total = len(cases) * len(names)
    done = 0
    for case in cases:
        for dtype in names:
            if progress is not None:
                progress(done, total, f"{case.id} {dtype}")
            report.results += layer_rows(case, dtype, devices, seed)
            done += 1
    if progress is not None:
        progress(total, total, "done")
    return report


# ----------------------------------------------------------------------------- 0.4.1's other layers


@dataclass(frozen=True)
class ExtraLayerCase:
    """One configuration of bitorch 0.4.1's other layers (``layer`` is the torch class
    name in :mod:`bitorch.layers`, ``kwargs`` its constructor arguments besides the
    dtype). ``shape`` is the input's (a float input or the indices); ``offsets`` the
    bags' starts (1-d indices); ``psw``: with ``per_sample_weights``; ``alpha``: Pact's
    clip, planted in the input too. ``exact``: the output must be bit-equal (elementwise
    exact math, sums of +-1, or a gather), else within the layer tolerance."""

    id: str
    layer: str
    kwargs: dict = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    offsets: tuple[int, ...] | None = None
    psw: bool = False
    alpha: float = 2.5
    exact: bool = True

    @property
    def exact_forward(self) -> bool:
        return self.exact

    @property
    def threshold(self) -> float:
        return 0.0  # no gradient cancellation in these layers

    @property
    def description(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        text = f"{self.layer}({args}) on input {self.shape}"
        if self.offsets is not None:
            text += f", offsets {list(self.offsets)}"
        return text + (", per_sample_weights" if self.psw else "")

    @property
    def is_embedding(self) -> bool:
        return "Embedding" in self.layer

    @property
    def num_embeddings(self) -> int:
        return int(self.kwargs.get("num_embeddings", 0))


# Small inputs; each case puts the layer's own corner cases in reach: an index repeated
# and the padding index (no gradient / zero row / left out of the mean), an empty bag,
# include_last_offset, ties of +-1 rows under "max" (the first one takes the gradient),
# x == alpha (gradient to both x and alpha), NaN and +-inf, a crop by a negative pad.
# fmt: off
EXTRA_CASES: list[ExtraLayerCase] = [
    ExtraLayerCase("pad-crop-padvalue0.5", "PadModule",
                   {"padding_left": 1, "padding_right": 2, "padding_top": 0,
                    "padding_bottom": -1, "padding_value": 0.5}, shape=(2, 3, 4, 5)),
    ExtraLayerCase("pact-3bit", "Pact", {"bits": 3}, shape=(2, 3, 7), alpha=2.5),
    ExtraLayerCase("qembedding-padidx", "QEmbedding",
                   {"num_embeddings": 9, "embedding_dim": 4, "padding_idx": 2}, shape=(3, 5)),
    ExtraLayerCase("qembeddingbag-sum-psw-lastoffset", "QEmbeddingBag",
                   {"num_embeddings": 8, "embedding_dim": 3, "mode": "sum",
                    "include_last_offset": True, "output_quantization": "identity"},
                   shape=(10,), offsets=(0, 3, 3, 7, 10), psw=True, exact=False),
    ExtraLayerCase("qembeddingbag-max-2d-padidx", "QEmbeddingBag",
                   {"num_embeddings": 8, "embedding_dim": 5, "mode": "max", "padding_idx": 0,
                    "output_quantization": "identity"}, shape=(4, 3)),
    ExtraLayerCase("qembeddingbag-mean-padidx-weightdorefa2", "QEmbeddingBag",
                   {"num_embeddings": 7, "embedding_dim": 3, "mode": "mean", "padding_idx": 6,
                    "weight_quantization": ("weightdorefa", {"bits": 2}),
                    "output_quantization": "identity"},
                   shape=(9,), offsets=(0, 4, 4, 6), exact=False),
    ExtraLayerCase("bembedding-signbool-padidx", "BEmbedding",
                   {"num_embeddings": 7, "embedding_dim": 3, "padding_idx": 4,
                    "sign_bool": True}, shape=(2, 4)),
    ExtraLayerCase("bembeddingbag-mean-padidx", "BEmbeddingBag",
                   {"num_embeddings": 6, "embedding_dim": 3, "padding_idx": 1, "mode": "mean"},
                   shape=(8,), offsets=(0, 3, 5)),
    ExtraLayerCase("qconv2d-noact-padvalue0.5", "QConv2d_NoAct",
                   {"in_channels": 2, "out_channels": 3, "kernel_size": (2, 3), "padding": 1,
                    "pad_value": 0.5}, shape=(2, 2, 4, 5), exact=False),
]
# fmt: on
# ----- ReActNet's RSign / RPReLU (torch channels on dim 1, Flax last; see the end of the file)
# z = x + shift planted per channel at +-threshold, 0, just past the threshold; RSign also
# sees +-inf and NaN; RPReLU slopes include negative ones.
# fmt: off
EXTRA_CASES += [
    ExtraLayerCase("rsign-sign-threshold1", "RSign", {"in_channels": 4}, shape=(3, 4, 2, 3)),
    ExtraLayerCase("rsign-approxsign-threshold0.5-2d", "RSign",
                   {"in_channels": 5, "activation": "approxsign",
                    "gradient_cancellation_threshold": 0.5}, shape=(7, 5)),
    ExtraLayerCase("rsign-threshold0-1d", "RSign",
                   {"in_channels": 3, "gradient_cancellation_threshold": 0.0}, shape=(2, 3, 6)),
    ExtraLayerCase("rprelu-4d", "RPReLU", {"num_parameters": 4}, shape=(2, 4, 3, 3)),
    ExtraLayerCase("rprelu-2d", "RPReLU", {"num_parameters": 6}, shape=(8, 6)),
]
# fmt: on
# ----- end of ReActNet's cases
EXTRA_CASE_IDS = [case.id for case in EXTRA_CASES]


def _quantization_arg(key: str, value: Any, make: Callable[[tuple[str, dict]], Any]) -> Any:
    """A case's argument; a quantization given as ``(name, params)`` is built by ``make``."""
    if key.endswith("quantization") and isinstance(value, tuple):
        return make(value)
    return value


def make_extra_arrays(case: ExtraLayerCase, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The case's inputs, parameters and cotangent in torch layout (NumPy, ``dtype``)."""
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    arrays: dict[str, np.ndarray] = {}
    if case.is_embedding:
        n = case.num_embeddings
        indices = rng.integers(0, n, size=case.shape)
        flat = indices.reshape(-1)
        flat[:3] = [1, 1, n - 1]  # a repeated index, the last row
        padding_idx = case.kwargs.get("padding_idx")
        if padding_idx is not None:
            flat[3 : 3 + 2] = padding_idx  # twice
        arrays["indices"] = indices.astype(np.int64)
        if case.offsets is not None:
            arrays["offsets"] = np.asarray(case.offsets, np.int64)
        if case.psw:
            arrays["psw"] = rng.normal(size=case.shape).astype(np_dtype)
        dim = case.kwargs["embedding_dim"]
        if case.layer.startswith("B"):
            weight = rng.random((n, dim)) > 0.5
        else:
            weight = rng.normal(size=(n, dim)).astype(np_dtype)
            weight.reshape(-1)[:2] = [0.0, -0.0]
            if case.kwargs.get("mode") == "max":
                weight[3] = weight[5]  # equal quantized rows: ties for "max"
        arrays["weight"] = weight
    else:
        x = rng.normal(scale=2.0, size=case.shape).astype(np_dtype)
        special = [0.0, -0.0, 0.5, -0.5]
        if case.layer in ("Pact", "PadModule"):  # (a convolution would spread them)
            special += [case.alpha, -case.alpha, np.inf, -np.inf, np.nan, 30.0]
        x.reshape(-1)[: len(special)] = special
        arrays["x"] = x
        if case.layer == "Pact":  # x == alpha (twice) and just below it
            alpha = np_dtype.type(case.alpha)
            x.reshape(-1)[-3:] = [alpha, alpha, np.nextafter(alpha, np_dtype.type(0))]
            arrays["alpha"] = np.asarray(alpha, np_dtype)
        if case.layer.startswith("QConv"):
            k = case.kwargs
            shape = (k["out_channels"], k["in_channels"], *k["kernel_size"])
            w = rng.uniform(-1.5, 1.5, size=shape).astype(np_dtype)
            w.reshape(-1)[:2] = [0.0, -0.0]
            arrays["weight"] = w
        if case.layer in _REACT_PARAMS:
            _react_arrays(case, rng, np_dtype, arrays)
    with torch.no_grad():
        module = extra_torch_layer(case, dtype, arrays)
        y = _torch_extra_forward(case, module, _torch_inputs(arrays, "cpu"))
    arrays["g"] = rng.normal(scale=1.7, size=tuple(y.shape)).astype(np.dtype(str(y.dtype)[6:]))
    return arrays


def extra_torch_layer(case: ExtraLayerCase, dtype: str, arrays: dict) -> torch.nn.Module:
    """The bitorch layer of ``case`` in ``dtype`` with the parameters of ``arrays``."""
    torch_dtype = getattr(torch, dtype)
    cls = getattr(torch_layers, case.layer)
    kwargs = {k: _quantization_arg(k, v, torch_quantization) for k, v in case.kwargs.items()}
    if case.is_embedding or case.layer.startswith("QConv") or case.layer in _REACT_PARAMS:
        kwargs["dtype"] = torch_dtype
    if case.layer == "BEmbeddingBag":
        with pytest_free_warnings():
            layer = cls(**kwargs)
    else:
        layer = cls(**kwargs)
    with torch.no_grad():
        if case.layer == "Pact":
            layer.to(torch_dtype)
            layer.alpha.copy_(torch.from_numpy(arrays["alpha"]))
        elif "weight" in arrays:
            layer.weight.copy_(torch.from_numpy(np.asarray(arrays["weight"])))
        for name in _REACT_PARAMS.get(case.layer, ()):
            getattr(layer, name).copy_(torch.from_numpy(arrays[name]))
    return layer


@contextmanager
def pytest_free_warnings() -> Iterator[None]:
    """BEmbeddingBag warns when built (as bitorch 0.4.1 does); not in the parity table."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _torch_inputs(arrays: dict, device: Any) -> dict[str, torch.Tensor]:
    names = ("x", "indices", "offsets", "psw")
    return {k: torch.tensor(arrays[k], device=device) for k in names if k in arrays}


def _torch_extra_forward(case: ExtraLayerCase, layer: Any, inputs: dict) -> torch.Tensor:
    if case.layer == "QEmbeddingBag":
        return layer(inputs["indices"], inputs.get("offsets"), inputs.get("psw"))
    if case.layer == "BEmbeddingBag":
        return layer(inputs["indices"], inputs["offsets"])
    return layer(inputs["indices"] if case.is_embedding else inputs["x"])


def run_torch_extra(
    case: ExtraLayerCase, arrays: dict, dtype: str, device: Any = "cpu"
) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """Output and gradients of the bitorch layer (torch layout), and the layer (CPU)."""
    layer = extra_torch_layer(case, dtype, arrays)
    on_device = layer.to(device)
    inputs = _torch_inputs(arrays, device)
    for name in ("x", "psw"):
        if name in inputs:
            inputs[name].requires_grad_(True)
    y = _torch_extra_forward(case, on_device, inputs)
    y.backward(torch.from_numpy(arrays["g"]).to(device))
    result = {"y": y}
    if "x" in inputs:
        result["x_grad"] = inputs["x"].grad
    if "psw" in inputs:
        result["psw_grad"] = inputs["psw"].grad
    if case.layer == "Pact":
        result["alpha_grad"] = on_device.alpha.grad
    elif case.layer.startswith("B"):  # the decoded rows' gradient, scattered into the table
        dense = torch.zeros(on_device.weight.shape, dtype=on_device.unique_vectors.dtype,
                            device=device)  # fmt: skip
        dense[on_device.unique] = on_device.unique_vectors.grad
        result["weight_grad"] = dense
    elif case.layer in _REACT_PARAMS:
        result.update({f"{n}_grad": getattr(on_device, n).grad for n in _REACT_PARAMS[case.layer]})
    elif case.layer != "PadModule":
        result["weight_grad"] = on_device.weight.grad
    arrays_out = {k: v.detach().cpu().numpy() for k, v in result.items()}
    return layer.cpu(), arrays_out


def _extra_flax_kwargs(case: ExtraLayerCase, dtype: str) -> dict[str, Any]:
    """The Flax classes' keyword arguments (hyperparameters, dtypes) of ``case``."""
    k = case.kwargs
    if case.layer == "PadModule":
        return dict(k)
    if case.layer == "Pact":
        return {"bits": k["bits"], "param_dtype": dtype}
    if case.layer in _REACT_PARAMS:
        return _react_flax_kwargs(case, dtype)
    if case.layer.startswith("QConv"):
        return {
            "padding": k["padding"],
            "pad_value": k["pad_value"],
            "input_quantization": "identity",  # QConv2d_NoAct: the input is not quantized
            "gradient_cancellation_threshold": 0.0,
            "weight_quantization": jax_quantization(("sign", {})),
            "param_dtype": dtype,
            "precision": HIGHEST,
            "kernel_init": _zeros_like_init,
        }
    out: dict[str, Any] = {
        key: _quantization_arg(key, value, jax_quantization)
        for key, value in k.items()
        if key in ("padding_idx", "mode", "include_last_offset", "weight_quantization",
                   "output_quantization", "sign_bool")
    }  # fmt: skip
    if case.layer.startswith("B"):
        out["dtype"] = dtype
    else:
        out["param_dtype"] = dtype
    return out


_FLAX_NAMES = {
    "PadModule": "PadModule",
    "Pact": "Pact",
    "QEmbedding": "QEmbed",
    "QEmbeddingBag": "QEmbedBag",
    "BEmbedding": "BEmbed",
    "BEmbeddingBag": "BEmbedBag",
    "QConv2d_NoAct": "QConv",
    "RSign": "RSign",
    "RPReLU": "RPReLU",
}


def extra_linen_module(case: ExtraLayerCase, dtype: str) -> Any:
    cls = getattr(qlinen, _FLAX_NAMES[case.layer])
    kwargs = _extra_flax_kwargs(case, dtype)
    if case.is_embedding:
        return cls(case.num_embeddings, case.kwargs["embedding_dim"], **kwargs)
    if case.layer.startswith("QConv"):
        return cls(case.kwargs["out_channels"], case.kwargs["kernel_size"], **kwargs)
    return cls(**kwargs)


def extra_nnx_module(case: ExtraLayerCase, dtype: str) -> Any:
    cls = getattr(qnnx, _FLAX_NAMES[case.layer])
    kwargs = _extra_flax_kwargs(case, dtype)
    if case.is_embedding:
        init = {
            "weight_init" if case.layer.startswith("B") else "embedding_init": _zeros_init_for(case)
        }
        return cls(case.num_embeddings, case.kwargs["embedding_dim"], **kwargs, **init,
                   rngs=nnx.Rngs(0))  # fmt: skip
    if case.layer.startswith("QConv"):
        kwargs["kernel_init"] = _zeros
        k = case.kwargs
        return cls(k["in_channels"], k["out_channels"], k["kernel_size"], **kwargs,
                   rngs=nnx.Rngs(0))  # fmt: skip
    if case.layer in _REACT_PARAMS:
        return cls(case.shape[1], **kwargs)
    return cls(**kwargs)


def _zeros_init_for(case: ExtraLayerCase) -> Callable[..., jax.Array]:
    """An NNX initialiser that costs no computation (the conversion overwrites it)."""
    boolean = case.layer.startswith("B")

    def init(key: Any, shape: Sequence[int], dtype: Any = np.float32) -> jax.Array:
        return jax.device_put(np.zeros(shape, bool if boolean else dtype))

    return init


def _flax_extra_inputs(case: ExtraLayerCase, arrays: dict, device: Any) -> tuple[dict, dict]:
    """``(float inputs to differentiate, integer inputs)`` for JAX (Flax layout)."""
    diff: dict[str, Any] = {}
    ints: dict[str, Any] = {}
    if "x" in arrays:
        diff["x"] = np.ascontiguousarray(_to_channels_last(case, arrays["x"]))
    if "psw" in arrays:
        diff["psw"] = arrays["psw"]
    for name in ("indices", "offsets"):
        if name in arrays:
            ints[name] = np.asarray(arrays[name], np.int32)
    g = np.ascontiguousarray(_to_channels_last(case, arrays["g"]))
    return jax.device_put((diff, ints, g), device)


_CHANNELS_FIRST = ("PadModule", "QConv2d_NoAct", "RSign", "RPReLU")


def _to_channels_last(case: ExtraLayerCase, a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if case.layer in _CHANNELS_FIRST else a


def _from_channels_last(case: ExtraLayerCase, a: Any) -> np.ndarray:
    a = np.asarray(a)
    return np.moveaxis(a, -1, 1) if case.layer in _CHANNELS_FIRST else a


def _flax_extra_call(case: ExtraLayerCase, call: Callable[..., Any], diff: dict, ints: dict) -> Any:
    if case.layer == "QEmbeddingBag":
        return call(ints["indices"], ints.get("offsets"), diff.get("psw"))
    if case.layer == "BEmbeddingBag":
        return call(ints["indices"], ints["offsets"], diff["vectors"])
    if case.layer == "BEmbedding":
        return call(ints["indices"], diff["vectors"])
    return call(ints["indices"] if case.is_embedding else diff["x"])


def run_flax_extra(
    case: ExtraLayerCase, torch_module: torch.nn.Module, arrays: dict, dtype: str,
    device: Any = None,
) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """``{"linen": results, "nnx": results}`` of the Flax classes with the converted
    weights (:mod:`bitorch_jax.convert`), forward and VJP under one ``jax.jit``, results
    in torch layout. As :func:`run_flax`, a conversion into NNX that differs from the
    linen one is reported (``"converted"``)."""
    linen = extra_linen_module(case, dtype)
    nnx_layer = extra_nnx_module(case, dtype)
    variables = torch_to_linen(torch_module)
    torch_to_nnx(torch_module, nnx_layer)
    graphdef, nnx_params, rest = nnx.split(nnx_layer, nnx.Param, ...)
    fixed = {k: v for k, v in variables.items() if k != "params"}  # binary tables
    params = variables.get("params", {})
    pure = nnx.to_pure_dict(nnx_params)
    converted = (
        {**params, **{f"{k}/{n}": v for k, c in fixed.items() for n, v in c.items()}},
        {**pure, **_nnx_fixed(rest)},
    )
    differ = not _same_arrays(*converted)
    diff, ints, g = _flax_extra_inputs(case, arrays, device)
    if case.layer.startswith("B"):  # differentiate the decoded table
        diff["vectors"] = linen.apply({"params": params, **fixed}, method="vectors")
    if device is not None:
        params, pure, fixed = jax.device_put((params, pure, fixed), device)

    def linen_f(p: dict, d: dict) -> jax.Array:
        return _flax_extra_call(case, lambda *a: linen.apply({"params": p, **fixed}, *a), d, ints)

    def nnx_f(p: dict, d: dict) -> jax.Array:
        state = jax.tree_util.tree_map(lambda v: v, nnx_params)
        nnx.replace_by_pure_dict(state, p)
        return _flax_extra_call(case, nnx.merge(graphdef, state, rest), d, ints)

    def both(p: dict, q: dict, d: dict, g: jax.Array) -> tuple:
        out = []
        for f, weights in ((linen_f, p), (nnx_f, q)):
            y, vjp = jax.vjp(f, weights, d)
            out.append((y, *vjp(g)))
        return tuple(out)

    runs = jax.jit(both)(params, pure, diff, g)
    results = {}
    for name, (y, params_grad, inputs_grad) in zip(("linen", "nnx"), runs, strict=True):
        result = {"y": _from_channels_last(case, y)}
        if "x" in inputs_grad:
            result["x_grad"] = _from_channels_last(case, inputs_grad["x"])
        if "psw" in inputs_grad:
            result["psw_grad"] = np.asarray(inputs_grad["psw"])
        if "vectors" in inputs_grad:
            result["weight_grad"] = np.asarray(inputs_grad["vectors"])
        elif params_grad:
            back = linen_to_torch({"params": params_grad})
            if "alpha" in back:
                result["alpha_grad"] = back["alpha"].numpy()
            elif case.layer in _REACT_PARAMS:
                result.update({f"{n}_grad": back[n].numpy() for n in _REACT_PARAMS[case.layer]})
            else:
                result["weight_grad"] = back["weight"].numpy()
        results[name] = result
    if differ:
        results["nnx"]["converted"] = jax.tree_util.tree_map(np.asarray, converted)
    return results


def _nnx_fixed(rest: Any) -> dict[str, Any]:
    """The non-``Param`` variables (binary tables) as ``{"binary_weights/weight": ...}``."""
    return {f"binary_weights/{k}": v for k, v in nnx.to_pure_dict(rest).items()}


def check_gradients_flow(result: ParityResult, runs: dict[str, dict]) -> None:
    """Each gradient torch computed is not all zero (else the comparison checks nothing)."""
    for name, run in runs.items():
        if not name.startswith("torch"):
            continue
        for key, value in run.items():
            if key != "y" and not np.any(np.nan_to_num(np.asarray(value)) != 0):
                result.problems.append(f"{name} {ARRAY_NAMES[key]} is all zero: checks nothing")


# ----------------------------------------------------------------------------- ReActNet

#: The per-channel parameters of ReActNet's layers, by torch class name (same names in Flax).
_REACT_PARAMS: dict[str, tuple[str, ...]] = {
    "RSign": ("bias",),
    "RPReLU": ("bias_in", "slope", "bias_out"),
}


def _react_arrays(
    case: ExtraLayerCase, rng: np.random.Generator, np_dtype: np.dtype, arrays: dict
) -> None:
    """Parameters of an RSign/RPReLU case, and ``x`` planted so that ``z = x + shift``
    hits the corner values in every channel (exactly: the shifts are dyadic)."""
    x = arrays["x"]
    channels = x.shape[1]
    for name in _REACT_PARAMS[case.layer]:
        if name == "slope":  # negative slopes too
            value = rng.uniform(-0.5, 1.0, size=channels)
        elif name == "bias_out":
            value = rng.normal(size=channels)
        else:  # the shift before the sign / the PReLU
            value = np.resize([0.5, -0.25, 0.0, -1.0, 0.75, 0.125], channels)
        arrays[name] = np.asarray(value, np_dtype)
    t = np_dtype.type(case.kwargs.get("gradient_cancellation_threshold", 1.0))
    if case.layer == "RPReLU":
        t = np_dtype.type(0.5)
    zs = np.array([t, -t, 0.0, np.nextafter(t, np_dtype.type(np.inf)), -3.0], np_dtype)
    shift = arrays["bias" if case.layer == "RSign" else "bias_in"]
    positions = np.moveaxis(np.arange(x.size).reshape(x.shape), 1, 0)
    flat = x.reshape(-1)
    for c in range(channels):
        where = positions[c].reshape(-1)[1:][-len(zs) :]  # the first element keeps its value
        flat[where] = zs[-len(where) :] - shift[c]
    if case.layer == "RSign":
        flat[4:7] = [np.inf, -np.inf, np.nan]


def _react_flax_kwargs(case: ExtraLayerCase, dtype: str) -> dict[str, Any]:
    """The linen/NNX keyword arguments of an RSign/RPReLU case (torch's ``None``
    defaults are the layer config's: ``"sign"`` and 1.0)."""
    kwargs: dict[str, Any] = {"param_dtype": dtype}
    if case.layer == "RSign":
        kwargs["activation"] = case.kwargs.get("activation") or "sign"
        threshold = case.kwargs.get("gradient_cancellation_threshold")
        kwargs["gradient_cancellation_threshold"] = 1.0 if threshold is None else threshold
    return kwargs
