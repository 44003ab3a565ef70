"""``python -m parity_tests``: options, output, JSON, exit codes, progress, GPU handling."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import parity_tests.api as api
import parity_tests.backends as backends
from bitorch_common.quantizers import row
from parity_tests.__main__ import _Progress, main
from parity_tests.cases import registry_cases

GPU, GPU_REASON = backends.gpu_status()


def test_a_small_run_passes_and_writes_json(capsys, tmp_path):
    path = tmp_path / "out.json"
    argv = ["--quantizers", "sign,weightdorefa", "--dtypes", "bfloat16", "--devices", "cpu"]
    code = main([*argv, "--size", "500", "--seed", "7", "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert err == ""  # stderr is not a terminal here: no progress indicator
    header = next(line for line in out.splitlines() if line.startswith("quantizer"))
    assert header.split("  ")[0] == "quantizer" and header.rstrip().endswith("verdict")
    rows = [line.split() for line in out.splitlines() if line.startswith(("sign ", "weightdorefa"))]
    assert len(rows) == 1 + len(row("weightdorefa").variants)  # sign, every weightdorefa bits
    assert all(row[-1] == "PASS" for row in rows)
    assert "PASS: everything matches" in out
    data = json.loads(path.read_text())
    assert data["ok"] is True and data["seed"] == 7 and data["size"] == 500
    assert {r["dtype"] for r in data["results"]} == {"bfloat16"}
    # weightdorefa compares three arrays (main, with one NaN, all zeros)
    # sign: the main array, an all-subnormal and an all-zero one; weightdorefa (tensor-wide)
    # also one with NaN and two asymmetric finite ones
    assert {r["elements"] for r in data["results"]} == {3 * 500, 6 * 500}


def test_default_devices_mention_the_gpu(capsys):
    assert main(["--quantizers", "identity", "--dtypes", "float64", "--size", "50"]) == 0
    out = capsys.readouterr().out
    if GPU:
        assert "devices: cpu, gpu" in out
    else:
        assert "GPU: not present, skipped" in out


def test_requesting_an_absent_gpu_is_reported_and_fails(capsys):
    if GPU:
        pytest.skip(f"a GPU is present ({GPU_REASON}); this checks the no-GPU message")
    assert main(["--devices", "gpu", "--quantizers", "sign", "--size", "10"]) == 1
    out = capsys.readouterr().out
    assert "GPU: requested but not present, skipped" in out
    assert "Nothing was compared." in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--quantizers", "nope"],
        ["--dtypes", "int8"],
        ["--dtypes", "float128x"],
        ["--devices", "tpu"],
        ["--size", "-1"],
        ["--size", "many"],
        ["--plugin", "no_colon"],
        ["--plugin", "no_such_module_xyz:CASES"],
        ["--plugin", "json:dumps"],
        ["--bogus"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "error" in err


def test_list_prints_every_case(capsys):
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [c.label for c in registry_cases()]


def test_progress_indicator():
    stream = io.StringIO()
    progress = _Progress(stream, enabled=True)
    progress(0, 2, "sign() float32")
    progress(1, 2, "sign() float64")
    progress(2, 2, "done")
    text = stream.getvalue()
    assert "[1/2] sign() float32" in text and "[2/2] sign() float64" in text
    assert text.endswith("\r")
    quiet = io.StringIO()
    _Progress(quiet, enabled=False)(0, 2, "x")
    assert quiet.getvalue() == ""


def test_gpu_code_path_with_the_cpu_standing_in(monkeypatch):
    """The GPU rows (cross-framework and each framework CPU vs GPU), exercised on a machine
    without a GPU by letting the CPU stand in for it. Real GPU runs are in the matrix."""
    monkeypatch.setattr(backends, "_torch_device", lambda device: "cpu")
    monkeypatch.setattr(backends, "_jax_device", lambda device: backends.jax.devices("cpu")[0])
    monkeypatch.setattr(api, "gpu_status", lambda: (True, "CPU standing in"))
    case = registry_cases(["swishsign"])[1]
    report = api.run_cases([case], dtypes=["float32"], devices=["gpu"], shape=(300,))
    assert [r.device for r in report] == ["gpu", "torch cpu/gpu", "jax cpu/gpu"]
    assert [(r.left, r.right) for r in report][1:] == [
        ("torch:cpu", "torch:gpu"),
        ("jax:cpu", "jax:gpu"),
    ]
    assert report.ok, str(report)
    assert report[1].max_grad_diff == 0 and report[2].max_grad_diff == 0


def test_float64_runs_in_x64_mode_only_inside_the_runner():
    import jax

    assert not jax.config.jax_enable_x64
    case = registry_cases(["swishsign"])[0]
    (result,) = api.run_case(case, dtype="float64", shape=(50,))
    assert result.ok and result.max_grad_diff < 1e-12  # float32 would differ by ~1e-7
    assert not jax.config.jax_enable_x64
    x = backends.run_jax(
        backends.jax_runner(case.jax_fn),
        [np.ones(3)],
        [np.ones(3)],
        "cpu",
    )
    assert x[0][0].dtype == "float64" and x[0][1].dtype == "float64"
    assert not jax.config.jax_enable_x64
