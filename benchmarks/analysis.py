"""The explanatory text of BENCHMARKS.md, filled in with the numbers of the run.

>>> method_markdown({})[:10]
'## Method\\n'
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.cases import CASES
from benchmarks.report import fmt_ms

__all__ = ["intro_markdown", "method_markdown", "analysis_markdown"]

REPRODUCE = """\
## How to reproduce

```bash
pip install torch==2.13.0 -e '.[dev]'   # or run from the repository root
python -m benchmarks --malloc both --json benchmarks.json --markdown BENCHMARKS.md
```

`python -m benchmarks --help` lists the options: `--size` (default `2**24` elements),
`--dtype` (float32, float16, bfloat16, float64), `--device` (cpu, gpu), `--quantizers`
(comma-separated registry keys), `--implementations`, `--repeats`, `--only`
(quantizers, memory, training), `--torch-threads`, `--malloc`, `--json`, `--markdown`.
Run it on a quiet machine: the load average is printed with the results for this reason.
"""

METHOD = """\
## Method

**What is timed.** For every quantizer, one forward and one backward pass on a 1-D array
(`x ~ 1.5 N(0, 1)`, so about half the elements lie past `|x| = 1`; a random cotangent
`g ~ N(0, 1)`), producing both the output `y` and the input gradient `dx`:

- *torch eager*: `y = q(x)`, `dx = torch.autograd.grad(y, x, g)`.
- *torch.compile*: the same with `q` compiled by `torch.compile(fullgraph=True)` (inductor;
  AOTAutograd compiles the forward and the backward graph). A failure is reported in the
  table instead of stopping the run.
- *jax*: `jax.jit` of `y, vjp = jax.vjp(q, x); dx = vjp(g)`, returning `(y, dx)` so XLA
  cannot drop the forward pass; `jax.block_until_ready` on both.
- *jax donated*: the same program with `g` donated (`donate_argnums`); XLA may write `dx`
  into `g`'s buffer. For a pass-through gradient, eager torch hands `g` itself back as
  `dx` (`dx is g`: no bytes move); a jitted JAX function cannot return its input
  without copying it into a new buffer unless the input is donated. Donation is the JAX
  counterpart. Inside a jitted training step neither copy exists. A fresh copy of `g` is
  made, untimed, before each donated call.

All implementations of one quantizer and the floor kernels run round-robin, in rotated
order, `--repeats` times; tables show medians (the JSON also has min, max, IQR). On a
shared machine the load drifts over seconds; interleaving exposes every implementation
to the same drift, so ratios stay meaningful when absolute times do not. Before the
per-quantizer compiles, each framework compiles one unrelated tiny function, so the
one-time start-up of inductor and of the XLA backend is not charged to the first
quantizer (it is in the JSON under `warm_up`). **Compile time** = first call minus the
steady-state median; torch's inductor and AOTAutograd caches are switched off, so this is
a cold compile on every run. A correctness check compares every implementation's `y` and
`dx` with eager torch on the benchmark arrays (`agreement_with_torch_eager` in the JSON).

**The floor.** The least bytes a quantizer must move, priced at this machine's measured
bandwidth in the same run. A per-element byte count (below) is multiplied by costs
measured on arrays of the same size with kernels that only move memory: *copy* (copy `x`
into a preallocated `y` and `g` into a preallocated `dx`: 2 reads + 2 writes) and *read*
(sum `x` and `g`: 2 reads). A read byte costs `t_read / 2Ns`, a written byte
`(t_copy - t_read) / 2Ns`; so a quantizer that moves exactly `x, y, g, dx` has
`floor = t_copy`. Each kernel runs in torch (all threads) and NumPy (one thread) and the
faster median counts: the floor is the best this machine did. A third kernel, *fresh*,
clones `x` and `g` into new arrays; its excess over *copy* is what a new output array
costs beyond its bytes (allocation and the OS mapping zeroed pages), shown separately as
"new-array overhead".

