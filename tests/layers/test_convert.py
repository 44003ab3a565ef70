"""torch <-> Flax weight conversion: layouts, bit-exact round trips, safe loading, errors."""

from __future__ import annotations

import os
from collections import OrderedDict

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
from flax import nnx

from bitorch.layers import QConv1d, QConv2d, QConv3d, QLinear
from bitorch_jax.convert import (
    UnsafeCheckpointError,
    linen_to_torch,
    load_torch_state_dict,
    nchw_flatten_kernel,
    nhwc_flatten_kernel,
    nnx_to_torch,
    torch_to_linen,
    torch_to_nnx,
)
from bitorch_jax.layers import nnx as qnnx

RNGS = nnx.Rngs(0)
ZEROS = nnx.initializers.zeros_init()  # overwritten; lecun_normal's first jit costs seconds


class TorchModel(torch.nn.Module):
    """Every supported layer kind, nested names included."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.qconv = QConv2d(4, 6, (3, 2), groups=2, bias=True, dtype=dtype)
        self.bn = torch.nn.BatchNorm2d(6, dtype=dtype)
        self.conv1 = torch.nn.Conv1d(3, 4, 3, dtype=dtype)
        self.qconv3 = QConv3d(2, 2, 2, dtype=dtype)
        self.fc = QLinear(5, 3, dtype=dtype)
        self.norm = torch.nn.LayerNorm(3, dtype=dtype)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(3, 2, dtype=dtype), torch.nn.BatchNorm1d(2, dtype=dtype)
        )


class NNXModel(nnx.Module):
    """The same structure in NNX, so ``torch_to_nnx`` matches names one to one."""

    def __init__(self, dtype: jnp.dtype) -> None:
        p = {"param_dtype": dtype, "rngs": RNGS}
        k = {**p, "kernel_init": ZEROS}
        self.qconv = qnnx.QConv(4, 6, (3, 2), feature_group_count=2, use_bias=True, **k)
        self.bn = nnx.BatchNorm(6, **p)
        self.conv1 = nnx.Conv(3, 4, (3,), **k)
        self.qconv3 = qnnx.QConv(2, 2, (2, 2, 2), **k)
        self.fc = qnnx.QLinear(5, 3, **k)
        self.norm = nnx.LayerNorm(3, **p)
        self.head = nnx.List([nnx.Linear(3, 2, **k), nnx.BatchNorm(2, **p)])


def _fill_special(model: torch.nn.Module, seed: int) -> OrderedDict:
    """Random values plus -0.0, +-inf, NaN (with a payload), subnormals; trained-like BN."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.fill_(int(rng.integers(1, 1000)))  # num_batches_tracked
                continue
            values = torch.from_numpy(rng.normal(size=tensor.shape)).to(tensor.dtype)
            if "running_var" in name:
                values = values.abs() + 0.5
            flat = values.view(-1)
            special = [-0.0, float("inf"), float("-inf"), float("nan")]
            if tensor.dtype in (torch.float32, torch.float64):
                special.append(torch.finfo(tensor.dtype).tiny / 4)  # subnormal
            flat[: len(special)] = torch.tensor(special, dtype=tensor.dtype)[: flat.numel()]
            tensor.copy_(values)
        weight = model.qconv.weight.view(-1)
        if weight.dtype == torch.float32:  # a NaN with a non-default payload
            weight.view(torch.int32)[0] = 0x7FC00123
    return OrderedDict((k, v.clone()) for k, v in model.state_dict().items())


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.contiguous().view(bits), b.contiguous().view(bits))


def _assert_identical(got: OrderedDict, want: OrderedDict) -> None:
    assert list(got) == list(want)
    for key in want:
        assert _same_bits(got[key], want[key]), f"{key} changed in the round trip"


