"""The explanatory text of BENCHMARKS.md, filled in with the numbers of the run.

>>> analysis_markdown({"quantizers": [], "targets": [], "machine": {"cpus": 2,
...                    "load_average": [0.1, 0.1, 0.1], "gpu": None}})[:10]
'## Method\\n'
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.cases import CASES

__all__ = ["intro_markdown", "analysis_markdown"]

REPRODUCE = """\
## How to reproduce

```bash
pip install -e '.[dev,examples]'       # or run from the repository root with PYTHONPATH=.
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
            f"{_fmt(plain.get('transcendentals_per_element'))} |"
        )
    out += [
        "- **What XLA compiled** (`compiled.cost_analysis()` bytes accessed per element, "
        "independent of load; float bytes per element of the floor for comparison):",
        "",
        "| quantizer | floor bytes/elem | jax: XLA bytes/elem | jax donated: XLA bytes/elem "
        "| transcendentals/elem |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    return out


ANALYSIS_NOTES = """\
## Why targets are missed, and what would fix them

- **Allocation, not the kernels.** At the default size every fresh 64 MiB output is an
  `mmap` of pages the kernel zeroes on first touch (about one minor fault per 4 KiB page,
  see the page-fault table), which costs more than writing the bytes themselves. The
  floor, a bandwidth measurement into preallocated buffers, does not pay it; torch eager
  and torch.compile pay it too. Measured against "floor + 2 new arrays", or with
  freed memory reused (`--malloc both`), JAX comes much closer to the floor. Nothing in
  bitorch_jax can avoid it for a standalone call: the XLA CPU client allocates every
  output buffer anew. Inside a jitted training step the quantizer's arrays are XLA
  temporaries (one buffer for the whole step), and `jax donated` shows the effect of
  reusing the caller's buffer.
- **The pass-through copy.** A plain jitted function must return `dx = g` as a new
  buffer (a full read and write of the array plus a fresh allocation) where eager torch
  returns `g` itself. The XLA table shows it: 16 bytes/element for `sign` plain, 8
  donated. This is a property of the benchmark's boundary, not of the quantizer.
- **weightdorefa reads `tanh(x)` from memory.** XLA computes `tanh(x)` once, writes it
  to a temporary and reads it twice (for the maximum and for the quantization), instead of
  reading `x` twice: 28 bytes/element instead of 20 in the plain program. A fix that
  keeps the result bit for bit: take the maximum over `tanh(|x|)` instead of `|tanh(x)|`;
  the two are different HLO instructions, so XLA fuses each into its consumer (20
  bytes/element, checked with `cost_analysis`). It is exact because XLA's float32 `tanh`
  is odd: `|tanh(x)| == tanh(|x|)` holds for all 2**31 non-negative float32 bit patterns
  (checked exhaustively on this CPU). It was left out because the quantizer files were
  being edited concurrently for parity fixes; it also matters little in training, where
  weight tensors are small.
- **steheaviside** moves 20 bytes/element in XLA against a floor of 18: inside one
  program XLA recomputes the 1-byte code from `x` in the backward loop instead of
  writing and reading it (4 bytes read instead of 1 + 1). Separate forward and backward
  programs would store the int8 code, as the residual table shows.
- **torch eager under load.** torch runs its kernels on an OpenMP team of
  `torch.get_num_threads()` threads; when another process holds a core, the team waits
  at every barrier, so eager torch (many small kernels per quantizer) slows down far more
  than one fused XLA loop. On a busy machine this inflates the eager/JAX ratio; rerun on a
  quiet machine, or compare with `--torch-threads 1`.
- **GPU**: not measured here (no GPU on this machine). On a GPU machine, run
  `python -m benchmarks --device gpu --json gpu.json --markdown BENCHMARKS-gpu.md`; the
  floor kernels then run in torch on CUDA only.
"""


def analysis_markdown(result: dict[str, Any]) -> str:
    """Method, findings with this run's numbers, and the reasons for missed targets."""
    parts = [METHOD.format(traffic_table=_traffic_table())]
    parts.append("\n".join(_findings(result)))
    parts.append(ANALYSIS_NOTES)
    parts.append(REPRODUCE)
    return "\n".join(p for p in parts if p)
