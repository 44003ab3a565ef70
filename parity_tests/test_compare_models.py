"""``parity_tests.compare_models`` and ``python -m parity_tests models``.

A small torch/NNX pair built here from bitorch and bitorch_jax layers (conv -> BN ->
QActivation -> QConv -> pool -> flatten -> QLinear) is compared in float64 and float32;
deliberately broken twins must be caught and named: a QConv ``pad_value`` (first
divergence at that layer), a BatchNorm with the biased running variance (only the running
variance after the train step), a QActivation without gradient cancellation (only
gradients), a BatchNorm bias off by more than the tolerance (first divergence at the BN);
a bias off by less, across 0 before a sign, is a boundary flip. The zoo models (LeNet,
ResnetE18) run through :func:`parity_tests.models.run_zoo` when both registries have them.
float64 runs only inside ``jax_x64`` (scoped), never globally.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

import parity_tests
import parity_tests.models as pm
from bitorch.layers import QActivation, QConv2d, QLinear
from bitorch_common.tolerances import model_tolerance
from bitorch_jax.convert import torch_to_nnx
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.models import layers as jl
from parity_tests.__main__ import main
from parity_tests.backends import jax_x64


class TorchSmall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            QActivation("sign"),
            QConv2d(8, 8, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.Flatten(),
            QLinear(8 * 4 * 4, 5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MaxPool2(nnx.Module):
    """2x2 max pool (stride 2) on NHWC input. (Not ``jl.MaxPool2d``: its traced ``-inf``
    init value makes ``jax.jit`` of its gradient fail, so compare_models would fall back
    to a slow eager run; the zoo tests below exercise it.)"""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


class FlaxSmall(nnx.Module):
    """The NNX twin; the keyword arguments break it on purpose."""

    def __init__(
        self,
        dtype: Any,
        *,
        pad_value: float = -1.0,
        unbiased_running_var: bool = True,
        threshold: float = 1.0,
    ) -> None:
        r = nnx.Rngs(0)
        self.net = jl.Sequential(
            jl.Conv2d(3, 8, 3, padding=1, bias=False, rngs=r, param_dtype=dtype),
            jl.BatchNorm(8, param_dtype=dtype, unbiased_running_var=unbiased_running_var),
            qnnx.QActivation("sign", gradient_cancellation_threshold=threshold),
            jl.QConv2d(8, 8, 3, padding=1, pad_value=pad_value, rngs=r, param_dtype=dtype),
            MaxPool2(),
            jl.Flatten(),
            qnnx.QLinear(8 * 4 * 4, 5, rngs=r, param_dtype=dtype),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.net(x)


def small_pair(dtype: str, **broken: Any) -> tuple[TorchSmall, FlaxSmall, np.ndarray]:
    torch.manual_seed(0)
    t = TorchSmall().to(getattr(torch, dtype))
    pm._randomize_batchnorms(t, np.random.default_rng(0))
    with jax_x64(dtype):
        f = FlaxSmall(jnp.dtype(dtype), **broken)
    x = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(dtype)
    return t, f, x


def judged_failures(row: pm.ModelResult) -> set[str]:
    return set(row.failed_arrays)


def check_complete(row: pm.ModelResult, torch_model: nn.Module) -> None:
    """Every parameter gradient, the logits, loss, input gradient, the activations and
    (train) the running statistics were compared: the rows are not vacuous."""
    names = {f"grad {n}" for n, _ in torch_model.named_parameters()}
    assert names <= set(row.arrays), names - set(row.arrays)
    assert {"logits", "loss", "input grad"} <= set(row.arrays)
    assert row.layers_compared >= 5
    if row.params == "train":
        stats = [k for k in row.arrays if k.startswith(("running_mean ", "running_var "))]
        n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in torch_model.modules())
        assert len(stats) == 2 * n_bn


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_small_pair_matches(dtype: str) -> None:
    t, f, x = small_pair(dtype)
    before = {k: v.clone() for k, v in t.state_dict().items()}
    t.train()
    report = parity_tests.compare_models(t, f, x, name="small")
    assert report.ok, str(report)
    assert [r.params for r in report] == ["eval", "train"]
    tol = model_tolerance(dtype)
    for row in report:
        check_complete(row, t)
        assert row.kind == "model" and row.first_divergence is None and row.flips == 0
        assert row.grad_tolerance_used < 1
        if dtype == "float64":  # rounding level: a few ulps of O(1) values
            assert row.max_forward_diff < 1e-13 and row.max_grad_diff < 1e-12, row
        else:
            assert row.max_grad_diff <= 1e3 * tol.rtol
    # both models are left as they were: weights, statistics, modes
    assert t.training and all(torch.equal(before[k], v) for k, v in t.state_dict().items())
    assert f.net[1].use_running_average is False
    text = report.table()
    assert text.splitlines()[0].split()[:2] == ["quantizer", "params"]
    data = json.loads(report.to_json())
    assert data["results"][1]["first_divergence"] is None
    assert "running_var net.1" in data["results"][1]["arrays"]


def test_broken_pad_value_is_named_first() -> None:
    t, f, x = small_pair("float64", pad_value=1.0)
    report = parity_tests.compare_models(t, f, x, name="small")
    assert not report.ok
    for row in report:
        # the convolution before it (net.0), its BN (net.1) and sign (net.2) match
        assert row.first_divergence == "net.3", row.details()
        assert row.arrays["activation net.2"]["share"] < 1
    assert "FIRST DIVERGENCE" in report.details() and "'net.3'" in report.details()


def test_biased_running_var_is_named() -> None:
    t, f, x = small_pair("float64", unbiased_running_var=False)
    eval_row, train_row = parity_tests.compare_models(t, f, x, name="small")
    assert eval_row.ok, eval_row.details()
    assert not train_row.ok and train_row.first_divergence is None
    assert judged_failures(train_row) == {"running_var net.1"}, train_row.details()


def test_missing_gradient_cancellation_is_named() -> None:
    t, f, x = small_pair("float64", threshold=0.0)
    for row in parity_tests.compare_models(t, f, x, name="small"):
        assert row.first_divergence is None  # the forward pass is unchanged
        failed = judged_failures(row)
        # the gradients that flow back through the QActivation, and only those
        assert failed == {"input grad", "grad net.0.weight", "grad net.1.weight",
                          "grad net.1.bias"}, row.details()  # fmt: skip


def _bn_bias_pair(delta: float, center: float = 0.0) -> tuple[TorchSmall, FlaxSmall, np.ndarray]:
    """Channel 0 of the BN gives the constant ``center - delta`` in torch and
    ``center + delta`` in JAX (gamma 0), right before a sign (with gradient cancellation
    at ``|x| <= 1``)."""
    t, f, x = small_pair("float64")
    with torch.no_grad():
        t.net[1].weight[0] = 0.0
        t.net[1].bias[0] = center - delta
    with jax_x64("float64"):
        torch_to_nnx(t, f)
        f.net[1].bias[...] = f.net[1].bias[...].at[0].set(center + delta)
    return t, f, x


def test_sign_flip_within_tolerance_is_a_boundary_flip() -> None:
    t, f, x = _bn_bias_pair(1e-14)
    report = parity_tests.compare_models(t, f, x, name="small", convert=False)
    assert report.ok, str(report)
    for row in report:
        assert row.flips == 4 * 8 * 8 and row.flip_layer == "net.2"  # all of channel 0
        assert not row.arrays["activation net.3"]["judged"]
        assert row.arrays["activation net.1"]["judged"]
    assert "boundary flips" in report.details()


def test_difference_beyond_tolerance_is_not_a_flip() -> None:
    t, f, x = _bn_bias_pair(1e-6)
    report = parity_tests.compare_models(t, f, x, name="small", convert=False)
    assert not report.ok
    for row in report:
        assert row.flips == 0 and row.first_divergence == "net.1", row.details()


def test_mask_boundary_within_tolerance_is_a_gradient_flip() -> None:
    t, f, x = _bn_bias_pair(1e-14, center=1.0)  # forward equal; gradient 1 vs 0
    report = parity_tests.compare_models(t, f, x, name="small", convert=False)
    assert report.ok, str(report)
    upstream = ["input grad", "grad net.0.weight", "grad net.1.weight", "grad net.1.bias"]
    for row in report:
        assert row.flips == 4 * 8 * 8 and row.grad_flip_layer == "net.2", row.details()
        assert row.flip_layer is None and row.first_divergence is None
        # measured, not judged: the gradients that flow back through the flipped mask ...
        for label in upstream:
            assert not row.arrays[label]["judged"], label
        assert row.arrays["grad net.1.bias"]["max_diff"] > 0.01  # ... and they do differ
        # ... while the forward pass and the gradients after the layer stay judged
        for label in ["activation net.3", "logits", "grad net.3.weight", "grad net.6.weight"]:
            assert row.arrays[label]["judged"], label
    assert "gradient flip" in report.details()


def test_mask_boundary_beyond_tolerance_is_not_a_gradient_flip() -> None:
    t, f, x = _bn_bias_pair(1e-6, center=1.0)
    report = parity_tests.compare_models(t, f, x, name="small", convert=False)
    assert not report.ok
    for row in report:
        assert row.flips == 0 and row.grad_flip_layer is None, row.details()
        assert row.first_divergence == "net.1", row.details()


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_at_zero_is_a_gradient_flip(inplace: bool) -> None:
    """A float ReLU's gradient mask flips at 0 like a straight-through mask at its
    threshold; an in-place ReLU's input is recorded before it is overwritten."""
    tol = model_tolerance("float64")
    row = pm.ModelResult("relu", "eval", "float64", "cpu", kind="model")
    judge = pm._Judge(row, tol)
    x_t = np.array([[-1e-15, 0.5, -2.0, 3e-16]])
    x_f = np.array([[1e-15, 0.5, -2.0, 3e-16]])
    pm._check_grad_flips(judge, "act", 7, nn.ReLU(inplace=inplace), x_t, x_f)
    assert row.flips == 1 and judge.grad_flip_at == 7 and row.grad_flip_layer == "act"
    (element,) = row.flip_list
    assert element.index == (0, 0) and (element.left, element.right) == (0.0, 1.0)
    # beyond the tolerance it is not a flip (the layer before diverged)
    row2 = pm.ModelResult("relu", "eval", "float64", "cpu", kind="model")
    judge2 = pm._Judge(row2, tol)
    pm._check_grad_flips(judge2, "act", 7, nn.ReLU(), x_t - 1e-6, x_f)
    assert row2.flips == 0 and judge2.grad_flip_at is None
    # the recorder keeps the input of an in-place ReLU as it was
    net = nn.Sequential(nn.Identity(), nn.ReLU(inplace=inplace))
    with pm._record_torch(net) as (order, seen):
        net(torch.tensor([[-1.0, 2.0]]))
    assert seen["1:input"][0].tolist() == [[-1.0, 2.0]] and seen["1"][0].tolist() == [[0.0, 2.0]]


