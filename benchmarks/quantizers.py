"""Forward+backward speed of every quantizer: JAX, torch eager, torch.compile, the floor.

For each quantizer, every implementation is first called once (timed: for ``jax.jit``
and ``torch.compile`` this includes compiling; ``compile_s`` is that first call minus the
steady-state median), its result is checked against eager torch, and then all of them
and the floor kernels are timed round-robin (:func:`benchmarks.timing.interleaved`).

>>> from benchmarks.cases import case_by_label
>>> r = bench_quantizer(case_by_label("sign"), size=64, dtype="float32", device="cpu",
...                     repeats=2, implementations=("jax",))
>>> sorted(r["times"])[:2], r["floor"]["bytes_read_per_element"]
(['floor_copy_numpy', 'floor_copy_torch'], 8)
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.cases import Case
from benchmarks.floor import floor_kernels, floor_seconds
from benchmarks.frameworks import (
    Data,
    check_agreement,
    jax_fwd_bwd,
    jax_fwd_bwd_donated,
    jax_program_stats,
    make_data,
    torch_compile_fwd_bwd,
    torch_eager_fwd_bwd,
)
from benchmarks.timing import Timed, interleaved, summarize
from bitorch_common.quantizers import Variant, row

__all__ = ["IMPLEMENTATIONS", "bench_quantizer", "warm_up_compilers"]

IMPLEMENTATIONS: dict[str, Callable[[Case, Data], Timed]] = {
    "jax": jax_fwd_bwd,
    "jax_donated": jax_fwd_bwd_donated,
    "torch_eager": torch_eager_fwd_bwd,
    "torch_compile": torch_compile_fwd_bwd,
}
_COMPILED = ("jax", "jax_donated", "torch_compile")


def _error_text(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    first_lines = "\n".join(text.splitlines()[:6])
    return first_lines[:800]


def warm_up_compilers(*, torch_compile: bool = True) -> dict[str, float]:
    """Compile a tiny unrelated function in each framework once; returns the seconds.

    The first ``torch.compile`` of a process imports and initialises inductor (tens of
    seconds), the first ``jax.jit`` initialises the backend. Paying that here keeps it
    out of the per-quantizer compile times; it is reported separately.
    """
    import time

    import jax
    import jax.numpy as jnp

    out = {}
    if torch_compile:
        start = time.perf_counter()
        torch._dynamo.reset()
        fn = torch.compile(lambda t: (t * 2).sin(), fullgraph=True)
        t = torch.ones(8, requires_grad=True)
        fn(t).sum().backward()
        out["torch_compile_init_s"] = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(jax.jit(jax.grad(lambda v: jnp.sin(v * 2).sum()))(jnp.ones(8)))
    out["jax_init_s"] = time.perf_counter() - start
    return out


def bench_quantizer(
    case: Case,
    *,
    size: int,
    dtype: str,
    device: str,
    repeats: int,
    implementations: tuple[str, ...] = tuple(IMPLEMENTATIONS),
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``case`` in each implementation and the floor kernels; derive the ratios."""
    unknown = [name for name in implementations if name not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {list(IMPLEMENTATIONS)}")
    data = make_data(size, dtype, device, seed=seed)
    torch._dynamo.reset()  # fresh compile per quantizer (and no recompile limit)
    timed: dict[str, Timed] = {}
    first: dict[str, float] = {}
    errors: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    for name in implementations:
        try:
            candidate = IMPLEMENTATIONS[name](case, data)
            first[name], outputs[name] = candidate.once()
            timed[name] = candidate
        except Exception as err:  # reported in the table, the run goes on
            errors[name] = _error_text(err)
            if name != "torch_compile":
                traceback.print_exc()
    reference = "torch_eager" if "torch_eager" in outputs else None
    agreement = {}
    if reference is not None:
        for name, out in outputs.items():
            if name != reference:
                agreement[name] = check_agreement(
                    outputs[reference], out, dtype, x=data.x_torch, g=data.g_torch,
                    rules=Variant(row(case.key), case.params).comparison_rules(),
                )  # fmt: skip
    outputs.clear()
    programs = {}
    for name, donated in (("jax", False), ("jax_donated", True)):
        if name in timed:
            try:
                programs[name] = jax_program_stats(case, data, donated=donated)
            except Exception as err:  # diagnostics only
                programs[name] = {"error": _error_text(err)}

    kernels = floor_kernels(data)
    for kind, libs in kernels.items():
        for lib, kernel in libs.items():
            kernel.once()  # warm: first touch of the preallocated buffers
            timed[f"floor_{kind}_{lib}"] = kernel
    times, faults = interleaved(timed, repeats=repeats)
    stats = {
        name: {**summarize(ts), "page_faults_per_call": faults[name]} for name, ts in times.items()
    }

    def best(kind: str) -> tuple[str, float]:
        lib = min(kernels[kind], key=lambda k: stats[f"floor_{kind}_{k}"]["median_s"])
        return lib, stats[f"floor_{kind}_{lib}"]["median_s"]

    copy_lib, copy_s = best("copy")
    read_lib, read_s = best("read")
    fresh_lib, fresh_s = best("fresh")
    reads, writes = case.traffic(data.itemsize)
    floor_s = floor_seconds(
        reads=reads, writes=writes, itemsize=data.itemsize, size=size, copy_s=copy_s, read_s=read_s
    )
    fresh_overhead_s = max(fresh_s - copy_s, 0.0) / 2  # per newly allocated output array
    floor = {
        "bytes_read_per_element": reads,
        "bytes_written_per_element": writes,
        "floor_s": floor_s,
        "copy_s": copy_s,
        "copy_library": copy_lib,
        "read_s": read_s,
        "read_library": read_lib,
        "fresh_s": fresh_s,
        "fresh_library": fresh_lib,
        "fresh_output_overhead_s": fresh_overhead_s,
        "floor_with_fresh_outputs_s": floor_s + 2 * fresh_overhead_s,
        "bandwidth_GBps": (reads + writes) * size / floor_s / 1e9 if floor_s > 0 else None,
        "why": case.why,
    }
    med = {name: stats[name]["median_s"] for name in implementations if name in stats}
    compile_s = {name: first[name] - med[name] for name in _COMPILED if name in med}
    ratios: dict[str, float | None] = {}
    for name in ("jax", "jax_donated"):
        if name in med:
            ratios[f"{name}/floor"] = med[name] / floor_s if floor_s > 0 else None
            ratios[f"{name}/floor_with_fresh_outputs"] = (
                med[name] / floor["floor_with_fresh_outputs_s"]
            )
            for other in ("torch_eager", "torch_compile"):
                if other in med:
                    ratios[f"{other}/{name}"] = med[other] / med[name]
    return {
        "quantizer": case.label,
        "key": case.key,
        "params": case.params,
        "size": size,
        "dtype": dtype,
        "device": device,
        "first_call_s": first,
        "compile_s": compile_s,
        "times": stats,
        "floor": floor,
        "ratios": ratios,
        "errors": errors,
        "agreement_with_torch_eager": agreement,
        "xla_program": programs,
    }
