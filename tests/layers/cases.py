"""The case table of the layer tests and the code that runs one case in each framework.

One :class:`Case` describes a layer (``QLinear``, ``QConv{1,2,3}d`` or ``QActivation``),
its hyperparameters and its input. :func:`make_arrays` draws the input, weights, bias and
a random non-unit cotangent once in NumPy (torch layout), with exact ``0``, ``-0.0``,
``+-1``, the threshold itself, values just past it, ``+-3`` and ``+-inf`` planted in the
input. :func:`run_torch` and :func:`run_jax` return the output and every gradient in torch
layout, so the two are compared element for element. The JAX side gets its weights
through :mod:`bitorch_jax.convert`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

import bitorch.quantizations as tq
import bitorch_jax.quantizations as jq
from bitorch.layers import QActivation, QConv1d, QConv2d, QConv3d, QLinear
from bitorch_jax.convert import linen_to_torch, torch_to_linen, torch_to_nnx
from bitorch_jax.layers import linen as qlinen
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.layers import q_activation, q_conv, q_linear

HIGHEST = jax.lax.Precision.HIGHEST
_ZEROS = nnx.initializers.zeros_init()
_TORCH_CONV = {1: QConv1d, 2: QConv2d, 3: QConv3d}
# quantizers whose outputs are small dyadic numbers: layer outputs are then exact sums
_DYADIC = {"sign", "approxsign", "swishsign", "steheaviside", "identity"}


@dataclass(frozen=True)
class Case:
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
        """Outputs are sums of dyadic values (+ one bias addition): equal bit for bit."""
        return all(
            name in _DYADIC or params.get("bits") == 1
            for name, params in (self.input_q, self.weight_q)
        )

    def input_shape(self) -> tuple[int, ...]:
        if self.n == -1:
            return (*self.batch, 3, 5)
        if self.n == 0:
            return (*self.batch, self.in_features)
        return (*self.batch, self.in_features, *self.spatial)


# fmt: off
CASES: list[Case] = [
    Case("linear", 0, 7, 5, batch=(6,), bias=True),
    Case("linear-nobias-threshold0", 0, 7, 5, batch=(6,), threshold=0.0),
    Case("linear-unbatched", 0, 9, 3, batch=(), bias=True),
    Case("linear-2-batch-dims", 0, 5, 4, batch=(2, 3), bias=True, threshold=0.5),
    Case(
        "linear-approxsign-weightdorefa2",
        0, 8, 5, batch=(4,), bias=True, threshold=0.5,
        input_q=("approxsign", {}), weight_q=("weightdorefa", {"bits": 2}),
    ),
    Case(
        "linear-inputdorefa2-steheaviside",
        0, 6, 4, batch=(5,),
        input_q=("inputdorefa", {"bits": 2}), weight_q=("steheaviside", {}),
    ),
    Case("linear-swishsign3", 0, 6, 4, batch=(5,), input_q=("swishsign", {"beta": 3.0})),
    Case("conv1d-pad1", 1, 3, 5, (3,), (9,), padding=1),
    Case("conv1d-stride2-dil2-pad2-bias", 1, 4, 6, (3,), (11,), stride=2, padding=2,
         dilation=2, bias=True),
    Case("conv1d-groups2-same-even-kernel", 1, 4, 6, (4,), (8,), padding="same", groups=2),
    Case("conv1d-unbatched-valid", 1, 3, 2, (2,), (6,), batch=(), padding="valid", bias=True),
    Case("conv2d-pad1", 2, 3, 4, (3, 3), (6, 5), padding=1),
    Case(
        "conv2d-rect-stride-dil-groups-bias",
        2, 4, 6, (2, 3), (7, 8),
        stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=True,
    ),
    Case("conv2d-same-dil2", 2, 2, 3, (3, 3), (6, 6), padding="same", dilation=2),
    Case("conv2d-padvalue0-threshold0", 2, 2, 3, (3, 3), (5, 5), padding=1, pad_value=0.0,
         threshold=0.0),
    Case(
        "conv2d-padvalue+1-approxsign-weightdorefa2",
        2, 3, 4, (3, 3), (5, 4), padding=2, pad_value=1.0, threshold=0.7,
        input_q=("approxsign", {}), weight_q=("weightdorefa", {"bits": 2}),
    ),
    Case("conv2d-depthwise", 2, 4, 8, (3, 3), (5, 5), padding=1, groups=4, bias=True),
    Case("conv2d-unbatched", 2, 2, 3, (2, 2), (4, 5), batch=(), padding=1),
    Case("conv3d-pad1", 3, 2, 3, (2, 2, 2), (4, 5, 3), padding=1),
    Case("conv3d-stride2-groups2-bias", 3, 4, 4, (3, 3, 3), (5, 5, 6), stride=2, padding=1,
         groups=2, bias=True),
    Case("activation-sign", -1, threshold=1.0),
    Case("activation-approxsign-threshold0.5", -1, threshold=0.5, input_q=("approxsign", {})),
    Case("activation-steheaviside-threshold0", -1, threshold=0.0, input_q=("steheaviside", {})),
    Case("activation-swishsign5", -1, threshold=1.3, input_q=("swishsign", {"beta": 5.0})),
]
# fmt: on
CASE_IDS = [case.id for case in CASES]


def torch_quantization(spec: tuple[str, dict]) -> tq.Quantization:
    name, params = spec
    return tq.quantization_from_name(name)(**params)


def jax_quantization(spec: tuple[str, dict]) -> jq.Quantization:
    name, params = spec
    return jq.quantization_from_name(name)(**params)


def make_arrays(case: Case, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Input, weight, bias and cotangent (torch layout) in ``dtype``."""
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    x = rng.normal(scale=1.2, size=case.input_shape()).astype(np_dtype)
    t = np_dtype.type(case.threshold)
    special = [0.0, -0.0, 1.0, -1.0, t, -t, np.nextafter(t, np_dtype.type(np.inf)), 3.0, -3.0]
    special += [np.inf, -np.inf, 0.5, -0.5]
    flat = x.reshape(-1)
    flat[: min(len(special), flat.size)] = np.array(special, np_dtype)[: flat.size]
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
        out_shape = tuple(torch_layer(case, dtype)(torch.from_numpy(x)).shape)
    arrays["g"] = rng.normal(scale=1.7, size=out_shape).astype(np_dtype)
    return arrays


