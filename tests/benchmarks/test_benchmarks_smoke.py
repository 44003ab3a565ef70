"""Smoke tests of ``python -m benchmarks``: it runs at a tiny size and writes sound JSON.

No timing is asserted (timings depend on the machine); what is checked is that every
part runs, the output is well-formed and complete, the implementations agree with
eager torch, and the small pieces of arithmetic (floor model, peak of an allocation
timeline, size parsing, saved-for-backward counts) are right.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitorch.quantizations as tq
import bitorch_jax.quantizations as jq
from benchmarks.__main__ import json_ready, parse_size
from benchmarks.cases import CASES, case_by_label
from benchmarks.floor import floor_seconds
from benchmarks.frameworks import check_agreement
from benchmarks.memory import jax_residuals, torch_residuals
from benchmarks.training import peak_from_events

ROOT = Path(__file__).resolve().parents[2]

# What each quantizer saves for backward, per element of a float32 input, by design
# (SPEC.md and the module docstrings): (total bytes, bytes that are not the input itself).
SAVED_FLOAT32 = {
    "sign": (0, 0),
    "approxsign": (4, 0),
    "swishsign": (4, 0),
    "steheaviside": (1, 1),
    "inputdorefa": (0, 0),
    "weightdorefa": (0, 0),
    "identity": (0, 0),
    "progressive_sign": (0, 0),
    "stesign": (1, 1),
    "steternary": (1, 1),
    "magnitudeawaresign": (4, 0),
    "xnorscaled": (4, 0),
    "larqdorefa": (4, 0),
}


def test_cases_cover_every_registered_quantizer() -> None:
    keys = sorted(case.key for case in CASES)
    assert keys == tq.quantization_names() == jq.quantization_names()


def test_traffic_is_at_least_forward_and_backward_arrays() -> None:
    # Every quantizer reads x and g and writes y and dx at least once.
    for case in CASES:
        reads, writes = case.traffic(4)
        assert reads >= 8 and writes >= 8, case.key
        assert reads >= writes, case.key


def test_unknown_quantizer_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="nosuch"):
        case_by_label("nosuch")


@pytest.mark.parametrize(
    ("reads", "writes", "expected"),
    [
        (8, 8, 3.0),  # two reads + two writes of float32: exactly the copy kernel
        (12, 8, 3.0 + 0.5),  # one more array read: half of the two-array read kernel
        (8, 0, 1.0),  # reads only: the read kernel
    ],
)
def test_floor_seconds_prices_reads_and_writes(reads: int, writes: int, expected: float) -> None:
    got = floor_seconds(reads=reads, writes=writes, itemsize=4, size=1000, copy_s=3.0, read_s=1.0)
    assert got == pytest.approx(expected)


def test_floor_seconds_never_prices_a_write_below_zero() -> None:
    got = floor_seconds(reads=8, writes=8, itemsize=4, size=10, copy_s=1.0, read_s=2.0)
    assert got == pytest.approx(2.0)


def test_peak_from_events_is_the_largest_running_sum_in_time_order() -> None:
    events = [(3, -50), (0, 100), (2, 70), (1, -40), (4, 10)]
    # time order: +100 -> 100, -40 -> 60, +70 -> 130, -50 -> 80, +10 -> 90
    assert peak_from_events(events) == 130
    assert peak_from_events([(0, -5)]) == 0


@pytest.mark.parametrize(("text", "value"), [("16", 16), ("2**10", 1024), (" 3 ** 2 ", 9)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["0", "2**", "1e6", "-4", "two"])
def test_parse_size_rejects_bad_text(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_json_ready_replaces_non_finite_floats() -> None:
    data = {"a": [1.0, float("nan")], "b": {"c": float("inf")}, "d": (np.float64(2.5), "x")}
    assert json_ready(data) == {"a": [1.0, None], "b": {"c": None}, "d": [2.5, "x"]}


def test_check_agreement_counts_real_differences() -> None:
    y = np.array([1.0, -1.0, 1.0, np.nan], np.float32)
    dx = np.array([0.5, 0.25, -2.0, np.nan], np.float32)
    same = check_agreement((y, dx), (y.copy(), dx.copy()), "float32")
    assert same["forward_mismatches"] == 0 and same["gradient_mismatches"] == 0
    y2, dx2 = y.copy(), dx.copy()
    y2[0], dx2[2] = -1.0, -1.9
    diff = check_agreement((y, dx), (y2, dx2), "float32")
    assert diff["forward_mismatches"] == 1 and diff["gradient_mismatches"] == 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_saved_for_backward_bytes(case) -> None:
    total, extra = SAVED_FLOAT32[case.key]
    t = torch_residuals(case, size=256)
    j = jax_residuals(case, size=256)
    assert (t["total_bytes_per_element"], t["extra_bytes_per_element"]) == (total, extra)
    assert (j["total_bytes_per_element"], j["extra_bytes_per_element"]) == (total, extra)
    assert j["vjp_closure_bytes_per_element"] == total


KEYS = ["sign", "approxsign", "steheaviside", "weightdorefa"]
IMPLS = ["jax", "jax_donated", "torch_eager"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """One tiny run of every part, as the command line does it."""
    tmp = tmp_path_factory.mktemp("bench")
    out, md = tmp / "result.json", tmp / "report.md"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [
        "--size",
        "2**10",
        "--repeats",
        "2",
        "--quantizers",
        ",".join(KEYS),
        "--implementations",
        ",".join(IMPLS),
        "--train-batch",
        "16",
        "--train-steps",
        "2",
        "--train-repeats",
        "1",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            *args,
            "--json",
            str(out),
            "--markdown",
            str(md),
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def no_constants(name: str) -> None:
        raise AssertionError(f"the JSON holds the non-standard constant {name}")

    return json.loads(out.read_text(), parse_constant=no_constants), md.read_text()


def test_quantizer_and_memory_parts_write_complete_json(tiny_run: tuple[dict, str]) -> None:
    result, markdown = tiny_run
    assert result["settings"]["size"] == 1024
    assert [q["key"] for q in result["quantizers"]] == KEYS
    for q in result["quantizers"]:
        assert q["errors"] == {}
        for name in [*IMPLS, "floor_copy_torch", "floor_read_torch", "floor_fresh_torch"]:
            stats = q["times"][name]
            assert stats["repeats"] == 2
            assert 0 < stats["min_s"] <= stats["median_s"] <= stats["max_s"]
        assert q["floor"]["floor_s"] > 0
        assert q["floor"]["bytes_read_per_element"] == case_by_label(q["key"]).traffic(4)[0]
        for ratio in ("jax/floor", "torch_eager/jax", "jax_donated/floor"):
            assert math.isfinite(q["ratios"][ratio]) and q["ratios"][ratio] > 0
        for name in ("jax", "jax_donated"):
            agreement = q["agreement_with_torch_eager"][name]
            assert agreement["forward_mismatches"] == 0, (q["key"], name)
            assert agreement["gradient_mismatches"] == 0, (q["key"], name)
    assert [r["key"] for r in result["residuals"]] == KEYS
    residual_targets = [t for t in result["targets"] if t["target"].startswith("jax residual")]
    assert len(residual_targets) == len(KEYS) and all(t["met"] for t in residual_targets)
    speed_targets = [t for t in result["targets"] if "floor" in t["target"]]
    assert len(speed_targets) == 2 * len(KEYS)
    assert all(t["met"] in (True, False) for t in speed_targets)
    assert result["machine"]["versions"]["jax"]
    assert "| quantizer | floor ms |" in markdown and "## Targets" in markdown


def test_training_part_reports_both_frameworks(tiny_run: tuple[dict, str]) -> None:
    pytest.importorskip("examples.binary_net", reason="examples/binary_net.py is not present")
    result, markdown = tiny_run
    training = result["training"]
    assert "error" not in training, training
    for name in ("torch_eager", "jax"):
        assert training[name]["steps_per_s"] > 0
        assert training[name]["memory"]["peak_bytes"] > 0
    # XLA plans every buffer of the step: the parts must add up.
    mem = training["jax"]["memory"]
    assert mem["peak_bytes"] == (
        mem["argument_bytes"] + mem["output_bytes"] + mem["temp_bytes"] - mem["alias_bytes"]
    )
    assert training["jax"]["compile_s"] is not None
    assert "## Training step" in markdown


def _x64_scope():
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def test_check_agreement_compares_float64_jax_arrays_exactly() -> None:
    import jax.numpy as jnp
    import torch

    third = 1.0 / 3.0
    with _x64_scope():
        y_jax = jnp.asarray([third, 1.0], dtype=jnp.float64)
        dx_jax = jnp.asarray([0.5, third], dtype=jnp.float64)
        y_torch = torch.tensor([third, 1.0], dtype=torch.float64)
        dx_torch = torch.tensor([0.5, third], dtype=torch.float64)
        same = check_agreement((y_torch, dx_torch), (y_jax, dx_jax), "float64")
        # 1/3 rounded through float32 is not the float64 1/3: must count as a mismatch.
        y_off = jnp.asarray([np.float32(third), 1.0], dtype=jnp.float64)
        off = check_agreement((y_torch, dx_torch), (y_off, dx_jax), "float64")
    assert same["forward_mismatches"] == 0 and same["gradient_mismatches"] == 0
    assert off["forward_mismatches"] == 1


def test_reports_regenerate_from_saved_json(tiny_run: tuple[dict, str], tmp_path: Path) -> None:
    from benchmarks.__main__ import main

    result, markdown = tiny_run
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(result))
    again = tmp_path / "again.md"
    assert main(["--from-json", str(saved), "--markdown", str(again)]) == 0
    assert again.read_text() == markdown


def test_tiny_run_reports_hold_only_numbers_of_its_own_result(tiny_run: tuple[dict, str]) -> None:
    from benchmarks.report import text_report
    from tests.benchmarks.figures import derivable_numbers, unexplained_numbers

    result, markdown = tiny_run
    allowed = derivable_numbers(result)
    assert unexplained_numbers(text_report(result) + "\n" + markdown, allowed) == []
    assert "GPU: not requested (--device cpu)" in markdown