def test_frozen_torch_parameter_needs_a_zero_flax_gradient() -> None:
    t, f, x = small_pair("float64")
    t.net[0].weight.requires_grad_(False)  # the NNX twin trains it: a real difference
    report = parity_tests.compare_models(t, f, x, name="small")
    assert not report.ok
    for row in report:
        assert any("grad net.0.weight: frozen in torch" in p for p in row.problems), row.details()
        assert "grad net.0.weight" not in row.arrays  # not compared as a trained weight


def test_flax_side_runs_with_full_float32_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU would use TF32 for float32 convolutions and dots by default; compare_models
    traces the NNX model under ``jax.default_matmul_precision("highest")``."""
    seen: list[Any] = []
    original = FlaxSmall.__call__

    def spy(self: FlaxSmall, x: jax.Array) -> jax.Array:
        seen.append(jax.config.jax_default_matmul_precision)
        return original(self, x)

    monkeypatch.setattr(FlaxSmall, "__call__", spy)
    t, f, x = small_pair("float32")
    report = parity_tests.compare_models(t, f, x, name="small", modes=("eval",))
    assert report.ok and seen and set(seen) == {"highest"}, seen
    assert report[0].device == jax.default_backend()


def test_arguments_are_checked() -> None:
    t, f, x = small_pair("float32")
    with pytest.raises(ValueError, match="modes"):
        parity_tests.compare_models(t, f, x, modes=("test",))
    with pytest.raises(TypeError, match="flax_model"):
        parity_tests.compare_models(t, t, x)
    with pytest.raises(ValueError, match="labels"):
        parity_tests.compare_models(t, f, x, labels=[0, 1])


def test_user_loss_pair() -> None:
    t, f, x = small_pair("float32")

    def torch_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logits**2).mean()

    def jax_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
        return (logits**2).mean()

    report = parity_tests.compare_models(t, f, x, loss=(torch_loss, jax_loss), modes=("train",))
    assert report.ok and report[0].arrays["loss"]["elements"] == 1


# ----------------------------------------------------------------------------- the zoo

ZOO_NOW, ZOO_SKIPPED = pm.zoo_names()


@pytest.mark.parametrize("name", ["LeNet", "ResnetE18"])
def test_zoo_models_match(name: str) -> None:
    if name not in ZOO_NOW:
        pytest.skip(f"{name} is not in both registries yet: {ZOO_SKIPPED}")
    report = pm.run_zoo([name], ["float64", "float32"])
    assert report.ok, str(report)
    for row in report:
        assert row.first_divergence is None and row.layers_compared > 10
        if row.dtype == "float64":  # rounding level, relative to (|element| + A)
            relative = row.grad_tolerance_used * model_tolerance("float64").rtol
            assert relative < 2e-13, row.details()


def test_quicknet_frozen_blur_and_degenerate_free_batchnorms() -> None:
    """QuickNet's fixed blur is ``requires_grad=False`` in torch and a stop_gradient
    ``FrozenParam`` in NNX: not a trained weight on either side, zero gradient in NNX."""
    if "QuickNetSmall" not in ZOO_NOW:
        pytest.skip(f"QuickNetSmall is not in both registries yet: {ZOO_SKIPPED}")
    report = pm.run_zoo(["QuickNetSmall"], ["float64"])
    assert report.ok, str(report)
    with jax_x64("float64"):
        t, _, _ = pm.build_pair("QuickNetSmall", "float64")
    frozen = [n for n, p in t.named_parameters() if not p.requires_grad]
    assert len(frozen) == 3 and all("depth_conv" in n for n in frozen)
    for row in report:
        assert row.layers_compared > 10 and not any(f"grad {n}" in row.arrays for n in frozen)


def test_broken_block_of_resnete18_is_named_first() -> None:
    if "ResnetE18" not in ZOO_NOW:
        pytest.skip(f"ResnetE18 is not in both registries yet: {ZOO_SKIPPED}")
    block = "_model.features.3.1.body.0"  # stage 2, block 1: its binary convolution
    with jax_x64("float64"):
        t, f, x = pm.build_pair("ResnetE18", "float64")
    f._model.features[3][1].body[0].pad_value = 1.0  # torch: -1
    (row,) = parity_tests.compare_models(t, f, x, name="ResnetE18", modes=("eval",))
    assert not row.ok and row.first_divergence == block, row.details()
    # everything before it was compared and matched
    assert row.arrays["activation _model.features.3.0"]["share"] < 1


# ----------------------------------------------------------------------------- the command


class TinyTorch(nn.Module):
    def __init__(self, input_shape: Any, num_classes: int = 0) -> None:
        super().__init__()
        self._model = nn.Sequential(
            nn.Conv2d(input_shape[1], 4, 3, padding=1),
            nn.BatchNorm2d(4),
            QConv2d(4, 4, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model(x)


class TinyFlax(nnx.Module):
    def __init__(
        self, input_shape: Any, num_classes: int = 0, *, rngs: nnx.Rngs, param_dtype: Any
    ) -> None:
        kw = {"rngs": rngs, "param_dtype": param_dtype}
        self._model = jl.Sequential(
            jl.Conv2d(input_shape[1], 4, 3, padding=1, **kw),
            jl.BatchNorm(4, param_dtype=param_dtype),
            jl.QConv2d(4, 4, 3, padding=1, **kw),
            jl.AdaptiveAvgPool2d(1),
            jl.Flatten(),
            jl.Linear(4, num_classes, **kw),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self._model(x)


@pytest.fixture
def tiny_zoo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both registries answer with the tiny pair only (the real zoo is left alone)."""
    import bitorch.models as tm
    import bitorch_jax.models as jm

    def lookup(cls: type) -> Callable[[str], type]:
        def model_from_name(name: str) -> type:
            if name.lower() != "tiny":
                raise ValueError(f"unknown model {name}")
            return cls

        return model_from_name

    for module, cls in ((tm, TinyTorch), (jm, TinyFlax)):
        monkeypatch.setattr(module, "model_from_name", lookup(cls))
        monkeypatch.setattr(module, "model_names", lambda: ["tiny"])
    monkeypatch.setattr(
        pm, "ZOO", {"Tiny": pm.ModelSpec((2, 3, 6, 6), 3), "NoSuchNet": pm.ZOO["LeNet"]}
    )


