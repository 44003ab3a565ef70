"""Training-step benchmark of the example binary network, in both frameworks.

Uses ``examples/binary_net.py`` (the digits network: a float conv, a binary conv, a binary
linear layer, BatchNorms, Adam). Both networks start from the same weights and step on
the same batches. Reported per framework: the first step (for JAX: tracing and XLA
compilation plus one step), steady-state steps per second (median over repeats of a
block of steps, each step waiting for its loss, as ``torch_train_step``'s ``.item()``
does), and the peak memory of one step:

* JAX: the compiled step's ``memory_analysis()``: XLA assigns every buffer of the step
  ahead of time, so ``arguments + outputs + temporaries - aliased`` bytes is the peak
  of the step's own buffers (parameters, optimizer state, batch and all activations,
  gradients and updated state).
* torch: :mod:`torch.profiler` with ``profile_memory=True`` records every allocation and
  free of the CPU allocator in order; the running sum over one step gives the peak
  above the bytes live when the step starts, and those (parameters, buffers, gradients
  from the previous step, optimizer state, batch) are added. ``tracemalloc`` cannot see
  torch's allocations and the process RSS counts freed memory the allocator keeps.

Both count tensor bytes, not interpreter or compiled-code overhead.

>>> peak_from_events([(0, 100), (1, -40), (2, 70)])
130
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["peak_from_events", "bench_training", "example_module"]


def peak_from_events(events: list[tuple[float, int]]) -> int:
    """Largest running sum of ``(time, bytes)`` allocation events (frees negative)."""
    running, peak = 0, 0
    for _, delta in sorted(events, key=lambda e: e[0]):
        running += delta
        peak = max(peak, running)
    return peak


def example_module() -> Any:
    """``examples.binary_net`` (imported lazily: it needs scikit-learn and optax)."""
    import examples.binary_net as binary_net

    return binary_net


def _tensor_bytes(tensors: Any) -> int:
    import torch

    seen: set[int] = set()
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total


def _torch_live_bytes(net: Any, optimizer: Any, batch: tuple[Any, Any]) -> int:
    tensors = list(net.parameters()) + list(net.buffers())
    tensors += [p.grad for p in net.parameters() if p.grad is not None]
    for state in optimizer.state.values():
        tensors += [v for v in state.values()]
    tensors += list(batch)
    return _tensor_bytes(tensors)


def _torch_step_peak(bn: Any, net: Any, optimizer: Any, batch: tuple[Any, Any]) -> dict:
    from torch.profiler import ProfilerActivity, profile

    live = _torch_live_bytes(net, optimizer, batch)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        bn.torch_train_step(net, optimizer, *batch)
    # The raw allocator records ("[memory]", +bytes on allocation, -bytes on free).
    events = [
        (ev.start_ns(), int(ev.nbytes()))
        for ev in prof.profiler.kineto_results.events()
        if ev.name() == "[memory]"
    ]
    peak_delta = peak_from_events(events)
    return {
        "method": "torch.profiler profile_memory: running sum of allocator events",
        "live_at_start_bytes": live,
        "peak_above_start_bytes": peak_delta,
        "peak_bytes": live + peak_delta,
        "allocation_events": len(events),
    }


def _jax_step_memory(bn: Any, net: Any, optimizer: Any, xb: Any, yb: Any) -> dict:
    compiled = bn._jax_train_step.lower(net, optimizer, xb, yb).compile()
    mem = compiled.memory_analysis()
    parts = {
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "temp_bytes": int(mem.temp_size_in_bytes),
        "alias_bytes": int(mem.alias_size_in_bytes),
    }
    peak = (
        parts["argument_bytes"] + parts["output_bytes"] + parts["temp_bytes"] - parts["alias_bytes"]
    )
    return {
        "method": "compiled.memory_analysis(): arguments + outputs + temp - alias",
        **parts,
        "peak_bytes": peak,
    }


def bench_training(*, batch_size: int, steps: int, repeats: int, seed: int = 0) -> dict:
    """Steps per second, first-step time and peak step memory of both frameworks."""
    import jax
    import jax.numpy as jnp
    import torch

    bn = example_module()
    data = bn.load_digits_data(seed=seed)
    n = len(data.y_train)
    if not 1 <= batch_size <= n:
        raise ValueError(f"train batch size must be in 1..{n}, got {batch_size}")
    batches = list(bn.batch_indices(n, batch_size, max(steps, 1), seed))
    torch_batches = [
        (torch.from_numpy(data.x_train[i]), torch.from_numpy(data.y_train[i])) for i in batches
    ]
    jax_batches = [
        (jnp.asarray(data.nhwc(data.x_train[i])), jnp.asarray(data.y_train[i])) for i in batches
    ]

    torch_net = bn.build_torch_net(seed)
    flax_net = bn.build_flax_net_from_torch(torch_net)
    torch_opt = bn.make_torch_optimizer(torch_net)
    jax_opt = bn.make_jax_optimizer(flax_net)
    jax_step = bn.make_jax_train_step(flax_net, jax_opt)

    def torch_block() -> float:
        loss = 0.0
        for xb, yb in torch_batches:
            loss = bn.torch_train_step(torch_net, torch_opt, xb, yb)
        return loss

    def jax_block() -> float:
        loss = None
        for xb, yb in jax_batches:
            loss = jax.block_until_ready(jax_step(xb, yb))
        return float(loss)

    result: dict[str, Any] = {"batch_size": batch_size, "steps_per_block": len(batches)}
    first: dict[str, float] = {}
    start = time.perf_counter()
    bn.torch_train_step(torch_net, torch_opt, *torch_batches[0])
    first["torch_eager"] = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(jax_step(*jax_batches[0]))
    first["jax"] = time.perf_counter() - start

    times: dict[str, list[float]] = {"torch_eager": [], "jax": []}
    blocks = {"torch_eager": torch_block, "jax": jax_block}
    for rep in range(repeats):
        order = ["torch_eager", "jax"] if rep % 2 == 0 else ["jax", "torch_eager"]
        for name in order:
            start = time.perf_counter()
            blocks[name]()
            times[name].append((time.perf_counter() - start) / len(batches))
    for name, ts in times.items():
        step_s = float(np.median(ts))
        result[name] = {
            "first_step_s": first[name],
            "step_median_s": step_s,
            "step_min_s": float(np.min(ts)),
            "steps_per_s": 1.0 / step_s,
            "compile_s": (first[name] - step_s) if name == "jax" else None,
        }
    result["torch_eager"]["memory"] = _torch_step_peak(bn, torch_net, torch_opt, torch_batches[0])
    result["jax"]["memory"] = _jax_step_memory(bn, flax_net, jax_opt, *jax_batches[0])
    return result
