"""``python -m parity_tests`` compares the quantized layers too, and catches broken ones.

Each bug below is planted by monkeypatching ``bitorch_jax`` (never the torch reference)
and the *command* (``parity_tests.__main__.main``) must then fail, naming the array:

* gradient cancellation with ``>=`` instead of ``>``;
* padding with 0 instead of ``pad_value``;
* padding before quantizing instead of after;
* the bias added twice;
* the odd pad of ``"same"`` (even kernels) on the wrong side;
* the conversion reversing the kernel's spatial axes.

Bugs that need a code edit rather than a patch point are left to the mutation catalogue.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bitorch_jax.convert as convert
import bitorch_jax.layers.linen as qlinen
import bitorch_jax.layers.nnx as qnnx
import bitorch_jax.layers.qactivation as qactivation
import bitorch_jax.layers.qconv as qconv
import parity_tests.api as api
import parity_tests.backends as backends
from bitorch_common.validation import explicit_padding, spatial_tuple
from parity_tests.__main__ import main
from parity_tests.layers import CASE_IDS, CASES, LayerCase, check_cancelled, compare_layer
from parity_tests.report import ParityResult

BY_ID = {case.id: case for case in CASES}
# the cases the bug checks run (small, float32, CPU): each bug shows in at least one
LINEAR = "linear-bias"
PAD_HALF = "conv1d-pad1-padvalue0.5"  # pad_value 0.5: neither 0 nor sign(0.5)
BIAS_CONV = "conv1d-stride2-dil2-pad2-bias"
SAME_EVEN = "conv1d-groups2-same-even-kernel"  # "same" with kernel 4: pads (1, 2)
RECT = "conv2d-rect-stride-dil-groups-bias"  # a (2, 3) kernel, not symmetric
ACTIVATION = "activation-sign"


def _run(capsys: Any, tmp_path: Any, ids: list[str], *extra: str) -> tuple[int, str, dict]:
    path = tmp_path / "out.json"
    argv = ["--quantizers", "none", "--layers", ",".join(ids), "--dtypes", "float32"]
    code = main([*argv, "--devices", "cpu", "--quiet", "--json", str(path), *extra])
    out = capsys.readouterr().out
    return code, out, json.loads(path.read_text())


def _failing(data: dict) -> list[dict]:
    return [r for r in data["results"] if r["verdict"] != "PASS"]


def test_the_table_has_every_case_the_bug_checks_use():
    for name in (LINEAR, PAD_HALF, BIAS_CONV, SAME_EVEN, RECT, ACTIVATION):
        assert name in CASE_IDS
    assert BY_ID[PAD_HALF].pad_value == 0.5 and BY_ID[PAD_HALF].padding == 1
    assert BY_ID[SAME_EVEN].padding == "same" and BY_ID[SAME_EVEN].kernel_size == (4,)
    assert BY_ID[RECT].kernel_size == (2, 3)


def test_quantizer_and_layer_rows_in_one_table_and_json(capsys, tmp_path):
    path = tmp_path / "out.json"
    ids = [LINEAR, SAME_EVEN]
    argv = ["--quantizers", "sign", "--layers", ",".join(ids), "--devices", "cpu"]
    code = main([*argv, "--size", "300", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 layer cases x 2 dtypes (float32, float64)" in out
    assert "PASS: everything matches" in out
    data = json.loads(path.read_text())
    assert data["ok"] is True and data["layer_cases"] == ids
    layers = [r for r in data["results"] if r["kind"] == "layer"]
    quantizers = [r for r in data["results"] if r["kind"] == "quantizer"]
    assert {r["quantizer"] for r in quantizers} == {"sign"}
    # every case x float32/float64 x linen/NNX, torch on the left
    assert sorted((r["quantizer"], r["dtype"], r["params"]) for r in layers) == sorted(
        (i, d, p) for i in ids for d in ("float32", "float64") for p in ("linen", "nnx")
    )
    assert all(r["verdict"] == "PASS" and r["left"] == "torch" for r in layers)
    assert all(r["right"] == r["params"] and r["elements"] > 0 for r in layers)
    lines = [line.split() for line in out.splitlines()]
    table_rows = [cells for cells in lines if cells and cells[0] in ids]
    assert len(table_rows) == len(layers) and all(c[-1] == "PASS" for c in table_rows)


def test_unpatched_bug_check_cases_pass(capsys, tmp_path):
    """The baseline of the checks below: every case they use passes as it is."""
    ids = [LINEAR, PAD_HALF, BIAS_CONV, SAME_EVEN, RECT, ACTIVATION]
    code, out, data = _run(capsys, tmp_path, ids)
    assert code == 0, out
    assert len(data["results"]) == 2 * len(ids) and not _failing(data)


def test_layers_run_in_float32_and_float64_only(capsys, tmp_path):
    code = main(["--quantizers", "sign", "--layers", LINEAR, "--dtypes", "bfloat16",
                 "--devices", "cpu", "--size", "100"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    header = out.split("\n\n")[0]
    assert "Layers: skipped" in header and "float32 and float64 only" in header
    assert not any(line.startswith(LINEAR) for line in out.splitlines())


def test_list_and_bad_layer_ids(capsys):
    assert main(["--list", "--quantizers", "none", "--layers", "all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == CASE_IDS
    assert main(["--list", "--quantizers", "sign"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == ["sign()"]
    assert all(i in captured.err for i in CASE_IDS)  # bare --list: layer cases on stderr
    assert main(["--layers", "linear-nope", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown layer case(s): linear-nope" in err and LINEAR in err


def test_layer_gpu_rows_with_the_cpu_standing_in(monkeypatch, capsys, tmp_path):
    """The GPU rows of a layer (torch/linen/NNX on the GPU, and each framework's CPU vs
    GPU result), exercised without a GPU by letting the CPU stand in for it."""
    monkeypatch.setattr(backends, "_torch_device", lambda device: "cpu")
    monkeypatch.setattr(backends, "_jax_device", lambda device: jax.devices("cpu")[0])
    monkeypatch.setattr(api, "gpu_status", lambda: (True, "CPU standing in"))
    code, out, data = _run(capsys, tmp_path, [RECT], "--devices", "gpu")
    assert code == 0, out
    rows = [(r["device"], r["params"], r["left"], r["right"]) for r in data["results"]]
    assert rows == [
        ("gpu", "linen", "torch", "linen"),
        ("gpu", "nnx", "torch", "nnx"),
        ("torch cpu/gpu", "torch", "torch:cpu", "torch:gpu"),
        ("jax cpu/gpu", "linen", "linen:cpu", "linen:gpu"),
        ("jax cpu/gpu", "nnx", "nnx:cpu", "nnx:gpu"),
    ]


# ----------------------------------------------------------------------------- planted bugs


def _assert_caught(code: int, out: str, data: dict, array: str, ids: list[str]) -> list[dict]:
    assert code == 1, out
    assert "FAIL: see above" in out
    failing = _failing(data)
    assert failing, out
    assert {r["quantizer"] for r in failing} <= set(ids)
    kinds = {e["kind"] for r in failing for e in r["failing_elements"]}
    assert array in kinds, kinds
    # the details name the array, the element, both values and the allowed difference
    line = next(line for line in out.splitlines() if line.strip().startswith(f"{array} at ["))
    assert "allowed" in line or "must be exactly 0" in line, line
    return failing


def test_catches_cancellation_with_greater_or_equal(monkeypatch, capsys, tmp_path):
    @jax.custom_vjp
    def cancel(x: jax.Array, threshold: Any) -> jax.Array:
        return x

    def fwd(x: jax.Array, threshold: Any) -> tuple:
        return x, jnp.abs(x) >= jnp.asarray(threshold, x.dtype)  # the bug: >= for >

    def bwd(mask: jax.Array, g: jax.Array) -> tuple:
        return jnp.where(mask, jnp.zeros((), g.dtype), g), None

    cancel.defvjp(fwd, bwd)

    def gradient_cancellation(x: jax.Array, threshold: float) -> jax.Array:
        return x if threshold == 0 else cancel(x, threshold)

    monkeypatch.setattr(qactivation, "gradient_cancellation", gradient_cancellation)
    ids = [ACTIVATION, LINEAR]
    failing = _assert_caught(*_run(capsys, tmp_path, ids), "input grad", ids)
    assert {r["quantizer"] for r in failing} == set(ids)
    # the differing elements are exactly those with |x| == threshold
    for r in failing:
        t = BY_ID[r["quantizer"]].threshold
        assert {abs(e["input"]) for e in r["failing_elements"]} == {t}


def test_catches_padding_with_zero(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(qconv, "check_pad_value", lambda pad_value, where: 0.0)
    ids = [PAD_HALF]
    _assert_caught(*_run(capsys, tmp_path, ids), "output", ids)


def _wrap_q_conv(monkeypatch: Any, make: Any) -> None:
    """Replace ``q_conv`` where the linen and NNX classes call it."""
    original = qconv.q_conv
    for module in (qlinen, qnnx):
        monkeypatch.setattr(module, "q_conv", make(original))


def test_catches_padding_before_quantizing(monkeypatch, capsys, tmp_path):
    def make(original: Any) -> Any:
        def q_conv(x, kernel, bias=None, *, padding=0, pad_value=-1.0, strides=1,
                   kernel_dilation=1, **kwargs):  # fmt: skip
            n = kernel.ndim - 2
            dilation = spatial_tuple(kernel_dilation, n, "d", "bug", minimum=1)
            strides = spatial_tuple(strides, n, "s", "bug", minimum=1)
            pads = explicit_padding(padding, kernel.shape[:n], dilation, strides, "bug")
            widths = ((0, 0),) * (x.ndim - n - 1) + tuple(pads) + ((0, 0),)
            x = jnp.pad(x, widths, constant_values=pad_value)  # raw x padded: the bug
            return original(x, kernel, bias, padding=0, pad_value=pad_value, strides=strides,
                            kernel_dilation=dilation, **kwargs)  # fmt: skip

        return q_conv

    _wrap_q_conv(monkeypatch, make)
    ids = [PAD_HALF]
    _assert_caught(*_run(capsys, tmp_path, ids), "output", ids)


def test_catches_bias_added_twice(monkeypatch, capsys, tmp_path):
    def make(original: Any) -> Any:
        def twice(x, kernel, bias=None, **kwargs):
            y = original(x, kernel, bias, **kwargs)
            return y if bias is None else y + bias

        return twice

    _wrap_q_conv(monkeypatch, make)
    for module in (qlinen, qnnx):
        monkeypatch.setattr(module, "q_linear", make(module.q_linear))
    ids = [LINEAR, BIAS_CONV]
    failing = _assert_caught(*_run(capsys, tmp_path, ids), "output", ids)
    assert {r["quantizer"] for r in failing} == set(ids)


def test_catches_the_odd_same_pad_on_the_wrong_side(monkeypatch, capsys, tmp_path):
    def make(original: Any) -> Any:
        def swapped(padding, *args, **kwargs):
            pads = original(padding, *args, **kwargs)
            if padding == "same":  # the bug: the odd extra pad goes before, not after
                pads = tuple((hi, lo) for lo, hi in pads)
            return pads

        return swapped

    for module in (qconv, qnnx):  # q_conv resolves "same" for linen, NNX in its __init__
        monkeypatch.setattr(module, "explicit_padding", make(module.explicit_padding))
    ids = [SAME_EVEN]
    failing = _assert_caught(*_run(capsys, tmp_path, ids), "output", ids)
    assert {r["params"] for r in failing} == {"linen", "nnx"}


def test_catches_reversed_kernel_spatial_axes_in_the_conversion(monkeypatch, capsys, tmp_path):
    original = convert._torch_weight_to_kernel

    def reversed_axes(weight: np.ndarray) -> np.ndarray:
        kernel = original(weight)
        if kernel.ndim == 2:
            return kernel
        return np.flip(kernel, axis=tuple(range(kernel.ndim - 2)))  # the bug

    monkeypatch.setattr(convert, "_torch_weight_to_kernel", reversed_axes)
    ids = [RECT]
    failing = _assert_caught(*_run(capsys, tmp_path, ids), "output", ids)
    kinds = {e["kind"] for r in failing for e in r["failing_elements"]}
    assert {r["params"] for r in failing} == {"linen", "nnx"}
    assert kinds <= {"output", "input grad", "weight grad"}


# ----------------------------------------------------------------------------- the engine


def test_compare_layer_names_array_element_values_and_allowance():
    case = BY_ID[LINEAR]
    want = {
        "y": np.array([[1.0, np.nan], [3.0, 4.0]], np.float32),
        "x_grad": np.array([[0.5, 0.25]], np.float32),
        "weight_grad": np.ones((2, 2), np.float32),
        "bias_grad": np.zeros(2, np.float64),
    }
    got = {
        "y": np.array([[1.0, np.nan], [3.0, 5.0]], np.float32),  # 1-bit: must be bit-equal
        "x_grad": np.array([[0.5, np.nan]], np.float32),  # a NaN torch does not have
        "weight_grad": np.ones((2, 2), np.float32) + 1e-7,  # within the tolerance
        "bias_grad": np.zeros(2, np.float32),  # another dtype
    }
    result = ParityResult(case.id, "linen", "float32", "cpu", right="linen", kind="layer")
    compare_layer(case, result, want, got, np.array([[0.3, 2.0]], np.float32))
    assert not result.ok and result.failures == 2
    assert result.problems == ["bias grad: torch float64[2], linen float32[2]"]
    described = [e.describe("torch", "linen") for e in result.failure_list]
    assert described[0].startswith("output at [1, 1]: torch=4.0, linen=5.0, |diff|=1")
    assert "allowed 0" in described[0] and "bit-equal" in described[0]
    assert described[1].startswith("input grad NaN at [0, 1]: input=2.0, torch=0.25")
    assert 0 < result.max_grad_diff < 1e-6 and result.max_forward_diff == 1.0


@pytest.mark.parametrize("threshold", [1.0, 0.0])
def test_cancellation_is_checked_on_each_side(threshold):
    """A gradient through |x| > threshold fails even when both sides agree on it."""
    case = LayerCase("activation-test", -1, threshold=threshold)
    x = np.array([[0.5, 1.0, 2.0]], np.float32)
    grad = {"y": np.sign(x), "x_grad": np.array([[1.0, 1.0, 1.0]], np.float32)}
    result = ParityResult(case.id, "linen", "float32", "cpu", right="linen", kind="layer")
    compare_layer(case, result, grad, grad, x)
    check_cancelled(case, result, x, {"torch": grad, "linen": grad})
    if threshold:
        assert result.failures == 2 and not result.ok
        text = result.failure_list[0].describe()
        assert text.startswith("input grad at [0, 2]: input=2.0, torch=1.0, must be exactly 0")
    else:
        assert result.ok


def test_catches_an_nnx_only_conversion_mistake(monkeypatch, capsys, tmp_path):
    """torch_to_nnx writing other values than torch_to_linen fails the NNX rows only."""
    original = convert._set_value

    def negated(variable: Any, value: Any) -> None:
        original(variable, -value)  # the bug: a sign lost on the way into NNX

    monkeypatch.setattr(convert, "_set_value", negated)
    ids = [LINEAR]
    failing = _assert_caught(*_run(capsys, tmp_path, ids), "converted kernel", ids)
    assert {r["params"] for r in failing} == {"nnx"}
    kinds = {e["kind"] for r in failing for e in r["failing_elements"]}
    assert "converted kernel" in kinds
