"""Targets, the terminal table and the Markdown report of a benchmark result.

Everything printed here is read from the result dict (what ``--json`` writes), so a
report states only what the run that wrote it measured. The Markdown report is one
block between :data:`BEGIN_MARKER` and :data:`END_MARKER`; :func:`merge_markdown` puts it
into an existing file (BENCHMARKS.md) without touching the hand-written text around it.

>>> fmt_ms(0.0123)
'12.30'
>>> device_line({"settings": {"device": "cpu"}, "machine": {"gpu": None}})
'GPU: not requested (--device cpu); torch sees no CUDA GPU on this machine'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "device_line",
    "evaluate_targets",
    "fmt_ms",
    "markdown_report",
    "merge_markdown",
    "text_report",
]

BEGIN_MARKER = (
    "<!-- BEGIN GENERATED REPORT: written by `python -m benchmarks --markdown FILE`, "
    "which replaces everything up to the END marker; edit outside the markers -->"
)
END_MARKER = "<!-- END GENERATED REPORT -->"

FLOOR_TARGET = 1.25
COMPILE_TARGET = 1.0
EAGER_TARGET = 2.0
JAX_VARIANTS = ("jax", "jax_donated")


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds with two decimals ("-" for missing)."""
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _fmt_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def device_line(result: dict[str, Any]) -> str:
    """What happened with the GPU in this run: measured on which device, not requested,
    or requested but unavailable (with the reason the run recorded)."""
    settings = result.get("settings", {})
    machine = result.get("machine", {})
    status = result.get("device") or {}
    requested = settings.get("device", "cpu")
    if requested != "gpu":
        seen = machine.get("gpu")
        tail = (
            f"; torch sees {seen} on this machine (measure it with --device gpu)"
            if seen
            else "; torch sees no CUDA GPU on this machine"
        )
        return f"GPU: not requested (--device {requested}){tail}"
    if status.get("available") is False:
        return f"GPU: requested (--device gpu) but not measured: {status.get('reason')}"
    on_gpu = [q for q in result.get("quantizers", []) if q.get("device") == "gpu"]
    torch_name = status.get("torch") or machine.get("gpu") or "unknown device"
    jax_name = status.get("jax") or ", ".join(machine.get("jax_devices") or []) or "unknown"
    if on_gpu:
        return (
            f"GPU: measured on {torch_name} (torch) and {jax_name} (JAX): the "
            f"forward+backward timings of {len(on_gpu)} quantizer(s) ran there"
        )
    return (
        f"GPU: requested (--device gpu) and present ({torch_name}; JAX {jax_name}), but "
        "no quantizer was timed on it in this run (the quantizers part was not run)"
    )


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, quantizer, JAX variant) with the measured value and ``met``."""
    rows = []
    reuse = (result.get("quantizers_malloc_reuse") or {}).get("quantizers") or []
    runs = [(q, "") for q in result.get("quantizers", [])]
    runs += [(q, " [memory reused]") for q in reuse]
    for q, suffix in runs:
        ratios = q["ratios"]
        for variant in JAX_VARIANTS:
            if variant not in q["times"]:
                continue
            checks = [
                (
                    f"{variant} <= {FLOOR_TARGET}x floor",
                    ratios.get(f"{variant}/floor"),
                    lambda v: v <= FLOOR_TARGET,
                ),
                (
                    f"torch.compile / {variant} >= {COMPILE_TARGET}",
                    ratios.get(f"torch_compile/{variant}"),
                    lambda v: v >= COMPILE_TARGET,
                ),
                (
                    f"torch eager / {variant} >= {EAGER_TARGET}",
                    ratios.get(f"torch_eager/{variant}"),
                    lambda v: v >= EAGER_TARGET,
                ),
            ]
            for name, value, ok in checks:
                rows.append(
                    {
                        "target": name + suffix,
                        "quantizer": q["quantizer"],
                        "value": value,
                        "met": None if value is None else bool(ok(value)),
                    }
                )
    for r in result.get("residuals", []):
        jax_total = r["jax"].get("total_bytes_per_element")
        torch_total = r["torch_eager"].get("total_bytes_per_element")
        if jax_total is None or torch_total is None:
            rows.append(
                {
                    "target": "jax residual bytes/element <= torch",
                    "quantizer": r["quantizer"],
                    "value": None,
                    "met": None,
                }
            )
            continue
        rows.append(
            {
                "target": "jax residual bytes/element <= torch",
                "quantizer": r["quantizer"],
                "value": f"{jax_total:g} vs {torch_total:g}",
                "met": bool(jax_total <= torch_total),
            }
        )
    return rows


def _speed_rows(quantizers: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "quantizer",
        "floor ms",
        "jax ms",
        "jax/floor",
        "jax donated ms",
        "donated/floor",
        "torch eager ms",
        "eager/jax",
        "torch.compile ms",
        "compile/jax",
        "compile s jax",
        "compile s torch",
    ]
    rows = []
    for q in quantizers:
        t, r, c = q["times"], q["ratios"], q["compile_s"]

        def med(name: str, t: dict = t) -> float | None:
            return t[name]["median_s"] if name in t else None

        tc = fmt_ms(med("torch_compile"))
        if "torch_compile" in q["errors"]:
            tc = "error: " + q["errors"]["torch_compile"].splitlines()[0][:60]
        rows.append(
            [
                q["quantizer"],
                fmt_ms(q["floor"]["floor_s"]),
                fmt_ms(med("jax")),
                _fmt_x(r.get("jax/floor")),
                fmt_ms(med("jax_donated")),
                _fmt_x(r.get("jax_donated/floor")),
                fmt_ms(med("torch_eager")),
                _fmt_x(r.get("torch_eager/jax")),
                tc,
                _fmt_x(r.get("torch_compile/jax")),
                _fmt_s(c.get("jax")),
                _fmt_s(c.get("torch_compile")),
            ]
        )
    return header, rows


def _floor_rows(quantizers: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "quantizer",
        "bytes read/elem",
        "bytes written/elem",
        "floor ms",
        "GB/s",
        "copy ms (lib)",
        "read ms (lib)",
        "new-array overhead ms",
        "floor + 2 new arrays ms",
        "jax / (floor + 2 new)",
    ]
    rows = []
    for q in quantizers:
        f = q["floor"]
        bw = f["bandwidth_GBps"]
        rows.append(
            [
                q["quantizer"],
                str(f["bytes_read_per_element"]),
                str(f["bytes_written_per_element"]),
                fmt_ms(f["floor_s"]),
                "-" if bw is None else f"{bw:.1f}",
                f"{fmt_ms(f['copy_s'])} ({f['copy_library']})",
                f"{fmt_ms(f['read_s'])} ({f['read_library']})",
                fmt_ms(f["fresh_output_overhead_s"]),
                fmt_ms(f["floor_with_fresh_outputs_s"]),
                _fmt_x(q["ratios"].get("jax/floor_with_fresh_outputs")),
            ]
        )
    return header, rows


def _fault_rows(quantizers: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    names = [
        "jax",
        "jax_donated",
        "torch_eager",
        "torch_compile",
        "floor_copy_torch",
        "floor_fresh_torch",
    ]
    header = ["quantizer", "pages per array", *names]
    rows = []
    for q in quantizers:
        itemsize = {"float32": 4, "float64": 8}.get(q["dtype"], 2)
        row = [q["quantizer"], str(q["size"] * itemsize // 4096)]
        for name in names:
            stats = q["times"].get(name)
            pf = None if stats is None else stats.get("page_faults_per_call")
            row.append("-" if pf is None else f"{pf:.0f}")
        rows.append(row)
    return header, rows


def _residual_rows(residuals: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "quantizer",
        "torch eager: saved",
        "torch eager B/elem (total / new)",
        "torch.compile B/elem (total / new)",
        "jax: residuals",
        "jax B/elem (total / new)",
    ]
    rows = []
    for r in residuals:

        def both(d: dict[str, Any]) -> str:
            if "error" in d:
                return "error: " + d["error"].splitlines()[0][:50]
            return f"{d['total_bytes_per_element']:g} / {d['extra_bytes_per_element']:g}"

        def what(d: dict[str, Any]) -> str:
            items = d.get("saved", [])
            if not items:
                return "nothing"
            return ", ".join(
                ("input x" if i["is_input"] else f"{i['dtype']}{i['shape']}") for i in items
            )

        rows.append(
            [
                r["quantizer"],
                what(r["torch_eager"]),
                both(r["torch_eager"]),
                both(r["torch_compile"]),
                what(r["jax"]),
                both(r["jax"]),
            ]
        )
    return header, rows


def _training_rows(training: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "framework",
        "steps/s",
        "step ms (median)",
        "first step s",
        "compile s",
        "peak step memory MiB",
        "memory method",
    ]
    rows = []
    for name in ("torch_eager", "jax"):
        d = training.get(name)
        if not d:
            continue
        mem = d.get("memory", {})
        peak = mem.get("peak_bytes")
        rows.append(
            [
                name,
                f"{d['steps_per_s']:.1f}",
                fmt_ms(d["step_median_s"]),
                _fmt_s(d["first_step_s"]),
                _fmt_s(d["compile_s"]),
                "-" if peak is None else f"{peak / 2**20:.2f}",
                mem.get("method", "-"),
            ]
        )
    return header, rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def _sections(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    out = []
    qs = result.get("quantizers", [])
    if qs:
        out.append(("Forward+backward time (median)", *_speed_rows(qs)))
        out.append(("Floor", *_floor_rows(qs)))
        out.append(("Minor page faults per call (fresh pages mapped by the OS)", *_fault_rows(qs)))
    reuse = result.get("quantizers_malloc_reuse")
    if reuse and reuse.get("quantizers"):
        out.append(
            (
                "Forward+backward time with GLIBC_TUNABLES (freed memory reused)",
                *_speed_rows(reuse["quantizers"]),
            )
        )
    if result.get("residuals"):
        out.append(("Saved for backward", *_residual_rows(result["residuals"])))
    training = result.get("training")
    if training and "error" not in training:
        out.append(("Training step", *_training_rows(training)))
    return out


def _target_rows(targets: list[dict[str, Any]], *, missed: str) -> list[list[str]]:
    """One table row per target: name, quantizer, value, and ``met``/``missed``/``-``."""
    return [
        [
            t["target"],
            t["quantizer"],
            t["value"] if isinstance(t["value"], str) else _fmt_x(t["value"]),
            {True: "met", False: missed, None: "-"}[t["met"]],
        ]
        for t in targets
    ]


def _settings_line(result: dict[str, Any]) -> str:
    s = result["settings"]
    return (
        f"Settings: size {s['size']} elements, dtype {s['dtype']}, device {s['device']}, "
        f"{s['repeats']} repeats (interleaved), malloc: {s['malloc']}"
    )


def text_report(result: dict[str, Any]) -> str:
    """The run (command, settings, GPU), the tables as plain text, then the targets."""
    parts = [
        "== Run\n"
        + "\n".join([f"Command: {result['command']}", _settings_line(result), device_line(result)])
    ]
    for title, header, rows in _sections(result):
        parts.append(f"== {title}\n{_text_table(header, rows)}")
    if result.get("training", {}).get("error"):
        parts.append("== Training step\nerror: " + result["training"]["error"])
    targets = result.get("targets", [])
    if targets:
        rows = _target_rows(targets, missed="MISSED")
        parts.append("== Targets\n" + _text_table(["target", "quantizer", "value", ""], rows))
    return "\n\n".join(parts)


def markdown_report(
    result: dict[str, Any], *, intro: str = "", method: str = "", analysis: str = ""
) -> str:
    """The generated block: ``intro``, machine and run, ``method``, tables, targets,
    ``analysis``; wrapped in the markers (see :func:`merge_markdown`)."""
    m = result["machine"]
    lines = [
        BEGIN_MARKER,
        "",
        "*Generated by `python -m benchmarks` from the measurements of the run named below; "
        "every figure in this block comes from that run.*",
        "",
    ]
    if intro:
        lines += [intro, ""]
    lines += [
        "## Machine and run",
        "",
        f"- CPU: {m['cpu_model']} (family/model/stepping "
        f"{m.get('cpu_family_model_stepping', '?')}, avx512f: {m.get('avx512', '?')}), "
        f"{m['cpus']} logical CPUs ({m.get('threads_per_core')} thread(s) "
        f"per core), L3 {m.get('l3_cache')}, {m.get('memory_gib')} GiB RAM, "
        f"hypervisor: {m.get('hypervisor') or 'none'}",
        f"- {device_line(result)}",
        f"- JAX devices: {', '.join(m.get('jax_devices') or []) or 'unknown'}",
        f"- Software: Python {m['python']}, torch {m['versions']['torch']}, jax "
        f"{m['versions']['jax']}, jaxlib {m['versions']['jaxlib']}, flax {m['versions']['flax']},"
        f" numpy {m['versions']['numpy']}; torch threads: {m['torch_threads']}",
        f"- Date: {m['date']}; load average at start {m['load_average']}, at end "
        f"{result.get('load_average_end')}",
        f"- {_settings_line(result)}",
        f"- Command: `{result['command']}`",
        "",
    ]
    if method:
        lines += [method, ""]
    for title, header, rows in _sections(result):
        lines += [f"## {title}", "", _md_table(header, rows), ""]
    if result.get("training", {}).get("error"):
        lines += ["## Training step", "", "error: " + result["training"]["error"], ""]
    targets = result.get("targets", [])
    if targets:
        rows = _target_rows(targets, missed="**missed**")
        lines += ["## Targets", "", _md_table(["target", "quantizer", "value", "result"], rows), ""]
    if analysis:
        lines += [analysis, ""]
    lines += [END_MARKER, ""]
    return "\n".join(lines)


def merge_markdown(existing: str | None, block: str) -> str:
    """The Markdown file with ``block`` (from :func:`markdown_report`) in it.

    ``existing`` is the file's current text (``None``: no file yet, then a new file is
    just a title and the block). A file with one pair of markers keeps everything
    outside them (the hand-written text) and gets ``block`` between them. A file
    without the markers is not overwritten: ``ValueError``.

    >>> block = BEGIN_MARKER + "\\nnew\\n" + END_MARKER + "\\n"
    >>> old = "notes\\n" + BEGIN_MARKER + "\\nold\\n" + END_MARKER + "\\nmore notes\\n"
    >>> merge_markdown(old, block).replace(BEGIN_MARKER, "B").replace(END_MARKER, "E")
    'notes\\nB\\nnew\\nE\\nmore notes\\n'
    """
    if existing is None:
        return "# Benchmarks\n\n" + block
    begin, end = existing.count(BEGIN_MARKER), existing.count(END_MARKER)
    if begin != 1 or end != 1 or existing.index(BEGIN_MARKER) > existing.index(END_MARKER):
        raise ValueError(
            f"found {begin} begin and {end} end marker(s) of the generated report (need one "
            f"of each, in order); refusing to overwrite hand-written text. Write to a new "
            f"file, or add the two lines\n{BEGIN_MARKER}\n{END_MARKER}\nwhere the report goes"
        )
    head = existing[: existing.index(BEGIN_MARKER)]
    tail = existing[existing.index(END_MARKER) + len(END_MARKER) :]
    return head + block.rstrip("\n") + tail
