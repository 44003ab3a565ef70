"""Helpers of the report tests: a fake benchmark result, and which numbers a report of a
result may contain (see ``test_report_figures.py``)."""

from __future__ import annotations

import math
import random
import re
import statistics
from pathlib import Path
from typing import Any

from benchmarks.analysis import analysis_markdown, intro_markdown, method_markdown
from benchmarks.report import evaluate_targets, markdown_report, text_report

ROOT = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}

# Made-up quantizers: nothing in the generators may know their names.
FAKE_CASES = [
    ("zebraquant", {"k": 3}, 13, 9),
    ("plainpass", {}, 9, 9),
    ("tanhmax", {"bits": 5}, 13, 9),
]
IMPLEMENTATIONS = ("jax", "jax_donated", "torch_eager", "torch_compile")


def _times(rng: random.Random, base: float, page_faults: float) -> dict[str, Any]:
    median = base * rng.uniform(1.07, 3.91)
    return {
        "median_s": median,
        "min_s": median * 0.913,
        "max_s": median * 1.377,
        "iqr_s": median * 0.0413,
        "repeats": 7,
        "page_faults_per_call": page_faults,
    }


def _fake_quantizer(
    rng: random.Random, key: str, params: dict, reads: int, writes: int, size: int, device: str
) -> dict[str, Any]:
    label = key + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
    copy_s, read_s = rng.uniform(0.0131, 0.0139), rng.uniform(0.00611, 0.00689)
    fresh_s = copy_s + rng.uniform(0.0171, 0.0179)
    floor_s = size * (reads * read_s + writes * (copy_s - read_s)) / (2 * size * 4)
    times = {name: _times(rng, floor_s, rng.choice([4099.0, 8203.0])) for name in IMPLEMENTATIONS}
    for kind, value in (("copy", copy_s), ("read", read_s), ("fresh", fresh_s)):
        times[f"floor_{kind}_torch"] = _times(rng, value, 0.0)
        times[f"floor_{kind}_torch"]["median_s"] = value
    med = {name: times[name]["median_s"] for name in IMPLEMENTATIONS}
    overhead = (fresh_s - copy_s) / 2
    ratios = {}
    for name in ("jax", "jax_donated"):
        ratios[f"{name}/floor"] = med[name] / floor_s
        ratios[f"{name}/floor_with_fresh_outputs"] = med[name] / (floor_s + 2 * overhead)
        for other in ("torch_eager", "torch_compile"):
            ratios[f"{other}/{name}"] = med[other] / med[name]
    xla = (reads + writes) + rng.uniform(0.11, 0.89)
    return {
        "quantizer": label,
        "key": key,
        "params": params,
        "size": size,
        "dtype": "float32",
        "device": device,
        "first_call_s": {name: med[name] + 0.417 for name in IMPLEMENTATIONS},
        "compile_s": {"jax": 0.417, "jax_donated": 0.417, "torch_compile": 0.417},
        "times": times,
        "floor": {
            "bytes_read_per_element": reads,
            "bytes_written_per_element": writes,
            "floor_s": floor_s,
            "copy_s": copy_s,
            "copy_library": "torch",
            "read_s": read_s,
            "read_library": "torch",
            "fresh_s": fresh_s,
            "fresh_library": "torch",
            "fresh_output_overhead_s": overhead,
            "floor_with_fresh_outputs_s": floor_s + 2 * overhead,
            "bandwidth_GBps": (reads + writes) * size / floor_s / 1e9,
            "why": f"reads {reads} and writes {writes} bytes in this made-up model",
        },
        "ratios": ratios,
        "errors": {},
        "agreement_with_torch_eager": {
            name: {"forward_mismatches": 0, "gradient_mismatches": 0, "gradient_max_abs_diff": 0.0}
            for name in ("jax", "jax_donated", "torch_compile")
        },
        "xla_program": {
            "jax": {
                "bytes_accessed_per_element": xla,
                "flops_per_element": 3.0,
                "transcendentals_per_element": rng.choice([0.0, 1.0]),
                "fusions": 3,
                "copies": rng.choice([0, 1]),
            },
            "jax_donated": {
                "bytes_accessed_per_element": xla - 4.0,
                "flops_per_element": 3.0,
                "transcendentals_per_element": 0.0,
                "fusions": 3,
                "copies": 0,
            },
        },
    }


