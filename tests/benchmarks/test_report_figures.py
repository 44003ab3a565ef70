"""Generated reports state only what their run measured.

A fake result (the shape ``python -m benchmarks --json`` writes) with distinctive
numbers and made-up quantizer names goes through every report generator; every number
in the output must be derivable from that result:

- a number in one of the result's values, formatted as the reports format (``:g`` or
  two decimals, seconds as ms, bytes as MiB; bandwidth and steps/s with one decimal,
  page faults with none), or a number written in one of its strings
  (CPU model, command, date, target names, a quantizer's ``why``);
- the median over quantizers of one field (the findings quote such medians);
- the pages of one array (elements x bytes per element / 4096, the page-fault table),
  and the floor's bytes per element (read + written);
- a small count (how many targets were met, how many results compared): an integer no
  larger than the number of quantizers or of compared results.

A figure from another run or a hard-coded explanation ("26.4 against 23.5 ms") fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import (
    BEGIN_MARKER,
    END_MARKER,
    device_line,
    markdown_report,
    merge_markdown,
    text_report,
)
from tests.benchmarks.figures import (
    ROOT,
    all_reports,
    derivable_numbers,
    fake_result,
    unexplained_numbers,
)

# Figures the hand-written notes quote from other runs and experiments.
OTHER_RUNS = ["85", "24", "26.4", "23.5", "2.3", "1.8", "7.4", "34.06", "20.5", "32", "16384"]


def test_the_checker_catches_a_figure_from_another_run() -> None:
    result = fake_result()
    allowed = derivable_numbers(result)
    assert [n for n in OTHER_RUNS if n in allowed] == []  # the fake stays distinctive
    text = all_reports(result) + "\nwas slower here, 26.4 against 23.5 ms; within 2.3 ulps"
    found = [line.split()[0] for line in unexplained_numbers(text, allowed)]
    assert found == ["'26.4'", "'23.5'", "'2.3'"]


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_reports_contain_only_numbers_derivable_from_the_result(device: str) -> None:
    result = fake_result(device)
    text = all_reports(result)
    assert "zebraquant(k=3)" in text and "## Findings of this run" in text
    assert unexplained_numbers(text, derivable_numbers(result)) == []


def test_reports_of_a_run_without_its_gpu_contain_only_its_numbers() -> None:
    result = fake_result("gpu", gpu_available=False)
    assert unexplained_numbers(all_reports(result), derivable_numbers(result)) == []


def test_generators_name_no_quantizer() -> None:
    """A quantizer added to the table needs no change in the generators."""
    import bitorch.quantizations as tq
    from benchmarks.cases import CASES

    source = "\n".join(
        (ROOT / "benchmarks" / name).read_text() for name in ("analysis.py", "report.py")
    )
    keys = set(tq.quantization_names()) | {case.key for case in CASES}
    named = [k for k in keys if re.search(rf"\b{re.escape(k)}\b", source, re.IGNORECASE)]
    assert named == []


def test_gpu_line_says_measured_on_the_device_for_a_gpu_result() -> None:
    result = fake_result("gpu")
    line = device_line(result)
    assert line.startswith("GPU: measured on") and "FakeGPU Z9" in line and "cuda:0" in line
    text = all_reports(result)
    assert "not measured" not in text and "not requested" not in text
    assert line in text_report(result)


def test_gpu_line_for_cpu_runs_and_for_a_missing_gpu() -> None:
    assert device_line(fake_result("cpu")).startswith("GPU: not requested (--device cpu)")
    missing = fake_result("gpu", gpu_available=False)
    line = device_line(missing)
    assert line == ("GPU: requested (--device gpu) but not measured: torch: no CUDA device (fake)")
    assert line in all_reports(missing)


def test_markdown_block_replaces_only_the_text_between_the_markers() -> None:
    block = markdown_report(fake_result())
    assert block.startswith(BEGIN_MARKER) and block.rstrip().endswith(END_MARKER)
    before = "# Title\n\nwritten by hand: 85 ms\n\n"
    after = "\n\n## Notes written by hand\n\n26.4 against 23.5 ms\n"
    merged = merge_markdown(before + BEGIN_MARKER + "\nold report\n" + END_MARKER + after, block)
    assert merged == before + block.rstrip("\n") + after
    assert merge_markdown(merged, block) == merged  # idempotent
    with pytest.raises(ValueError, match="refusing to overwrite"):
        merge_markdown("# Notes written by hand only\n", block)
    assert merge_markdown(None, block) == "# Benchmarks\n\n" + block


def test_benchmarks_md_keeps_its_hand_written_notes_when_regenerated() -> None:
    text = (ROOT / "BENCHMARKS.md").read_text()
    assert text.count(BEGIN_MARKER) == 1 and text.count(END_MARKER) == 1
    notes = text[text.index(END_MARKER) + len(END_MARKER) :]
    assert "Notes written by hand" in notes
    merged = merge_markdown(text, markdown_report(fake_result()))
    assert merged.endswith(notes)
    assert merged.startswith(text[: text.index(BEGIN_MARKER)])


def test_device_gpu_without_a_gpu_reports_why_and_exits_3(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--device", "gpu", "--only", "quantizers",
         "--size", "64", "--json", str(out), "--markdown", str(md), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["device"]["available"] is False and result["device"]["reason"]
    assert "quantizers" not in result
    line = device_line(result)
    assert line.startswith("GPU: requested (--device gpu) but not measured: ")
    assert line in proc.stdout and line in md.read_text()


def test_markdown_option_refuses_a_file_without_markers(tmp_path: Path) -> None:
    from benchmarks.__main__ import main

    hand = tmp_path / "notes.md"
    hand.write_text("# Written by hand\n")
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(fake_result()))
    assert main(["--from-json", str(saved), "--markdown", str(hand)]) == 2
    assert hand.read_text() == "# Written by hand\n"