def test_models_command(tiny_zoo: None, capsys: pytest.CaptureFixture, tmp_path: Any) -> None:
    path = tmp_path / "models.json"
    assert main(["models", "--json", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("Tiny ")]
    assert [(r[1], r[2], r[-1]) for r in rows] == [
        ("eval", "float64", "PASS"), ("train", "float64", "PASS"),
        ("eval", "float32", "PASS"), ("train", "float32", "PASS"),
    ]  # fmt: skip
    assert "not in both bitorch.models and bitorch_jax.models (skipped): NoSuchNet" in out
    assert "PASS: every model matches" in out
    data = json.loads(path.read_text())
    assert data["ok"] and data["models"] == ["Tiny"] and data["command"] == "models"
    assert {r["kind"] for r in data["results"]} == {"model"}


def test_models_command_usage_errors(tiny_zoo: None, capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--models", "Nope"]) == 2
    assert "unknown model(s): Nope" in capsys.readouterr().err
    assert main(["models", "--models", "NoSuchNet"]) == 2
    assert "not in both bitorch.models and bitorch_jax.models: NoSuchNet" in capsys.readouterr().err
    assert main(["models", "--dtypes", "float16"]) == 2
    assert main(["models", "--list"]) == 0
    assert capsys.readouterr().out.startswith("Tiny  input (2, 3, 6, 6), 3 classes")
