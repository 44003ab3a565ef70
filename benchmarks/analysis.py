"""The prose of the generated report: findings computed from the run's own result.

Every figure written here is read from the result dict (what ``--json`` writes) or
computed from it (a count, a median over quantizers). No figure of another run and no
quantizer name appears in this module: a quantizer added to the benchmark's table gets
the same findings as the others, with no change here. Explanations that rest on other
measurements (experiments, earlier runs) are written by hand in BENCHMARKS.md, outside
the generated block, with their date and command.

>>> method_markdown({})
''
>>> analysis_markdown({})
''
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.report import fmt_ms

__all__ = ["intro_markdown", "method_markdown", "analysis_markdown"]

# Busy machine: a 1-minute load average above this share of the logical CPUs.
BUSY_LOAD_SHARE = 0.5


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def _names(labels: list[str]) -> str:
    return ", ".join(labels) if labels else "none"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def intro_markdown(result: dict[str, Any]) -> str:
    """Which targets were met (and for which quantizers not), and a busy-machine warning."""
    lines = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in result.get("targets", []):
        groups.setdefault(t["target"], []).append(t)
    if groups:
        lines += ["## Summary of this run", "", "Targets (per quantizer):", ""]
        for name, rows in groups.items():
            met = sum(1 for r in rows if r["met"])
            known = sum(1 for r in rows if r["met"] is not None)
            missed = [r["quantizer"] for r in rows if r["met"] is False]
            if not known:
                lines.append(f"- {name}: not measured")
                continue
            text = f"- {name}: met for {met} of {known}"
            if missed:
                text += f"; missed for {_names(missed)}"
            unknown = [r["quantizer"] for r in rows if r["met"] is None]
            if unknown:
                text += f"; not measured for {_names(unknown)}"
            lines.append(text)
        lines.append("")
    machine = result.get("machine", {})
    loads = [machine.get("load_average"), result.get("load_average_end")]
    cpus = machine.get("cpus") or 1
    worst = max((la[0] for la in loads if la), default=0.0)
    if worst > BUSY_LOAD_SHARE * cpus:
        lines.append(
            f"**The machine was busy during this run** (1-minute load average up to "
            f"{worst:.2f} on {cpus} logical CPUs): absolute times are inflated and noisy. "
            "Rerun on a quiet machine before drawing conclusions from small differences."
        )
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def method_markdown(result: dict[str, Any]) -> str:
    """The bytes each measured quantizer must move (the floor's model), from the result."""
    qs = result.get("quantizers", [])
    if not qs:
        return ""
    dtype = qs[0]["dtype"]
    lines = [
        "## Bytes each quantizer must move",
        "",
        "The floor's traffic model as this run used it (how the floor and everything else "
        "is measured: the hand-written *Method* in BENCHMARKS.md).",
        "",
        f"| quantizer | bytes read / written per element ({dtype}) | why |",
        "|---|---|---|",
    ]
    for q in qs:
        f = q["floor"]
        why = (f.get("why") or "-").replace("|", "\\|")
        lines.append(
            f"| {q['quantizer']} | {f['bytes_read_per_element']} / "
            f"{f['bytes_written_per_element']} | {why} |"
        )
    return "\n".join(lines)


def _agreement_lines(qs: list[dict[str, Any]]) -> list[str]:
    compared = [(q, name, a) for q in qs for name, a in q["agreement_with_torch_eager"].items()]
    if not compared:
        return []
    bad = [
        f"{q['quantizer']} {name} ({a['forward_mismatches']} forward, "
        f"{a['gradient_mismatches']} gradient)"
        for q, name, a in compared
        if a["forward_mismatches"] or a["gradient_mismatches"]
    ]
    if not bad:
        return [
            f"- **Agreement with eager torch**: every one of the {len(compared)} compared "
            "implementation results had no forward and no gradient mismatch."
        ]
    return [
        f"- **Agreement with eager torch**: {len(bad)} of {len(compared)} compared "
        "implementation results had mismatches (counts of elements): " + "; ".join(bad) + "."
    ]


def _error_lines(qs: list[dict[str, Any]]) -> list[str]:
    errors = [
        f"{q['quantizer']} {name}: {text.splitlines()[0] if text else ''}"
        for q in qs
        for name, text in q.get("errors", {}).items()
    ]
    if not errors:
        return []
    return ["- **Failed implementations** (not timed): " + "; ".join(errors) + "."]


def _allocation_lines(qs: list[dict[str, Any]]) -> list[str]:
    copy = _median([q["floor"]["copy_s"] for q in qs])
    over = _median([q["floor"]["fresh_output_overhead_s"] for q in qs])
    if copy is None or over is None:
        return []
    line = (
        f"- **New output arrays** ({qs[0]['size']} elements of {qs[0]['dtype']} each). "
        f"Copying two arrays into preallocated buffers took {fmt_ms(copy)} ms; a newly "
        f"allocated output array cost {fmt_ms(over)} ms more than writing its bytes "
        "(medians over quantizers of the floor's *copy* and *fresh* kernels)."
    )
    faults = _median(
        [q["times"]["jax"].get("page_faults_per_call") for q in qs if "jax" in q["times"]]
    )
    if faults is not None:
        line += f" Plain `jax` took {faults:.0f} minor page faults per call (median)."
    return [line]


def _reuse_lines(result: dict[str, Any], qs: list[dict[str, Any]]) -> list[str]:
    reuse = (result.get("quantizers_malloc_reuse") or {}).get("quantizers") or []
    if not reuse:
        return []
    by_label = {q["quantizer"]: q for q in qs}
    pairs = []
    for r in reuse:
        q = by_label.get(r["quantizer"], {})
        pairs.append(
            f"{r['quantizer']} {_fmt(q.get('ratios', {}).get('jax/floor'), 'x')} -> "
            f"{_fmt(r['ratios'].get('jax/floor'), 'x')} (donated "
            f"{_fmt(q.get('ratios', {}).get('jax_donated/floor'), 'x')} -> "
            f"{_fmt(r['ratios'].get('jax_donated/floor'), 'x')})"
        )
    return [
        "- **With freed memory reused** (`GLIBC_TUNABLES`, second speed table), JAX's "
        "time / floor, default run -> memory reused: " + "; ".join(pairs) + "."
    ]


def _xla_lines(qs: list[dict[str, Any]]) -> list[str]:
    def prog(q: dict[str, Any], name: str) -> dict[str, Any]:
        p = q.get("xla_program", {}).get(name, {})
        return {} if "error" in p else p

    def floor_bytes(q: dict[str, Any]) -> int:
        return q["floor"]["bytes_read_per_element"] + q["floor"]["bytes_written_per_element"]

    over, donation, copies, transcendental = [], [], [], []
    for q in qs:
        plain, don = prog(q, "jax"), prog(q, "jax_donated")
        xla = plain.get("bytes_accessed_per_element")
        if xla is not None and xla > floor_bytes(q):
            over.append(f"{q['quantizer']} ({_fmt(xla)} against {floor_bytes(q)})")
        xla_don = don.get("bytes_accessed_per_element")
        if xla is not None and xla_don is not None and xla_don < xla:
            donation.append(f"{q['quantizer']} ({_fmt(xla)} -> {_fmt(xla_don)})")
        if plain.get("copies"):
            copies.append(f"{q['quantizer']} ({plain['copies']})")
        trans = plain.get("transcendentals_per_element")
        if trans:
            transcendental.append(f"{q['quantizer']} ({_fmt(trans)})")
    rows = []
    for q in qs:
        plain, don = prog(q, "jax"), prog(q, "jax_donated")
        rows.append(
            f"| {q['quantizer']} | {floor_bytes(q)} | "
            f"{_fmt(plain.get('bytes_accessed_per_element'))} "
            f"({plain.get('fusions', '-')} fused loops, {plain.get('copies', '-')} copies) | "
            f"{_fmt(don.get('bytes_accessed_per_element'))} "
            f"({don.get('fusions', '-')} fused loops, {don.get('copies', '-')} copies) | "
            f"{_fmt(plain.get('transcendentals_per_element'))} | "
            f"{fmt_ms(q['times'].get('jax', {}).get('median_s'))} | "
            f"{fmt_ms(q['floor']['floor_s'])} |"
        )
    if not any(prog(q, "jax") or prog(q, "jax_donated") for q in qs):
        return []
    return [
        "- **XLA moves more bytes per element than the floor** for: " + _names(over) + ".",
        "- **Donating `g` lowers XLA's bytes per element** for: " + _names(donation) + ".",
        "- **Plain copies in the optimized HLO** (plain `jax`) for: " + _names(copies) + ".",
        "- **Transcendental evaluations per element** (plain `jax`) for: "
        + _names(transcendental)
        + ".",
        "- **What XLA compiled**: `compiled.cost_analysis()` bytes accessed per element (a "
        "count, independent of load) next to the floor's bytes; the number of fused loops "
        "and plain copies in the optimized HLO; transcendental functions per element:",
        "",
        "| quantizer | floor bytes/elem | jax: XLA bytes/elem | jax donated: XLA bytes/elem "
        "| transcendentals/elem | jax ms | floor ms |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _residual_lines(result: dict[str, Any]) -> list[str]:
    rows = result.get("residuals", [])
    if not rows:
        return []
    more, failed = [], []
    for r in rows:
        j = r["jax"].get("total_bytes_per_element")
        t = r["torch_eager"].get("total_bytes_per_element")
        if j is None or t is None:
            failed.append(r["quantizer"])
        elif j > t:
            more.append(f"{r['quantizer']} ({j:g} against {t:g})")
    line = (
        "- **Saved for backward**: JAX saves more bytes per element than eager torch for: "
        + _names(more)
        + "."
    )
    if failed:
        line += " Not counted (an error, see the table) for: " + _names(failed) + "."
    return [line]


def _training_lines(result: dict[str, Any]) -> list[str]:
    training = result.get("training")
    if not training or "error" in training:
        return []
    t, j = training.get("torch_eager"), training.get("jax")
    if not t or not j:
        return []
    line = (
        f"- **Training step**: JAX {j['steps_per_s']:.1f} steps/s (first step "
        f"{_fmt(j['first_step_s'], ' s')}, compiling included), torch eager "
        f"{t['steps_per_s']:.1f} steps/s."
    )
    devices = result.get("machine", {}).get("jax_devices") or []
    if devices and "cpu" not in devices[0].lower():
        line += (
            f" JAX's default device in this run was {devices[0]}, while the torch step "
            "runs on the CPU: these two are not a like-for-like comparison."
        )
    return [line]


def analysis_markdown(result: dict[str, Any]) -> str:
    """Findings of this run, each computed from the result."""
    qs = result.get("quantizers", [])
    lines: list[str] = []
    if qs:
        lines += _agreement_lines(qs)
        lines += _error_lines(qs)
        lines += _allocation_lines(qs)
        lines += _reuse_lines(result, qs)
        lines += _xla_lines(qs)
    lines += _residual_lines(result)
    lines += _training_lines(result)
    if not lines:
        return ""
    return "\n".join(["## Findings of this run", "", *lines]).rstrip("\n")
