"""``python -m benchmarks.resnete18_step`` at tiny settings: it runs JAX and torch eager
in their own processes and writes sound JSON and a Markdown section (timings themselves
depend on the machine and are only checked to be positive and finite).

torch.compile is not run here (a cold inductor compile of ResnetE18 takes minutes on a
small CPU); ``scripts/gpu-check`` runs it on the GPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.resnete18_step import (
    BEGIN_MARKER,
    END_MARKER,
    markdown_section,
    merge_section,
    text_table,
)

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("jax", "torch_eager")
HAND_WRITTEN = "# Benchmarks\n\nhand-written notes\n"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("resnete18")
    md = out / "BENCH.md"
    md.write_text(HAND_WRITTEN + BEGIN_MARKER + "\nstale\n" + END_MARKER + "\n\nmore notes\n")
    cmd = [
        sys.executable, "-m", "benchmarks.resnete18_step", "--batch", "2", "--image", "8",
        "--steps", "2", "--warmup", "0", "--frameworks", ",".join(FRAMEWORKS),
        "--torch-threads", "1", "--quiet", "--json", str(out / "r.json"), "--markdown", str(md),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "r.json").read_text()), md.read_text(), done.stdout


def _torch_parameters() -> int:
    from bitorch.models import ResnetE18

    return sum(p.numel() for p in ResnetE18((1, 3, 8, 8), num_classes=10).parameters())


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_every_framework_ran_in_its_own_process_with_finite_numbers(bench) -> None:
    result, _, _ = bench
    assert result["schema"] == "bitorch-resnete18-step/1" and "partial" not in result
    assert result["settings"]["batch"] == 2 and result["settings"]["image"] == 8
    runs = result["runs"]
    assert [r["framework"] for r in runs] == list(FRAMEWORKS)
    for run in runs:
        assert run["ok"] is True, run
        assert run["variant"] == "binary"
        assert len(run["step_times_s"]) == 2 and all(_positive(t) for t in run["step_times_s"])
        for key in ("first_call_s", "step_median_s", "steps_per_s", "process_wall_s"):
            assert _positive(run[key]), (run["framework"], key, run[key])
        assert run["steps_per_s"] == pytest.approx(1 / run["step_median_s"])
        assert run["compile_s"] == pytest.approx(run["first_call_s"] - run["step_median_s"])
        assert math.isfinite(run["loss_first"]) and math.isfinite(run["loss_last"])
        assert run["parameters"] == _torch_parameters()
        mem = run["memory"]
        assert _positive(mem["rss_peak_whole_run_mib"]) and _positive(
            mem["rss_before_first_call_mib"]
        )
        assert mem["rss_growth_whole_run_mib"] >= 0
    xla = runs[0]["memory"]["xla_memory_analysis"]
    assert _positive(xla["peak_mib"]) and _positive(xla["temp_mib"])
    assert runs[1]["torch_threads"] == 1


def test_ratios_and_targets_follow_from_the_runs(bench) -> None:
    result, _, _ = bench
    jax_run, eager = result["runs"]
    assert result["ratios"]["jax/torch_eager"] == pytest.approx(
        jax_run["steps_per_s"] / eager["steps_per_s"]
    )
    assert result["ratios"]["jax/torch_compile"] is None  # not run
    targets = {t["target"]: t for t in result["targets"]}
    eager_target = targets["jax steps/s >= 1.5 x torch eager"]
    assert eager_target["met"] is (result["ratios"]["jax/torch_eager"] >= 1.5)
    assert targets["jax steps/s >= 1 x torch.compile"]["met"] is None


def test_markdown_section_replaces_only_its_block(bench) -> None:
    result, text, stdout = bench
    assert text.startswith(HAND_WRITTEN) and text.endswith("\n\nmore notes\n")
    assert "stale" not in text and text.count(BEGIN_MARKER) == text.count(END_MARKER) == 1
    block = text[text.index(BEGIN_MARKER) : text.index(END_MARKER)]
    assert "## ResnetE18 training step" in block and result["command"] in block
    assert f"| binary | jax | {result['runs'][0]['steps_per_s']:.3f} |" in block
    assert block == markdown_section(result)[: len(block)]
    assert text_table(result).splitlines()[0].split()[:3] == ["network", "framework", "steps/s"]
    assert "jax" in stdout


def test_merge_appends_to_a_file_without_markers_and_refuses_broken_ones() -> None:
    block = BEGIN_MARKER + "\nnew\n" + END_MARKER + "\n"
    assert merge_section("notes\n", block) == "notes\n\n" + block
    with pytest.raises(ValueError, match="1 begin and 0 end"):
        merge_section("x\n" + BEGIN_MARKER + "\n", block)


def test_xla_flags_control_is_a_finding_not_the_jax_row() -> None:
    """The ``--explain`` XLA:CPU control row is reported on its own: the ratios and targets
    come from the run with XLA's defaults, the finding from both."""
    from benchmarks.resnete18_step import XLA_CPU_CONTROL_FLAGS, _evaluate, _findings

    def run(framework: str, seconds: float, flags: str | None = None) -> dict:
        return {"ok": True, "framework": framework, "variant": "binary", "step_median_s": seconds,
                "steps_per_s": 1 / seconds, "torch_threads_setting": None,
                "xla_flags_setting": flags}  # fmt: skip

    runs = [run("jax", 2.0), run("torch_eager", 1.5), run("jax", 1.2, XLA_CPU_CONTROL_FLAGS)]
    result = {"settings": {"torch_threads": None, "batch": 2, "image": 8}, "runs": runs,
              "machine": {}}  # fmt: skip
    result.update(_evaluate(result))
    assert result["ratios"]["jax/torch_eager"] == pytest.approx(0.75)  # the default run
    (line,) = [f for f in _findings(result) if f.startswith("XLA:CPU control")]
    assert f"XLA_FLAGS={XLA_CPU_CONTROL_FLAGS}" in line
    assert "1200 ms against 2000 ms" in line and "JAX/eager speed 1.25x" in line