DTYPES = ["float32", "float64", "float16", "bfloat16"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_linen_round_trip_is_bit_exact(dtype: str) -> None:
    torch_dtype = getattr(torch, dtype)
    original = _fill_special(TorchModel(torch_dtype), seed=1)
    with jax.enable_x64(dtype == "float64"):
        variables = torch_to_linen(original)
        kernel = variables["params"]["qconv"]["kernel"]
        assert kernel.dtype == jnp.dtype(dtype if dtype != "bfloat16" else jnp.bfloat16)
        back = linen_to_torch(variables, template=original)
    _assert_identical(back, original)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_nnx_round_trip_is_bit_exact(dtype: str) -> None:
    original = _fill_special(TorchModel(getattr(torch, dtype)), seed=2)
    with jax.enable_x64(dtype == "float64"):
        model = NNXModel(jnp.dtype(dtype))
        torch_to_nnx(original, model)
        assert model.bn.mean[...].dtype == jnp.dtype(dtype)
        back = nnx_to_torch(model, template=original)
    _assert_identical(back, original)


def test_without_template_the_counter_is_left_out_and_loading_still_works() -> None:
    model = TorchModel(torch.float32)
    original = _fill_special(model, seed=3)
    back = linen_to_torch(torch_to_linen(original))
    assert set(back) == {k for k in original if not k.endswith("num_batches_tracked")}
    fresh = TorchModel(torch.float32)
    fresh.load_state_dict(back)  # strict: BatchNorm keeps its own counter
    for key, value in back.items():
        assert _same_bits(fresh.state_dict()[key], value)


def test_layouts_element_by_element() -> None:
    """``weight[o, i, *k] == kernel[*k, i, o]`` and Linear ``weight[o, i] == kernel[i, o]``."""
    layers = {
        "lin": torch.nn.Linear(3, 2),
        "c1": torch.nn.Conv1d(2, 3, 4),
        "c2": QConv2d(4, 6, (2, 3), groups=2),
        "c3": QConv1d(2, 2, 3),
        "c4": torch.nn.Conv3d(1, 2, (2, 3, 4)),
    }
    params = torch_to_linen(torch.nn.ModuleDict(layers))["params"]
    for name, layer in layers.items():
        w = layer.weight.detach().numpy()
        k = np.asarray(params[name]["kernel"])
        for index in np.ndindex(w.shape):
            o, i, *spatial = index
            assert w[index] == k[(*spatial, i, o)], (name, index)


def test_converted_plain_layers_compute_the_same_in_linen() -> None:
    """Layouts are right in meaning, not only self-consistent: torch conv + BatchNorm
    (eval, trained statistics) + LayerNorm + Linear equals the linen model."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, stride=2),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.LayerNorm(4 * 3 * 3),
        torch.nn.Linear(4 * 3 * 3, 5),
    )
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.normal_()
    net.eval()

    class Linen(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (3, 3), strides=2, padding=1, name="0")(x)
            x = nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="1")(x)
            n, h, w, c = x.shape
            x = nn.LayerNorm(epsilon=1e-5, name="3")(jnp.transpose(x, (0, 3, 1, 2)).reshape(n, -1))
            return nn.Dense(5, name="4")(x)

    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = Linen().apply(torch_to_linen(net), jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_flatten_order_helpers() -> None:
    """A Linear after NCHW flatten equals a dense layer after NHWC flatten with the rows
    permuted by ``nhwc_flatten_kernel``; ``nchw_flatten_kernel`` undoes it exactly."""
    rng = np.random.default_rng(1)
    c, h, w, out = 3, 4, 2, 5
    x = rng.normal(size=(2, c, h, w)).astype(np.float64)
    weight = rng.normal(size=(out, c * h * w))
    want = x.reshape(2, -1) @ weight.T
    kernel = nhwc_flatten_kernel(weight.T, (c, h, w))
    got = x.transpose(0, 2, 3, 1).reshape(2, -1) @ kernel
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(nchw_flatten_kernel(kernel, (c, h, w)), weight.T)


def test_name_map_renames_both_ways() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    original = OrderedDict((k, v.clone()) for k, v in net.state_dict().items())
    name_map = {"0": "Dense_0", "1": "BatchNorm_0"}
    variables = torch_to_linen(original, name_map=name_map)
    assert set(variables["params"]) == {"Dense_0", "BatchNorm_0"}
    assert set(variables["batch_stats"]["BatchNorm_0"]) == {"mean", "var"}
    _assert_identical(linen_to_torch(variables, name_map=name_map, template=original), original)
    with pytest.raises(ValueError, match="two torch modules"):
        torch_to_linen(original, name_map={"0": "x", "1": "x"})


def test_pt_files_load_with_weights_only(tmp_path) -> None:
    model = TorchModel(torch.float32)
    original = _fill_special(model, seed=4)
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pt"
    torch.save(original, plain)
    torch.save({"state_dict": original, "epoch": 3}, wrapped)
    for path in (plain, wrapped, str(plain)):
        loaded = load_torch_state_dict(path)
        _assert_identical(OrderedDict(loaded), original)
    _assert_identical(linen_to_torch(torch_to_linen(plain), template=original), original)
    not_a_state_dict = tmp_path / "list.pt"
    torch.save([torch.ones(2)], not_a_state_dict)
    with pytest.raises(ValueError, match="state_dict"):
        load_torch_state_dict(not_a_state_dict)


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: stands in for arbitrary code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_not_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2, 2), "payload": _Payload(str(marker))}, path)
    assert not marker.exists()
    for load in (
        load_torch_state_dict,
        torch_to_linen,
        lambda p: torch_to_nnx(p, qnnx.QLinear(2, 2, kernel_init=ZEROS, rngs=RNGS)),
    ):
        with pytest.raises(UnsafeCheckpointError, match="weights_only=True") as error:
            load(path)
        assert isinstance(error.value, ValueError)
        assert "nothing was executed" in str(error.value)
        assert not marker.exists(), "the pickle's payload ran"
    # the file really is malicious: an unsafe load runs the payload (here: an empty file)
    torch.load(path, weights_only=False)
    assert marker.exists()
    os.remove(marker)


def test_unsupported_sources_and_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        torch_to_linen(torch.nn.Sequential(torch.nn.ConvTranspose2d(2, 2, 3)))
    with pytest.raises(ValueError, match="act.alpha"):
        torch_to_linen({"act.alpha": torch.ones(3)})
    with pytest.raises(TypeError, match="floating"):
        torch_to_linen({"fc.weight": torch.ones(2, 2, dtype=torch.int64)})
    with pytest.raises(TypeError, match="state_dict"):
        torch_to_linen(42)
    with pytest.raises(ValueError, match="collections"):
        linen_to_torch({"params": {}, "cache": {}})


def test_float64_without_x64_is_an_error_not_a_silent_cast() -> None:
    assert not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="x64"):
        torch_to_linen(QLinear(2, 2, dtype=torch.float64))


def test_nnx_mismatches_name_the_paths_and_change_nothing() -> None:
    model = qnnx.QLinear(3, 2, kernel_init=nnx.initializers.ones_init(), rngs=RNGS)
    before = np.asarray(model.kernel[...]).copy()
    with pytest.raises(ValueError, match=r"not in the model: \['extra.kernel'\]"):
        torch_to_nnx({**QLinear(3, 2).state_dict(), "extra.weight": torch.ones(2, 2)}, model)
    with pytest.raises(ValueError, match=r"not in the torch weights: \['bias'\]"):
        torch_to_nnx({"weight": torch.ones(2, 3)}, model)
    with pytest.raises(ValueError, match="kernel"):
        torch_to_nnx(QLinear(4, 2).state_dict(), model)
    with jax.enable_x64(True):
        with pytest.raises(ValueError, match="float64"):
            torch_to_nnx(QLinear(3, 2, dtype=torch.float64).state_dict(), model)
    np.testing.assert_array_equal(np.asarray(model.kernel[...]), before)


def test_template_mismatch_is_an_error() -> None:
    variables = torch_to_linen(QLinear(3, 2).state_dict())
    with pytest.raises(ValueError, match="template"):
        linen_to_torch(variables, template=QLinear(4, 2).state_dict())
    with pytest.raises(ValueError, match="not in the template"):
        linen_to_torch(variables, template=QLinear(3, 2, bias=False).state_dict())


def test_conversion_copies_instead_of_sharing_torch_memory() -> None:
    layer = QLinear(3, 2)
    variables = torch_to_linen(layer)
    before = np.asarray(variables["params"]["bias"]).copy()
    with torch.no_grad():
        layer.bias.add_(1.0)
    np.testing.assert_array_equal(np.asarray(variables["params"]["bias"]), before)


def test_bfloat16_values_survive() -> None:
    values = torch.tensor([1.5, -0.0, 3.0e38, 1.0e-39], dtype=torch.bfloat16)
    variables = torch_to_linen({"fc.bias": values})
    got = np.asarray(variables["params"]["fc"]["bias"])
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), values.float().numpy())
