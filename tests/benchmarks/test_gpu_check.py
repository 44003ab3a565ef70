"""``scripts/gpu-check``: its CPU mode runs the same steps, records them and writes a
summary; a hanging step is stopped; a budget too small for a step is reported.

The CPU-mode run skips the slowest steps (torch.compile, the pytest parity matrix and the
ResnetE18 training-step benchmark, whose command tests/benchmarks/test_resnete18_step.py
runs at the same tiny size) so the whole file stays short; ``--list`` shows their
commands.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check"
SLOW_STEPS = ("resnete18", "benchmarks-compile", "parity-pytest")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("gpu_check_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check_script", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check_script"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


def test_script_is_executable_python() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_list_shows_the_gpu_commands() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--list", "--out", "/nonexistent-not-created"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = {line.split(" ", 1)[0]: line for line in done.stdout.splitlines()}
    assert list(lines) == [
        "env", "nvidia-smi", "parity", "layers", "models", "benchmarks", *SLOW_STEPS,
    ]  # fmt: skip
    assert "-m parity_tests --devices gpu" in lines["parity"] and "--json" in lines["parity"]
    assert "test_layer_parity.py -k gpu" in lines["layers"]
    assert "-m benchmarks --device gpu" in lines["benchmarks"]
    assert "torch_compile" in lines["benchmarks-compile"]
    assert "-m parity_tests models" in lines["models"] and "--json" in lines["models"]
    assert "-m benchmarks.resnete18_step --device gpu" in lines["resnete18"]
    assert not Path("/nonexistent-not-created").exists()


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu-check-out")
    skips = [arg for step in SLOW_STEPS for arg in ("--skip", step)]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu", "--out", str(out), "--budget", "100", *skips],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert time.monotonic() - start < 120
    return out, done


def test_cpu_mode_writes_every_output_and_a_summary(cpu_run) -> None:
    out, done = cpu_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    expected = {
        "env.json", "env.log", "parity.json", "parity.log", "layers.log", "layers-junit.xml",
        "benchmarks.json", "benchmarks.md", "benchmarks.log", "summary.json", "summary.txt",
        "models.json", "models.log",
    }  # fmt: skip
    assert expected <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cpu" and summary["ok"] is True
    assert summary["total_s"] < summary["budget_s"] == 100
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status == {
        "env": "passed",
        "nvidia-smi": status["nvidia-smi"],  # passed or skipped: depends on the machine
        "parity": "passed",
        "layers": "passed",
        "models": "passed",
        "benchmarks": "passed",
        "resnete18": "skipped",
        "benchmarks-compile": "skipped",
        "parity-pytest": "skipped",
    }
    assert status["nvidia-smi"] in ("passed", "skipped")
    for step in summary["steps"]:
        if step["status"] == "passed":
            assert step["rc"] == 0 and 0 < step["seconds"] <= step["timeout_s"], step
            assert (out / step["log"]).exists()
    assert "2 skipped" in next(s["note"] for s in summary["steps"] if s["name"] == "layers")
    assert summary["env"]["modules"]["torch"]["ok"] and summary["env"]["jax"]["devices"]
    result = json.loads((out / "benchmarks.json").read_text())
    assert result["settings"]["device"] == "cpu" and len(result["quantizers"]) == 2
    assert "GPU: not requested (--device cpu)" in (out / "benchmarks.md").read_text()
    assert json.loads((out / "parity.json").read_text())["ok"] is True
    models = json.loads((out / "models.json").read_text())
    assert models["ok"] is True and models["models"] == ["LeNet"] and len(models["results"]) == 2
    text = (out / "summary.txt").read_text()
    assert "RESULT: OK" in text and "benchmarks-compile" in text


def test_cpu_mode_prints_versions_and_devices_first_and_a_summary_last(cpu_run) -> None:
    _, done = cpu_run
    head = done.stdout[: done.stdout.index("[nvidia-smi]")]
    assert "torch " in head and "cuda available" in head and "jax.devices() = " in head
    assert done.stdout.rstrip().splitlines()[-1].startswith("RESULT: OK")


def test_a_hanging_step_is_stopped_with_its_children(tmp_path: Path) -> None:
    script = _script()
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(120)\n"
    )
    start = time.monotonic()
    record = script.run_command(
        [sys.executable, "-c", code], log=tmp_path / "hang.log", timeout_s=3, env=_env()
    )
    assert record["timed_out"] is True and time.monotonic() - start < 30
    child = int(pid_file.read_text())
    for _ in range(50):
        try:
            state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            break
        if state == "Z":  # dead, waiting to be reaped by init
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the step's child process {child} is still running")
    status, note = script.judge(
        script.Step("hang", [], 3, 1, []), {**record, "timeout_s": 3}, tmp_path, cpu=True
    )
    assert status == "timeout" and "3 s" in note


def test_a_budget_too_small_for_a_step_is_reported_not_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu", "--out", str(tmp_path), "--budget", "5"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    ran = [s["name"] for s in summary["steps"] if s["status"] not in ("no-time", "skipped")]
    assert set(ran) <= {"nvidia-smi"} and summary["ok"] is False  # a 2 s step may still fit
    assert summary["steps"][0]["status"] == "no-time"
    assert "not enough time left in the budget" in (tmp_path / "summary.txt").read_text()
