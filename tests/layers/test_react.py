"""ReActNet's RSign and RPReLU in torch (bitorch.layers) and across frameworks: the torch
layers against a NumPy oracle of the formulas (channels on dimension 1), torch vs linen
and NNX for the ReActNet cases of :data:`parity_tests.layers.EXTRA_CASES` (outputs, input
and parameter gradients, float32 and float64), bit-exact conversion both ways, the torch
summary's counts, the errors, and planted bugs the parity rows must catch."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn

import bitorch
import bitorch_jax.layers.linen as ql
import bitorch_jax.layers.nnx as qn
from bitorch.layers import RPReLU, RSign
from bitorch_common.tolerances import layer_tolerance
from bitorch_jax.convert import linen_to_torch, nnx_to_torch, torch_to_linen, torch_to_nnx
from bitorch_jax.layers import rsign
from parity_tests.backends import jax_x64
from parity_tests.layers import (
    EXTRA_CASES,
    layer_rows,
    make_extra_arrays,
    run_flax_extra,
    run_torch_extra,
)

REACT_CASES = [c for c in EXTRA_CASES if c.layer in ("RSign", "RPReLU")]
REACT_IDS = [c.id for c in REACT_CASES]
DTYPES = ["float32", "float64"]

# (layer, input shape (channels on dim 1), threshold)
ORACLE_CASES = [
    ("RSign", (2, 3, 4, 2), 1.0),
    ("RSign", (7, 4), 0.5),
    ("RSign", (2, 3, 5), 0.0),
    ("RPReLU", (2, 3, 4, 2), None),
    ("RPReLU", (7, 4), None),
]


def _arrays(shape: tuple[int, ...], threshold: float | None, dtype: str) -> dict:
    rng = np.random.default_rng(1)
    np_dtype = np.dtype(dtype)
    c = shape[1]
    x = rng.normal(scale=1.5, size=shape).astype(np_dtype)
    shift = np.resize(np.array([0.5, -0.25, 0.0, -1.0], np_dtype), c)
    t = np_dtype.type(0.5 if threshold is None else threshold)
    past = max(np.nextafter(t, np_dtype.type(np.inf)), np.finfo(np_dtype).tiny)
    zs = np.array([t, -t, 0.0, past, -3.0], np_dtype)
    moved = np.moveaxis(x, 1, -1).copy()  # channels last, contiguous
    moved.reshape(-1, c)[-len(zs) :] = zs[:, None] - shift  # every channel sees every z
    x = np.ascontiguousarray(np.moveaxis(moved, -1, 1))
    return {
        "x": x,
        "shift": shift,
        "slope": rng.uniform(-0.5, 1.0, size=c).astype(np_dtype),
        "bias_out": rng.normal(size=c).astype(np_dtype),
        "g": rng.normal(size=shape).astype(np_dtype),
    }


def _per_channel(a: np.ndarray) -> np.ndarray:
    """Sum over every dimension but 1."""
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1]).sum(0)


def _view(p: np.ndarray, ndim: int) -> np.ndarray:
    return p.reshape(1, -1, *([1] * (ndim - 2)))


def _oracle(layer: str, a: dict, threshold: float | None) -> dict[str, np.ndarray]:
    x, g = a["x"], a["g"]
    z = x + _view(a["shift"], x.ndim)
    if layer == "RSign":
        passes = np.ones(z.shape, bool) if threshold == 0 else np.abs(z) <= threshold
        dx = np.where(passes, g, 0).astype(x.dtype)
        y = np.where(z < 0, -1.0, 1.0).astype(x.dtype)
        return {"y": y, "x": dx, "bias": _per_channel(dx)}
    w = _view(a["slope"], x.ndim)
    y = np.where(z > 0, z, w * z) + _view(a["bias_out"], x.ndim)
    dx = np.where(z > 0, g, w * g)
    return {
        "y": y,
        "x": dx,
        "bias_in": _per_channel(dx),
        "slope": _per_channel(np.where(z > 0, 0, g * z)),
        "bias_out": _per_channel(g),
    }


def _torch_layer(layer: str, c: int, threshold: float | None, a: dict, dtype: str) -> nn.Module:
    torch_dtype = getattr(torch, dtype)
    if layer == "RSign":
        module = RSign(c, gradient_cancellation_threshold=threshold, dtype=torch_dtype)
        values = {"bias": a["shift"]}
    else:
        module = RPReLU(c, dtype=torch_dtype)
        values = {"bias_in": a["shift"], "slope": a["slope"], "bias_out": a["bias_out"]}
    with torch.no_grad():
        for name, value in values.items():
            getattr(module, name).copy_(torch.from_numpy(value))
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer, shape, threshold", ORACLE_CASES)
def test_torch_layers_match_the_formulas(layer: str, shape: tuple, threshold: Any, dtype: str):
    a = _arrays(shape, threshold, dtype)
    module = _torch_layer(layer, shape[1], threshold, a, dtype)
    x = torch.tensor(a["x"], requires_grad=True)
    y = module(x)
    y.backward(torch.from_numpy(a["g"]))
    want = _oracle(layer, a, threshold)
    tol = layer_tolerance(dtype)
    np.testing.assert_array_equal(y.detach().numpy(), want["y"])
    np.testing.assert_array_equal(x.grad.numpy(), want["x"])
    for name, _ in module.named_parameters():
        np.testing.assert_allclose(
            getattr(module, name).grad.numpy(), want[name], rtol=tol.rtol, atol=tol.atol
        )
        assert np.any(want[name] != 0), name  # the case carries information
    if layer == "RSign" and threshold:
        assert np.any(want["x"] == 0) and np.any(want["x"] != 0)


def test_the_parity_table_has_the_react_cases() -> None:
    layers = [c.layer for c in REACT_CASES]
    assert layers.count("RSign") >= 3 and layers.count("RPReLU") >= 2
    thresholds = {c.kwargs.get("gradient_cancellation_threshold", 1.0) for c in REACT_CASES}
    assert {0.0, 0.5, 1.0} <= thresholds
    assert {len(c.shape) for c in REACT_CASES} >= {2, 3, 4}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", REACT_CASES, ids=REACT_IDS)
def test_linen_and_nnx_match_torch(case: Any, dtype: str) -> None:
    arrays = make_extra_arrays(case, dtype, seed=2)
    layer, want = run_torch_extra(case, arrays, dtype)
    with jax_x64(dtype):
        got = run_flax_extra(case, layer, arrays, dtype)
    tol = layer_tolerance(dtype)
    expected_keys = {"y", "x_grad"} | {f"{n}_grad" for n, _ in layer.named_parameters()}
    assert set(want) == expected_keys
    for api in ("linen", "nnx"):
        assert set(got[api]) == expected_keys, api
        for name, value in want.items():
            a = np.asarray(got[api][name])
            assert a.dtype == value.dtype and a.shape == value.shape, (api, name)
            np.testing.assert_array_equal(np.isnan(a), np.isnan(value))
            if name in ("y", "x_grad"):  # elementwise in both frameworks: bit-equal
                np.testing.assert_array_equal(a, value, err_msg=f"{api} {name}")
            else:
                np.testing.assert_allclose(a, value, rtol=tol.rtol, atol=tol.atol)
        for name, value in want.items():
            if name != "y":
                assert np.any(np.nan_to_num(value) != 0), f"{case.id}: torch {name} all zero"


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_conversion_round_trips_are_bit_exact(dtype: str) -> None:
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(0)
    model = nn.Sequential(RSign(3, dtype=torch_dtype), RPReLU(3, dtype=torch_dtype))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, dtype=torch_dtype))
    state = model.state_dict()
    assert sorted(state) == ["0.bias", "1.bias_in", "1.bias_out", "1.slope"]
    with jax_x64(dtype):
        variables = torch_to_linen(model)
        assert sorted(variables["params"]["1"]) == ["bias_in", "bias_out", "slope"]
        assert sorted(torch_to_linen(state)["params"]["0"]) == ["bias"]  # state_dict alone
        back = linen_to_torch(variables, template=state)
        param_dtype = jnp.dtype(dtype)
        flax_model = [qn.RSign(3, param_dtype=param_dtype), qn.RPReLU(3, param_dtype=param_dtype)]

        class Pair(qn.nnx.Module):
            def __init__(self) -> None:
                self.layers = qn.nnx.List(flax_model)

        pair = Pair()
        torch_to_nnx(model, pair, name_map={"0": "layers.0", "1": "layers.1"})
        back_nnx = nnx_to_torch(pair, name_map={"0": "layers.0", "1": "layers.1"}, template=state)
    for converted in (back, back_nnx):
        assert list(converted) == list(state)
        for key, tensor in state.items():
            assert converted[key].dtype == tensor.dtype
            assert torch.equal(converted[key], tensor), key


def test_torch_summary_counts_them_as_full_precision() -> None:
    from bitorch.layers import QConv2d

    model = nn.Sequential(RSign(4), QConv2d(4, 4, 3, padding=1), RPReLU(4))
    info = bitorch.summary(model, torch.zeros(1, 4, 5, 5))
    rows = {layer.name: layer for layer in info.layers}
    assert [rows[n].type for n in ("0", "1", "2")] == ["RSign", "QConv2d", "RPReLU"]
    assert info.params_by_bits == {1: 4 * 4 * 9, 32: 4 + 3 * 4}


def test_defaults_come_from_the_layer_config() -> None:
    layer = RSign(2)
    assert layer.gradient_cancellation_threshold == 1.0
    assert layer.activation_function.name == "sign"
    assert RPReLU(3).slope.detach().tolist() == [0.25, 0.25, 0.25]
    assert RSign(2, "approxsign", 0.5).activation_function.name == "approxsign"


@pytest.mark.parametrize(
    "call, error, text",
    [
        (lambda: RSign(3)(torch.ones(2, 4)), ValueError, "(N, 3)"),
        (lambda: RPReLU(3)(torch.ones(3)), ValueError, "channels on dimension 1"),
        (lambda: RSign(2)(torch.ones(2, 2, dtype=torch.int32)), TypeError, "floating"),
        (lambda: RSign(0), ValueError, "in_channels"),
        (lambda: RPReLU(2, init="x"), TypeError, "init"),
        (lambda: RSign(2, gradient_cancellation_threshold=-1.0), ValueError, "threshold"),
        (lambda: RSign(2, activation="nope"), ValueError, "nope"),
    ],
)
def test_bad_arguments_are_named(call: Any, error: type, text: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value), str(info.value)


def _uncancelled_rsign(x: Any, bias: Any, **kwargs: Any) -> Any:
    kwargs["gradient_cancellation_threshold"] = 0.0
    return rsign(x, bias, **kwargs)


def _shifted_prelu(x: Any, bias_in: Any, slope: Any, bias_out: Any) -> Any:
    z = x + bias_in
    return jnp.where(z >= 0, z, slope * z) + bias_out  # the gradient at z == 0: 1, not slope


@pytest.mark.parametrize(
    "case_id, target, bug",
    [
        ("rsign-sign-threshold1", "rsign", _uncancelled_rsign),
        ("rprelu-4d", "rprelu", _shifted_prelu),
    ],
)
def test_parity_rows_catch_planted_bugs(monkeypatch, case_id: str, target: str, bug: Any) -> None:
    case = next(c for c in REACT_CASES if c.id == case_id)
    assert all(row.ok for row in layer_rows(case, "float32", ("cpu",)))
    for module in (ql, qn):
        monkeypatch.setattr(module, target, bug)
    rows = layer_rows(case, "float32", ("cpu",))
    assert rows and not any(row.ok for row in rows)