def torch_layer(case: Case, dtype: str, arrays: dict | None = None) -> torch.nn.Module:
    """The bitorch layer of ``case`` (weights from ``arrays`` when given)."""
    torch_dtype = getattr(torch, dtype)
    common = {
        "input_quantization": torch_quantization(case.input_q),
        "gradient_cancellation_threshold": case.threshold,
    }
    if case.n == -1:
        return QActivation(
            common["input_quantization"], gradient_cancellation_threshold=case.threshold
        )
    if case.n == 0:
        layer = QLinear(
            case.in_features,
            case.out_features,
            bias=case.bias,
            dtype=torch_dtype,
            weight_quantization=torch_quantization(case.weight_q),
            **common,
        )
    else:
        layer = _TORCH_CONV[case.n](
            case.in_features,
            case.out_features,
            case.kernel_size,
            stride=case.stride,
            padding=case.padding,
            dilation=case.dilation,
            groups=case.groups,
            bias=case.bias,
            pad_value=case.pad_value,
            weight_quantization=torch_quantization(case.weight_q),
            dtype=torch_dtype,
            **common,
        )
    if arrays is not None:
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(arrays["weight"]))
            if case.bias:
                layer.bias.copy_(torch.from_numpy(arrays["bias"]))
    return layer


def run_torch(
    case: Case, arrays: dict[str, np.ndarray], dtype: str, device: Any = "cpu"
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
    result = {k: v.detach().cpu().numpy() for k, v in result.items()}
    return layer.cpu(), result


def to_flax_layout(case: Case, a: np.ndarray) -> np.ndarray:
    """Channels-first (torch) to channels-last (Flax) for convolution inputs/outputs."""
    if case.n <= 0:
        return a
    return np.moveaxis(a, -case.n - 1, -1)


def from_flax_layout(case: Case, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if case.n <= 0:
        return a
    return np.moveaxis(a, -1, -case.n - 1)


def jax_kwargs(case: Case) -> dict[str, Any]:
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


def _grads_to_torch(case: Case, x_grad: Any, params_grad: dict) -> dict[str, np.ndarray]:
    result = {"x_grad": from_flax_layout(case, x_grad)}
    if case.n >= 0:
        weights = linen_to_torch({"params": params_grad})
        result["weight_grad"] = weights["weight"].numpy()
        if case.bias:
            result["bias_grad"] = weights["bias"].numpy()
    return result


def run_jax(
    case: Case, torch_module: torch.nn.Module, arrays: dict, device: Any = None
) -> dict[str, np.ndarray]:
    """Output and gradients of the pure bitorch_jax function, under ``jax.jit``."""
    params = torch_to_linen(torch_module).get("params", {})
    x = jnp.asarray(to_flax_layout(case, arrays["x"]))
    g = jnp.asarray(to_flax_layout(case, arrays["g"]))
    if device is not None:
        x, g, params = jax.device_put((x, g, params), device)
    kwargs = jax_kwargs(case)
    if case.n == -1:

        def f(params: dict, x: jax.Array) -> jax.Array:
            return q_activation(
                x, kwargs["input_quantization"], kwargs["gradient_cancellation_threshold"]
            )
    else:
        layer_fn = functools.partial(q_linear if case.n == 0 else q_conv, **kwargs)

        def f(params: dict, x: jax.Array) -> jax.Array:
            return layer_fn(x, params["kernel"], params.get("bias"))

    y, params_grad, x_grad = _forward_backward(f)(params, x, g)
    return {"y": from_flax_layout(case, y), **_grads_to_torch(case, x_grad, params_grad)}


def run_linen(case: Case, torch_module: torch.nn.Module, arrays: dict) -> dict[str, np.ndarray]:
    """The same through the linen class (``QDense``/``QConv``/``QActivation``)."""
    kwargs = jax_kwargs(case)
    if case.n == -1:
        module = qlinen.QActivation(
            kwargs["input_quantization"],
            gradient_cancellation_threshold=kwargs["gradient_cancellation_threshold"],
        )
    elif case.n == 0:
        module = qlinen.QDense(case.out_features, use_bias=case.bias, **kwargs)
    else:
        module = qlinen.QConv(case.out_features, case.kernel_size, use_bias=case.bias, **kwargs)
    variables = torch_to_linen(torch_module)
    x = jnp.asarray(to_flax_layout(case, arrays["x"]))
    g = jnp.asarray(to_flax_layout(case, arrays["g"]))
    y, variables_grad, x_grad = _forward_backward(module.apply)(variables, x, g)
    grads = _grads_to_torch(case, x_grad, variables_grad.get("params", {}))
    return {"y": from_flax_layout(case, y), **grads}


def run_nnx(case: Case, torch_module: torch.nn.Module, arrays: dict) -> dict[str, np.ndarray]:
    """The same through the NNX class (``QLinear``/``QConv``/``QActivation``)."""
    kwargs = jax_kwargs(case)
    rngs = nnx.Rngs(0)
    if case.n == -1:
        module = qnnx.QActivation(
            kwargs["input_quantization"],
            gradient_cancellation_threshold=kwargs["gradient_cancellation_threshold"],
        )
    elif case.n == 0:
        module = qnnx.QLinear(
            case.in_features,
            case.out_features,
            use_bias=case.bias,
            kernel_init=_ZEROS,  # overwritten below; lecun_normal's first jit costs seconds
            rngs=rngs,
            **kwargs,
        )
    else:
        module = qnnx.QConv(
            case.in_features,
            case.out_features,
            case.kernel_size,
            use_bias=case.bias,
            kernel_init=_ZEROS,
            rngs=rngs,
            **kwargs,
        )
    torch_to_nnx(torch_module, module)
    graphdef, state = nnx.split(module)

    def f(state: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x)

    x = jnp.asarray(to_flax_layout(case, arrays["x"]))
    g = jnp.asarray(to_flax_layout(case, arrays["g"]))
    y, state_grad, x_grad = _forward_backward(f)(state, x, g)
    grads = _grads_to_torch(case, x_grad, nnx.to_pure_dict(state_grad))
    return {"y": from_flax_layout(case, y), **grads}