{traffic_table}

**Saved for backward.** torch: `torch.autograd.graph.saved_tensors_hooks`; the pack hook
records `numel * element_size` of every saved tensor, once per storage. JAX:
`jax._src.ad_checkpoint.saved_residuals` on `q` (the residuals `jax.vjp` keeps),
cross-checked against the array leaves of the vjp function's closure. "total" counts
everything saved; "new" leaves out a saved tensor that *is* the input (same storage /
"from the argument x"), which allocates nothing but keeps `x` alive until the backward.

**Training step.** `examples/binary_net.py` (digits, float conv, binary conv, binary
linear, BatchNorm, Adam), same initial weights and batches in both frameworks. Steps/s
is the median over timed blocks of steps, each step waiting for its loss (torch's step
calls `.item()`). Peak memory: JAX from the compiled step's `memory_analysis()`
(arguments + outputs + temporaries - aliased: XLA assigns all buffers ahead of time);
torch from `torch.profiler` with `profile_memory=True`: the running sum of the allocator's
allocation/free records over one step gives the peak above the start, to which the bytes
live at the start (parameters, buffers, gradients, Adam state, batch) are added
(`tracemalloc` does not see torch's allocator, and RSS keeps freed memory).
"""


def _traffic_table() -> str:
    lines = [
        "| quantizer | bytes read / written per element (float32) | why |",
        "|---|---|---|",
    ]
    for case in CASES:
        reads, writes = case.traffic(4)
        lines.append(f"| {case.label} | {reads} / {writes} | {case.why} |")
    return "\n".join(lines)


def intro_markdown(result: dict[str, Any]) -> str:
    """Summary lines: which targets were met, and a warning if the machine was busy."""
    lines = []
    targets = result.get("targets", [])
    groups: dict[str, list[bool | None]] = {}
    for t in targets:
        groups.setdefault(t["target"], []).append(t["met"])
    if groups:
        lines.append("Summary of the targets in this run (per quantizer):")
        lines.append("")
        for name, mets in groups.items():
            met = sum(1 for m in mets if m)
            known = sum(1 for m in mets if m is not None)
            lines.append(f"- {name}: met for {met} of {known}")
        lines.append("")
    machine = result.get("machine", {})
    loads = [machine.get("load_average"), result.get("load_average_end")]
    cpus = machine.get("cpus") or 1
    worst = max((la[0] for la in loads if la), default=0.0)
    if worst > 0.5 * cpus:
        lines.append(
            f"**The machine was busy during this run** (1-minute load average up to "
            f"{worst:.1f} on {cpus} CPUs): absolute times are inflated and noisy, and "
            "multi-threaded kernels suffer most. Rerun on a quiet machine before drawing "
            "conclusions from small differences."
        )
        lines.append("")
    if not machine.get("gpu"):
        lines.append("GPU: not measured in this run (no GPU on this machine).")
        lines.append("")
    lines.append(REPRODUCE)
    return "\n".join(lines)


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def _findings(result: dict[str, Any]) -> list[str]:
    qs = result.get("quantizers", [])
    if not qs:
        return []
    out = ["## Findings of this run", ""]
    size, dtype = qs[0]["size"], qs[0]["dtype"]
    itemsize = {"float32": 4, "float64": 8}.get(dtype, 2)
    array_mib = size * itemsize / 2**20
    pages = size * itemsize / 4096
    overheads = [q["floor"]["fresh_output_overhead_s"] for q in qs]
    copies = [q["floor"]["copy_s"] for q in qs]
    over = statistics.median(overheads)
    out.append(
        f"- **New output arrays.** Each array here is {array_mib:.0f} MiB. Copying two "
        f"arrays into preallocated buffers took {_fmt(statistics.median(copies) * 1e3, ' ms')}"
        f" (median over quantizers); every *newly allocated* output array cost "
        f"{_fmt(over * 1e3, ' ms')} more. The page-fault table shows why: glibc serves "
        f"blocks above its mmap threshold (at most 32 MiB) with a fresh `mmap` and returns "
        f"them on free, so each new array is {pages:.0f} fresh pages the kernel must zero "
        "and map on first touch. Both frameworks allocate `y` and `dx` per call (torch "
        "skips `dx` for pass-through gradients); the floor does not, as it measures "
        "bandwidth. The column `jax / (floor + 2 new)` prices that in."
    )
    reuse = (result.get("quantizers_malloc_reuse") or {}).get("quantizers")
    if reuse:
        pairs = []
        for q in reuse:
            r = q["ratios"]
            pairs.append(
                f"{q['quantizer']} {_fmt(r.get('jax/floor'), 'x')} "
                f"(donated {_fmt(r.get('jax_donated/floor'), 'x')})"
            )
        out.append(
            "- **With freed memory reused** (`GLIBC_TUNABLES`, second speed table), JAX's "
            "time / floor is: " + "; ".join(pairs) + "."
        )
    rows = []
    for q in qs:
        prog = q.get("xla_program", {})
        plain, don = prog.get("jax", {}), prog.get("jax_donated", {})
        floor_bytes = q["floor"]["bytes_read_per_element"] + q["floor"]["bytes_written_per_element"]
        rows.append(
            f"| {q['quantizer']} | {floor_bytes} | "
            f"{_fmt(plain.get('bytes_accessed_per_element'))} "
            f"({plain.get('fusions', '-')} fused loops, {plain.get('copies', '-')} copies) | "
            f"{_fmt(don.get('bytes_accessed_per_element'))} "
            f"({don.get('fusions', '-')} fused loops, {don.get('copies', '-')} copies) | "
            f"{_fmt(plain.get('transcendentals_per_element'))} | "
            f"{fmt_ms(q['times'].get('jax', {}).get('median_s'))} | "
            f"{fmt_ms(q['floor']['floor_s'])} |"
        )
    out += [
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
    return out


def _by_key(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["key"]: q for q in result.get("quantizers", [])}


def _xla_bytes(q: dict[str, Any] | None, variant: str) -> str:
    if not q:
        return "-"
    return _fmt(q.get("xla_program", {}).get(variant, {}).get("bytes_accessed_per_element"))


def _floor_bytes(q: dict[str, Any] | None) -> str:
    if not q:
        return "-"
    return str(q["floor"]["bytes_read_per_element"] + q["floor"]["bytes_written_per_element"])


def _notes(result: dict[str, Any]) -> str:
    qs = _by_key(result)
    if not qs:
        return ""
    any_q = next(iter(qs.values()))
    itemsize = {"float32": 4, "float64": 8}.get(any_q["dtype"], 2)
    pages = any_q["size"] * itemsize // 4096
    jax_faults = (
        statistics.median(
            q["times"]["jax"]["page_faults_per_call"] for q in qs.values() if "jax" in q["times"]
        )
        if any("jax" in q["times"] for q in qs.values())
        else None
    )
    sign, wd, swish, appr, steh = (
        qs.get(k) for k in ("sign", "weightdorefa", "swishsign", "approxsign", "steheaviside")
    )
    faults_text = "-" if jax_faults is None else f"{jax_faults:.0f}"
    lines = ["## Why targets are missed, and what would fix them", ""]
    lines.append(
        "- **Allocation, not the kernels.** Every call of every framework returns new arrays. "
        f"Above glibc's mmap threshold (32 MiB at most) each one is a fresh `mmap` of "
        f"{pages} pages that the kernel zeroes and maps on first touch, one minor fault per "
        f"4 KiB page: plain `jax` takes {faults_text} faults per call here (`y` and "
        "`dx`). That costs more than writing the bytes. The floor, a bandwidth measurement "
        "into preallocated buffers, does not pay it; torch pays it too (see the page-fault "
        "table). The GLIBC_TUNABLES table (`--malloc both`) reruns the timings with freed "
        "memory kept and reused, which shows how close the kernels themselves come. bitorch_jax "
        "cannot avoid this for a standalone call, as XLA's CPU client allocates each output "
        "anew; inside a jitted training step the quantizer's arrays are XLA temporaries."
    )
    lines.append(
        "- **The pass-through copy.** For `sign`, `inputdorefa`, `weightdorefa` and "
        "`identity` the gradient is `g` itself. Eager torch and torch.compile return `g` "
        "(`dx is g`), so they move only `x` and `y`; a jitted JAX function must copy `g` "
        "into a new output buffer unless `g` is donated. XLA's byte count for `sign`: "
        f"{_xla_bytes(sign, 'jax')} bytes/element plain, {_xla_bytes(sign, 'jax_donated')} "
        "donated. This is why torch.compile can beat plain `jax` on these quantizers, and "
        "why `jax donated` is the like-for-like comparison with torch for them."
    )
    lines.append(
        "- **identity** cannot be 2x faster than eager torch: eager torch does exactly the "
        "minimum (one copy of `x` into `y`, `dx = g` for free), and so does `jax donated`."
    )
    reuse = {
        q["key"]: q for q in (result.get("quantizers_malloc_reuse") or {}).get("quantizers", [])
    }

    def ms(q: dict[str, Any], run: str = "jax") -> float | None:
        return q["times"].get(run, {}).get("median_s")

    def reuse_vs_floor(key: str) -> str:
        q = reuse.get(key)
        floor_s = (q or {}).get("floor", {}).get("floor_s")
        if not q or ms(q) is None or not floor_s:
            return ""
        return (
            f" With freed memory reused: {fmt_ms(ms(q))} ms against a floor of "
            f"{fmt_ms(floor_s)} ms ({ms(q) / floor_s:.2f}x)."
        )

    if wd:
        prog = wd.get("xla_program", {}).get("jax", {})
        lines.append(
            f"- **weightdorefa** moves {_xla_bytes(wd, 'jax')} bytes/element in XLA "
            f"({prog.get('fusions', '-')} loops, several of them tiny steps finishing the "
            f"maximum over 64 partial results) against a floor of {_floor_bytes(wd)}: "
            "`tanh(x)` is written once and read twice, for `m` and to quantize (8 "
            "bytes/element over the floor; that and computing `tanh` are what remains of "
            "the gap). The whole-array `m = max|tanh x|`, NaN included (SPEC.md), is an "
            "integer maximum over the bit patterns of `tanh(x)`: a signed and an unsigned "
            "maximum in one variadic `lax.reduce`, which XLA fuses with the bitcasts and "
            "splits over the cores; integer maxima cannot drop NaN as XLA's CPU float "
            "max-reduction does, so no separate NaN check is needed. The earlier form, a "
            "float `jnp.max` plus that NaN check, moved 34.06 bytes/element in 9 loops (a "
            "boolean NaN array and its reduction on top). Two variants that reach 20 "
            "bytes/element were measured and not kept: computing `tanh` in each loop "
            "(from `tanh(-x) = -tanh(x)`, bit for bit since XLA's float32 `tanh` is odd, so "
            "that XLA does not share it) was slower here, 26.4 against 23.5 ms with freed "
            "memory reused, as the second `tanh` costs more than 8 bytes of traffic on 2 "
            "cores; `tanh(max|x|)` (20.5 ms) is not `max|tanh x|` bit for bit, as XLA's "
            "float32 `tanh` is not monotone (7.4 million one-ulp downward steps over the "
            "non-negative floats), so it would break SPEC.md's definition of `m`. In "
            "training the quantized tensors are weights, small next to activations."
            + reuse_vs_floor("weightdorefa")
        )
    if swish and appr:
        trans = swish.get("xla_program", {}).get("jax", {}).get("transcendentals_per_element")
        reuse_text = ""
        if "swishsign" in reuse and "approxsign" in reuse:
            reuse_text = (
                f" ({fmt_ms(ms(reuse['swishsign']))} against "
                f"{fmt_ms(ms(reuse['approxsign']))} ms with freed memory reused)"
            )
        lines.append(
            "- **swishsign is limited by arithmetic.** It moves exactly the bytes of "
            f"approxsign ({_xla_bytes(swish, 'jax')} bytes/element in XLA, the same two "
            "loops), so the difference between the two is its computation. The SPEC.md "
            "gradient `beta (2 - bx tanh(bx/2)) / (1 + cosh bx)` needs `tanh`, `cosh` (two "
            "`exp`) and a division; bitorch_jax evaluates the equal "
            "`2 beta e (2(1+e) - a(1-e)) / (1+e)**3` with `a = |beta x|`, `e = exp(-a)`: "
            f"{_fmt(trans)} transcendental evaluations per element (3.00 for the SPEC.md "
            "form) and one division; that `exp` and division are what still separates it "
            "from approxsign. In float32 it is within 2.3 ulps of `beta` of the exact "
            "value (the SPEC.md form: 1.8), inside the parity tolerance (8 ulps of "
            "`|g| beta`), and exactly `beta` at 0; torch keeps the SPEC.md formula as the "
            f"reference. jax: {fmt_ms(ms(swish))} ms against {fmt_ms(ms(appr))} ms for "
            f"approxsign{reuse_text}."
        )
    if steh:
        lines.append(
            f"- **steheaviside** moves {_xla_bytes(steh, 'jax')} bytes/element in XLA against "
            f"a floor of {_floor_bytes(steh)}: inside one program XLA recomputes the 1-byte "
            "code from `x` in the backward loop (reads 4 bytes) instead of writing and "
            "reading it (1 + 1). Separate forward and backward programs store the int8 "
            "code, as the residual table shows. Its loops also mix int8 and float32 "
            "selects, which vectorise worse than approxsign's float-only loops; torch.compile "
            "is slower still on the same logic."
        )
    lines.append(
        "- **Why eager torch is slow here.** bitorch's eager forward of the sign family is "
        "two comparisons and two nested `torch.where` (NaN must stay NaN, `-0.0` must give "
        "+1), each a separate pass that writes a new array; on this CPU one `torch.where` "
        "over 2**24 float32 elements took about 85 ms against 24 ms for `torch.sign` "
        "(measured while writing this benchmark). That, not a quality of JAX, is most of "
        "the eager/JAX ratio; torch.compile fuses the same code into one loop."
    )
    lines.append(
        "- **torch eager on a busy machine.** torch runs each kernel on an OpenMP team of "
        "`torch.get_num_threads()` threads; when another process holds a core, the team "
        "waits at every barrier, so eager torch (several kernels per quantizer, many per "
        "training step) slows down far more than one fused XLA loop. On a busy machine this "
        "inflates the eager/JAX ratios; rerun on a quiet machine (or compare with "
        "`--torch-threads 1`)."
    )
    lines.append(
        "- **GPU**: not measured in this run. On a GPU machine: `python -m benchmarks "
        "--device gpu --json gpu.json --markdown BENCHMARKS-gpu.md` (the floor kernels then "
        "run in torch on CUDA only)."
    )
    return "\n".join(lines) + "\n"


def method_markdown(result: dict[str, Any]) -> str:
    """How everything is measured (with the per-quantizer byte counts)."""
    return METHOD.format(traffic_table=_traffic_table())


def analysis_markdown(result: dict[str, Any]) -> str:
    """Findings with this run's numbers, and the reasons for missed targets."""
    parts = ["\n".join(_findings(result)), _notes(result)]
    return "\n".join(p for p in parts if p)