def fake_result(device: str = "cpu", *, gpu_available: bool = True) -> dict[str, Any]:
    """A complete result with distinctive numbers, for ``device`` ``cpu`` or ``gpu``."""
    rng = random.Random(4711)
    size = 3_145_739
    qs = [_fake_quantizer(rng, *c, size, device) for c in FAKE_CASES]
    reuse = [_fake_quantizer(rng, *c, size, device) for c in FAKE_CASES]
    gpu_name = "FakeGPU Z9" if device == "gpu" else None
    status = {
        "requested": device,
        "available": gpu_available or device == "cpu",
        "torch": f"cuda:0 {gpu_name}" if device == "gpu" else "cpu",
        "jax": "cuda:0" if device == "gpu" else "cpu:0",
        "reason": None,
    }
    if device == "gpu" and not gpu_available:
        status.update(torch=None, jax=None, reason="torch: no CUDA device (fake)")
        qs, reuse = [], []
    result: dict[str, Any] = {
        "schema": "bitorch-benchmarks/1",
        "command": f"python -m benchmarks --device {device} --size 3145739 --repeats 7",
        "settings": {
            "size": size,
            "dtype": "float32",
            "device": device,
            "repeats": 7,
            "quantizers": [c[0] for c in FAKE_CASES],
            "implementations": list(IMPLEMENTATIONS),
            "malloc": "both",
            "train_batch": 61,
            "train_steps": 19,
        },
        "machine": {
            "date": "2031-07-19T03:41:59+00:00",
            "cpu_model": "Fake CPU 4471",
            "cpu_family_model_stepping": "6/143/8",
            "avx512": True,
            "cpus": 6,
            "threads_per_core": "1",
            "l3_cache": "97 MiB (1 instance)",
            "hypervisor": None,
            "memory_gib": 61.3,
            "gpu": gpu_name if gpu_available else None,
            "platform": "Linux-fake",
            "python": "3.12.9",
            "versions": {
                "torch": "2.11.0",
                "jax": "0.11.0",
                "jaxlib": "0.11.0",
                "flax": "0.12.1",
                "numpy": "2.4.6",
            },
            "jax_devices": ["cuda:0"] if device == "gpu" and gpu_available else ["cpu:0"],
            "torch_threads": 6,
            "env": {},
            "load_average": [4.17, 3.91, 3.53],
        },
        "device": status,
        "warm_up": {"jax_init_s": 0.0937},
        "quantizers": qs,
        "residuals": [
            {
                "quantizer": q["quantizer"],
                "key": q["key"],
                **{
                    name: {
                        "saved": [],
                        "total_bytes_per_element": 0.0,
                        "extra_bytes_per_element": 0.0,
                    }
                    for name in ("torch_eager", "torch_compile", "jax")
                },
            }
            for q in qs
        ],
        "training": {
            "batch_size": 61,
            "steps_per_block": 19,
            "torch_eager": {
                "first_step_s": 0.0791,
                "step_median_s": 0.00617,
                "step_min_s": 0.00593,
                "steps_per_s": 1 / 0.00617,
                "compile_s": None,
                "memory": {"method": "fake", "peak_bytes": 3_441_113},
            },
            "jax": {
                "first_step_s": 1.4731,
                "step_median_s": 0.00353,
                "step_min_s": 0.00341,
                "steps_per_s": 1 / 0.00353,
                "compile_s": 1.4696,
                "memory": {"method": "fake", "peak_bytes": 3_337_007},
            },
        },
        "quantizers_malloc_reuse": {"machine_env": {}, "quantizers": reuse},
        "load_average_end": [4.29, 3.97, 3.61],
    }
    result["targets"] = evaluate_targets(result)
    return result


def all_reports(result: dict[str, Any]) -> str:
    """Everything ``python -m benchmarks`` prints and writes as prose or tables."""
    block = markdown_report(
        result,
        intro=intro_markdown(result),
        method=method_markdown(result),
        analysis=analysis_markdown(result),
    )
    return text_report(result) + "\n" + block


# Fields the reports print with one or with no decimal (everything else: ``:g`` or two).
ONE_DECIMAL = {"bandwidth_GBps", "steps_per_s"}
NO_DECIMALS = {"page_faults_per_call"}


def _formats(value: float, field: str = "") -> set[str]:
    """``value`` as the reports write numbers: ``:g`` or two decimals, seconds as
    milliseconds and bytes as MiB (two decimals); one or no decimal for a few fields."""
    out = set()
    for v in {value, abs(value)}:
        out |= {f"{v:g}", f"{v:.2f}", f"{v * 1e3:.2f}", f"{v / 2**20:.2f}"}
        if field in ONE_DECIMAL:
            out.add(f"{v:.1f}")
        if field in NO_DECIMALS:
            out.add(f"{v:.0f}")
        if float(v).is_integer():
            out.add(str(int(v)))
    return out


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v, (*path, "*"))]
    return [(path, value)]


def derivable_numbers(result: dict[str, Any]) -> set[str]:
    """Every number text the reports may contain for ``result`` (see the module doc)."""
    allowed: set[str] = set()
    by_path: dict[tuple, list[float]] = {}
    for path, value in _leaves(result):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                allowed |= _formats(value, str(path[-1]))
                by_path.setdefault(path, []).append(value)
        else:
            allowed |= set(NUMBER.findall(str(value)))
    for path, values in by_path.items():
        if len(values) > 1:
            allowed |= _formats(statistics.median(values), str(path[-1]))
    for q in result.get("quantizers", []):
        allowed.add(str(q["size"] * ITEMSIZE[q["dtype"]] // 4096))
        floor = q["floor"]
        allowed.add(str(floor["bytes_read_per_element"] + floor["bytes_written_per_element"]))
    # Counts: targets met per target (at most one per quantizer), results compared.
    qs = result.get("quantizers", [])
    counts = max(len(qs), sum(len(q.get("agreement_with_torch_eager", {})) for q in qs))
    allowed |= {str(n) for n in range(counts + 1)}
    return allowed


def unexplained_numbers(text: str, allowed: set[str]) -> list[str]:
    """The numbers in ``text`` not in ``allowed``, each with some context."""
    return [
        f"{m.group()!r} in ...{text[max(0, m.start() - 50) : m.end() + 30]!r}..."
        for m in NUMBER.finditer(text)
        if m.group() not in allowed
    ]
