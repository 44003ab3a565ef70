"""``python -m benchmarks.resnete18_step``: one ResnetE18 training step, JAX vs torch.

The step is the same in every framework: forward of ``ResnetE18((1, 3, H, W),
num_classes)`` in training mode (BatchNorm batch statistics, running statistics
updated), softmax cross-entropy against integer labels, backward, and an SGD update
(momentum 0.9, lr 0.01: ``torch.optim.SGD`` / ``optax.sgd``, the same trace rule). One
fixed random batch (CIFAR shape by default: batch 64, 32x32x3, 10 classes).

Implementations, each measured in its own fresh Python process (so the memory figures
of one do not include another's, and one framework's thread pools do not sit in the
other's process):

* ``jax`` -- ``jax.jit`` of a functional step over ``nnx.split`` state (the model and
  the optimizer state are donated, so XLA updates them in place), compiled ahead of
  time with ``.lower().compile()`` (which also gives ``memory_analysis()``);
* ``torch_eager`` -- ``bitorch.models.ResnetE18`` as it is;
* ``torch_compile`` -- ``torch.compile(model)`` (TorchDynamo + inductor; AOTAutograd
  compiles the backward too); the optimizer step stays eager, as in torch's own
  recipes. Inductor's and AOTAutograd's on-disk caches are switched off: a cold compile.

Reported per implementation: steps/s (1 / median of the timed steps, each waited for:
``loss.item()`` / ``block_until_ready``, CUDA synchronised), the first call's time,
compile time (first call minus the median step), and memory:

* the growth of the process's peak RSS (``resource.getrusage(...).ru_maxrss``) from just
  before the first call to the end: compiler plus steps; ``tracemalloc`` does not see
  torch's (or XLA's) allocations, so the process RSS is the like-for-like measure;
* the peak RSS during the timed steps above the RSS before them (Linux: the kernel's
  high-water mark reset through ``/proc/self/clear_refs``): what a steady step adds;
* JAX also: the compiled step's ``memory_analysis()`` (arguments + outputs + temporaries
  - aliased bytes); on a GPU: ``torch.cuda.max_memory_allocated`` and JAX's
  ``peak_bytes_in_use``.

``--explain`` adds measurements that say where a gap comes from: the same network with
every binary ``QConv2d`` replaced by a float convolution (the ``float`` variant, the
control: no quantizers; JAX and torch eager only), torch eager with 1 thread, one 3x3
64->64 convolution (the network's largest stage) forward+backward alone in each
framework and layout (torch NCHW and channels_last, JAX NHWC and NCHW), and torch
eager's slowest ops of one step (``torch.profiler``).

``--markdown FILE`` writes the section "ResnetE18 training step" between its own two
marker lines (:data:`BEGIN_MARKER`, :data:`END_MARKER`), replacing only that block; a
file without them gets the block appended. Every figure in it comes from this run.

>>> ratio(2.0, 1.0)
2.0
>>> ratio(None, 1.0) is None
True
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "FRAMEWORKS",
    "build_parser",
    "main",
    "markdown_section",
    "merge_section",
    "ratio",
    "run_benchmark",
    "text_table",
]

FRAMEWORKS = ("jax", "torch_eager", "torch_compile")
VARIANTS = ("binary", "float")
BEGIN_MARKER = (
    "<!-- BEGIN RESNETE18 REPORT: written by `python -m benchmarks.resnete18_step "
    "--markdown FILE`, which replaces everything up to the END marker -->"
)
END_MARKER = "<!-- END RESNETE18 REPORT -->"
COMPILE_TARGET = 1.0  # jax steps/s >= torch.compile steps/s
EAGER_TARGET = 1.5  # jax steps/s >= 1.5 x torch eager steps/s
LEARNING_RATE = 0.01
MOMENTUM = 0.9
MIB = 2.0**20


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` (``None`` if either is missing or the divisor is 0)."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); ``None`` if absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _ru_maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)  # macOS: bytes; Linux: KiB


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssWatch:
    """RSS figures around a stretch of work: ``start()``, then ``stop()`` -> dict."""

    def __init__(self) -> None:
        self.rss0: int | None = None
        self.maxrss0: int | None = None
        self.hwm_reset = False

    def start(self) -> None:
        kib = _status_kib("VmRSS")
        self.rss0 = None if kib is None else kib * 1024
        self.maxrss0 = _ru_maxrss_bytes()
        self.hwm_reset = _reset_hwm()

    def stop(self) -> dict[str, Any]:
        hwm = _status_kib("VmHWM") if self.hwm_reset else None
        maxrss = _ru_maxrss_bytes()
        return {
            "rss_before_mib": None if self.rss0 is None else self.rss0 / MIB,
            "ru_maxrss_before_mib": None if self.maxrss0 is None else self.maxrss0 / MIB,
            "ru_maxrss_after_mib": None if maxrss is None else maxrss / MIB,
            "ru_maxrss_growth_mib": (
                None if maxrss is None or self.maxrss0 is None else (maxrss - self.maxrss0) / MIB
            ),
            "peak_above_rss_before_mib": (
                None if hwm is None or self.rss0 is None else (hwm * 1024 - self.rss0) / MIB
            ),
        }


# --------------------------------------------------------------------------- workers


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _float_torch(model: Any) -> int:
    """Replace every bitorch ``QConv2d`` of ``model`` by an ``nn.Conv2d`` of the same
    geometry (the float control); returns how many were replaced."""
    from torch import nn

    from bitorch.layers import QConv2d

    replaced = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, QConv2d):
                conv = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    stride=child.stride,
                    padding=1 if child.kernel_size[0] == 3 else 0,
                    bias=False,
                )
                setattr(module, child_name, conv)
                replaced += 1
        del name
    return replaced


def _float_nnx(model: Any, *, rngs: Any) -> int:
    """The NNX counterpart of :func:`_float_torch` (ResnetE blocks' ``body[0]``)."""
    from bitorch_jax.models.layers import Conv2d, QConv2d
    from bitorch_jax.models.resnet_e import BasicBlock

    replaced = 0
    for stage in model._model.features:
        if not hasattr(stage, "__iter__"):
            continue
        for block in stage:
            if isinstance(block, BasicBlock) and isinstance(block.body[0], QConv2d):
                block.body[0] = Conv2d(
                    block.in_channels,
                    block.out_channels,
                    3,
                    stride=block.stride,
                    padding=1,
                    bias=False,
                    rngs=rngs,
                )
                replaced += 1
    return replaced


def _time_steps(step: Any, *, warmup: int, steps: int) -> dict[str, Any]:
    """First call, ``warmup`` untimed calls, ``steps`` timed calls of ``step()``
    (which must block and return the loss as a float), with RSS figures."""
    whole = RssWatch()
    whole.start()
    start = time.perf_counter()
    first_loss = step()
    first_s = time.perf_counter() - start
    for _ in range(warmup):
        step()
    steady = RssWatch()
    steady.start()
    times, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)
    steady_mem = steady.stop()
    whole_mem = whole.stop()
    times_sorted = sorted(times)
    median = (
        times_sorted[len(times) // 2]
        if len(times) % 2
        else 0.5 * (times_sorted[len(times) // 2 - 1] + times_sorted[len(times) // 2])
    )
    return {
        "first_call_s": first_s,
        "step_times_s": times,
        "step_median_s": median,
        "step_min_s": min(times),
        "steps_per_s": 1.0 / median,
        "compile_s": first_s - median,
        "loss_first": float(first_loss),
        "loss_last": float(losses[-1]),
        "memory": {
            "rss_growth_whole_run_mib": whole_mem["ru_maxrss_growth_mib"],
            "rss_before_first_call_mib": whole_mem["rss_before_mib"],
            "rss_peak_whole_run_mib": whole_mem["ru_maxrss_after_mib"],
            "steady_peak_above_rss_mib": steady_mem["peak_above_rss_before_mib"],
        },
    }


def _torch_profile(step: Any) -> list[dict[str, Any]]:
    """torch's slowest ops of one call of ``step`` (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [
        {
            "op": e.key,
            "self_ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in rows[:8]
    ]


def _median_ms(run: Any, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``run()`` (which must block), in ms, after
    one untimed call (the compile, for a jitted function)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


def _conv_micro_torch(batch: int, hw: int, device: Any, repeats: int) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(0)
    for layout in ("nchw", "channels_last"):
        x = torch.randn(batch, 64, hw, hw, generator=gen).to(device)
        w = (torch.randn(64, 64, 3, 3, generator=gen) * 0.05).to(device)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
            w = w.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        w.requires_grad_(True)

        def run(x: Any = x, w: Any = w) -> None:
            y = torch.nn.functional.conv2d(x, w, padding=1)
            gx, gw = torch.autograd.grad(y, (x, w), torch.ones_like(y))
            if device.type == "cuda":
                torch.cuda.synchronize()
            del gx, gw

        out[f"torch_{layout}_ms"] = _median_ms(run, repeats)
    return out


def _conv_micro_jax(batch: int, hw: int, device: Any, repeats: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    out: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for layout, dims, xshape, wshape in (
        ("nhwc", ("NHWC", "HWIO", "NHWC"), (batch, hw, hw, 64), (3, 3, 64, 64)),
        ("nchw", ("NCHW", "OIHW", "NCHW"), (batch, 64, hw, hw), (64, 64, 3, 3)),
    ):
        x = jax.device_put(jnp.asarray(rng.standard_normal(xshape, dtype=np.float32)), device)
        w = jax.device_put(
            jnp.asarray(0.05 * rng.standard_normal(wshape, dtype=np.float32)), device
        )

        def conv(x: Any, w: Any, dims: Any = dims) -> Any:
            return jax.lax.conv_general_dilated(
                x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dims
            )

        @jax.jit
        def fwd_bwd(x: Any, w: Any, conv: Any = conv) -> Any:
            y, vjp = jax.vjp(conv, x, w)
            return y, *vjp(jnp.ones_like(y))

        out[f"jax_{layout}_ms"] = _median_ms(
            lambda fwd_bwd=fwd_bwd, x=x, w=w: jax.block_until_ready(fwd_bwd(x, w)), repeats
        )
    return out


def _hlo_convolutions(hlo: str) -> list[dict[str, Any]]:
    """Each convolution of a compiled HLO module's text: its ``window`` (size, padding)
    and whether XLA:CPU hands it to a YNNPACK library fusion (``__ynn_fusion``)."""
    computation, convs, library_calls = "", [], set()
    for line in hlo.splitlines():
        text = line.strip()
        if text.startswith("ENTRY"):
            computation = "ENTRY"
        elif text.startswith("%") and "{" in text and "=" not in text.split("(")[0]:
            computation = text.split()[0]
        if "__ynn_fusion" in text and "calls=" in text:
            library_calls.add(text.split("calls=")[1].split(",")[0].split()[0])
        if " convolution(" in text:
            window = text.split("window={")[1].split("}")[0] if "window={" in text else ""
            convs.append({"window": window, "computation": computation})
    return [{"window": c["window"], "ynnpack": c["computation"] in library_calls} for c in convs]


def _binary_conv_micro_jax(batch: int, hw: int, device: Any, repeats: int) -> dict[str, Any]:
    """Where a binary convolution's time goes in JAX: one 3x3 64->64 stride-1 padding-1
    convolution on ``(batch, hw, hw, 64)`` NHWC, forward + backward (input and weight
    gradients against a fixed random cotangent), jitted, median of ``repeats``, in
    variants that add one piece of :func:`bitorch_jax.layers.q_conv` at a time; plus the
    forward alone and the convolutions of the compiled HLO. ``binary_pad_-1_valid`` is
    q_conv's former formulation (the -1 ring by ``jnp.pad``, then an unpadded, VALID
    convolution); ``q_conv`` is the layer as it is (the ring padded one element wider and
    cropped again by a convolution padding of -1), checked bit for bit against it."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bitorch_jax.layers import gradient_cancellation, q_conv
    from bitorch_jax.quantizations import sign

    rng = np.random.default_rng(0)
    x, g = (
        jax.device_put(jnp.asarray(rng.standard_normal((batch, hw, hw, 64), np.float32)), device)
        for _ in range(2)
    )
    w = jax.device_put(jnp.asarray(0.05 * rng.standard_normal((3, 3, 64, 64), np.float32)), device)
    dims = ("NHWC", "HWIO", "NHWC")

    def conv(a: Any, b: Any, pad: int) -> Any:
        return jax.lax.conv_general_dilated(a, b, (1, 1), ((pad, pad),) * 2, dimension_numbers=dims)

    def ring(a: Any, width: int) -> Any:
        return jnp.pad(a, ((0, 0), (width, width), (width, width), (0, 0)), constant_values=-1.0)

    def binary(a: Any) -> Any:  # the layer's input quantizer: sign after gradient cancellation
        return sign(gradient_cancellation(a, 1.0))

    variants = {
        "float_pad_in_conv": lambda a, b: conv(a, b, 1),
        "float_pad_-1_valid": lambda a, b: conv(ring(a, 1), b, 0),
        "sign_pad_in_conv": lambda a, b: conv(binary(a), sign(b), 1),
        "binary_pad_-1_valid": lambda a, b: conv(ring(binary(a), 1), sign(b), 0),
        "q_conv": lambda a, b: q_conv(a, b, padding=1),
    }
    out: dict[str, Any] = {"fwd_bwd_ms": {}, "forward_ms": {}, "hlo_convolutions": {}}
    results = {}
    for name, f in variants.items():

        def fwd_bwd(a: Any, b: Any, c: Any, f: Any = f) -> Any:
            y, vjp = jax.vjp(f, a, b)
            return y, *vjp(c)

        try:
            both, fwd = jax.jit(fwd_bwd), jax.jit(f)
            results[name] = jax.block_until_ready(both(x, w, g))
            out["fwd_bwd_ms"][name] = _median_ms(
                lambda both=both: jax.block_until_ready(both(x, w, g)), repeats
            )
            out["forward_ms"][name] = _median_ms(
                lambda fwd=fwd: jax.block_until_ready(fwd(x, w)), repeats
            )
            if name == "float_pad_-1_valid":  # the pad op alone, for scale
                pad = jax.jit(lambda a: ring(a, 1))
                out["forward_ms"]["pad_-1_only"] = _median_ms(
                    lambda pad=pad: jax.block_until_ready(pad(x)), repeats
                )
            if name in ("float_pad_in_conv", "binary_pad_-1_valid", "q_conv"):
                hlo = both.lower(x, w, g).compile().as_text()
                out["hlo_convolutions"][name] = _hlo_convolutions(hlo)
        except Exception as err:  # e.g. a backend without negative convolution padding
            out.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"[:300]
    if "q_conv" in results and "binary_pad_-1_valid" in results:
        out["q_conv_vs_valid_bit_identical"] = {
            part: bool(jnp.array_equal(a, b))
            for part, a, b in zip(
                ("y", "dx", "dw"), results["q_conv"], results["binary_pad_-1_valid"], strict=True
            )
        }
    out["repeats"] = repeats
    return out


def _binary_conv_micro_torch(batch: int, hw: int, device: Any, repeats: int) -> dict[str, Any]:
    """torch eager counterparts of :func:`_binary_conv_micro_jax` (NCHW): ``conv2d`` with
    padding 1, ``F.pad(-1)`` then an unpadded ``conv2d`` on float inputs, and bitorch's
    ``QConv2d(64, 64, 3, padding=1)``, forward + backward, median of ``repeats``."""
    import torch
    import torch.nn.functional as F

    from bitorch.layers import QConv2d

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 64, hw, hw, generator=gen).to(device).requires_grad_(True)
    g = torch.randn(batch, 64, hw, hw, generator=gen).to(device)
    w = (torch.randn(64, 64, 3, 3, generator=gen) * 0.05).to(device).requires_grad_(True)
    layer = QConv2d(64, 64, 3, padding=1).to(device)
    variants = {
        "float_pad_in_conv": (lambda: F.conv2d(x, w, padding=1), (x, w)),
        "float_pad_-1_valid": (lambda: F.conv2d(F.pad(x, (1, 1, 1, 1), value=-1.0), w), (x, w)),
        "QConv2d": (lambda: layer(x), (x, layer.weight)),
    }
    out: dict[str, Any] = {"fwd_bwd_ms": {}}
    for name, (f, wrt) in variants.items():

        def run(f: Any = f, wrt: Any = wrt) -> None:
            grads = torch.autograd.grad(f(), wrt, g)
            if device.type == "cuda":
                torch.cuda.synchronize()
            del grads

        out["fwd_bwd_ms"][name] = _median_ms(run, repeats)
    out["repeats"] = repeats
    return out


def _worker_torch(args: argparse.Namespace, compiled: bool) -> dict[str, Any]:
    import torch

    from bitorch.models import ResnetE18

    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    if args.device == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    torch.manual_seed(args.seed)
    model = ResnetE18((1, 3, args.image, args.image), num_classes=args.classes)
    replaced = _float_torch(model) if args.variant == "float" else 0
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 3, args.image, args.image, generator=gen).to(device)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen).to(device)
    forward = model
    if compiled:
        import torch._functorch.config as functorch_config
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = False
        functorch_config.enable_autograd_cache = False
        forward = torch.compile(model)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the step (CUDA: synchronises)

    if device.type == "cuda":
        torch.cuda.synchronize()
    result = _time_steps(step, warmup=args.warmup, steps=args.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        step()
        result["memory"]["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
    result.update(
        parameters=sum(p.numel() for p in model.parameters()),
        convs_replaced_by_float=replaced,
        torch_threads=torch.get_num_threads(),
        what=(
            "torch.compile(model) (inductor; AOTAutograd backward), eager SGD step"
            if compiled
            else "eager torch, SGD step"
        ),
    )
    if args.explain and not compiled:
        result["profile_top_ops"] = _torch_profile(step)
        result["conv_micro"] = _conv_micro_torch(args.batch, args.image, device, 3)
        if args.variant == "binary":
            result["binary_conv_micro"] = _binary_conv_micro_torch(
                args.batch, args.image, device, 3
            )
    return result


def _worker_jax(args: argparse.Namespace) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    from bitorch_jax.models import ResnetE18

    if args.device == "gpu":
        device = jax.devices("gpu")[0]
    else:
        device = jax.devices("cpu")[0]
    with jax.default_device(device):
        rngs = nnx.Rngs(args.seed)
        model = ResnetE18((1, 3, args.image, args.image), num_classes=args.classes, rngs=rngs)
        replaced = _float_nnx(model, rngs=rngs) if args.variant == "float" else 0
        model.train()
        optimizer = nnx.Optimizer(model, optax.sgd(LEARNING_RATE, momentum=MOMENTUM), wrt=nnx.Param)
        graphdef, state = nnx.split((model, optimizer))
        rng = np.random.default_rng(args.seed)
        x = jnp.asarray(
            rng.standard_normal((args.batch, args.image, args.image, 3), dtype=np.float32)
        )
        y = jnp.asarray(rng.integers(0, args.classes, args.batch, dtype=np.int32))

    def loss_fn(net: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(net(xb), yb).mean()

    def train_step(state: Any, xb: jax.Array, yb: jax.Array) -> tuple[Any, jax.Array]:
        net, opt = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(loss_fn)(net, xb, yb)
        opt.update(net, grads)
        return nnx.state((net, opt)), loss

    jitted = jax.jit(train_step, donate_argnums=0)
    holder: dict[str, Any] = {"state": state, "compiled": None}

    def step() -> float:
        if holder["compiled"] is None:  # the first call compiles, ahead of time
            holder["compiled"] = jitted.lower(holder["state"], x, y).compile()
        holder["state"], loss = holder["compiled"](holder["state"], x, y)
        return float(loss)  # waits for the step

    result = _time_steps(step, warmup=args.warmup, steps=args.steps)
    compiled = holder["compiled"]
    try:
        mem = compiled.memory_analysis()
        parts = {
            "argument_mib": mem.argument_size_in_bytes / MIB,
            "output_mib": mem.output_size_in_bytes / MIB,
            "temp_mib": mem.temp_size_in_bytes / MIB,
            "alias_mib": mem.alias_size_in_bytes / MIB,
        }
        parts["peak_mib"] = (
            parts["argument_mib"] + parts["output_mib"] + parts["temp_mib"] - parts["alias_mib"]
        )
        result["memory"]["xla_memory_analysis"] = parts
    except Exception as err:  # not every backend has it
        result["memory"]["xla_memory_analysis"] = {"error": f"{type(err).__name__}: {err}"[:300]}
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        result["xla_flops"] = float(cost.get("flops", float("nan")))
    except Exception:  # optional
        result["xla_flops"] = None
    if args.device == "gpu":
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            result["memory"]["device_peak_mib"] = stats["peak_bytes_in_use"] / MIB
    params = nnx.state(model, nnx.Param)
    result.update(
        parameters=int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params))),
        convs_replaced_by_float=replaced,
        jax_device=str(device),
        what="jax.jit(functional step, donate_argnums=0) of nnx.split((model, optimizer))",
    )
    if args.explain:
        result["conv_micro"] = _conv_micro_jax(args.batch, args.image, device, 3)
        if args.variant == "binary":
            result["binary_conv_micro"] = _binary_conv_micro_jax(args.batch, args.image, device, 3)
    return result


def _worker_main(args: argparse.Namespace) -> int:
    started = _load()
    try:
        if args.worker == "jax":
            result = _worker_jax(args)
        else:
            result = _worker_torch(args, compiled=args.worker == "torch_compile")
        result["ok"] = all(math.isfinite(v) for v in (result["loss_first"], result["loss_last"]))
    except Exception as err:  # reported in the table, not fatal to the run
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"[:800]}
    result.update(framework=args.worker, variant=args.variant, load_start=started, load_end=_load())
    with open(args.worker_out, "w") as f:
        json.dump(_json_ready(result), f, indent=1)
    return 0


# --------------------------------------------------------------------------- parent


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


#: The XLA:CPU control of ``--explain``: YNNPACK library fusions off (measured on this
#: 2-core CPU, one 3x3 64->64 float convolution at batch 64, 32x32, forward + backward:
#: 177 ms with them, 105-122 ms without).
XLA_CPU_CONTROL_FLAGS = "--xla_cpu_experimental_ynn_fusion_type="


def _run_worker(
    args: argparse.Namespace,
    framework: str,
    variant: str,
    threads: int | None,
    log: Any,
    xla_flags: str | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "worker.json")
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.resnete18_step",
            "--worker",
            framework,
            "--worker-out",
            out,
            "--variant",
            variant,
            "--batch",
            str(args.batch),
            "--image",
            str(args.image),
            "--classes",
            str(args.classes),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--device",
            args.device,
            "--seed",
            str(args.seed),
        ]
        if threads is not None:
            cmd += ["--torch-threads", str(threads)]
        if args.explain:
            cmd.append("--explain")
        env = dict(os.environ, KINETO_LOG_LEVEL="5", TORCHINDUCTOR_FX_GRAPH_CACHE="0")
        if xla_flags:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla_flags}".strip()
        if args.device == "gpu":
            env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=args.worker_timeout,
            )
        except subprocess.TimeoutExpired:
            return {
                "framework": framework,
                "variant": variant,
                "ok": False,
                "error": f"timed out after {args.worker_timeout} s",
            }
        wall = time.perf_counter() - start
        try:
            with open(out) as f:
                result = json.load(f)
        except (OSError, ValueError):
            result = {
                "framework": framework,
                "variant": variant,
                "ok": False,
                "error": f"worker exited with {proc.returncode} without a result: "
                + proc.stdout[-600:],
            }
    result["process_wall_s"] = wall
    result["torch_threads_setting"] = threads
    result["xla_flags_setting"] = xla_flags
    result["label"] = _label(framework, threads, args.torch_threads, xla_flags)
    if not result.get("ok"):
        log(f"{framework} ({variant}) failed: {result.get('error')}")
    return result


def _label(
    framework: str, threads: int | None, default: int | None, xla_flags: str | None = None
) -> str:
    """The framework column: ``torch_eager (1 thread)`` for an explain run's extra thread
    setting, ``jax (XLA_FLAGS=...)`` for its XLA flags control."""
    if xla_flags:
        return f"{framework} (XLA_FLAGS={xla_flags})"
    if framework.startswith("torch") and threads != default:
        return f"{framework} ({threads} thread{'s' if threads != 1 else ''})"
    return framework


def _evaluate(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios and the targets of the binary network."""
    default = result["settings"]["torch_threads"]
    by = {
        (r["framework"], r["variant"]): r
        for r in result["runs"]
        if r.get("torch_threads_setting") == default and not r.get("xla_flags_setting")
    }

    def sps(fw: str, variant: str = "binary") -> float | None:
        return (by.get((fw, variant)) or {}).get("steps_per_s")

    ratios = {
        "jax/torch_eager": ratio(sps("jax"), sps("torch_eager")),
        "jax/torch_compile": ratio(sps("jax"), sps("torch_compile")),
        "torch_compile/torch_eager": ratio(sps("torch_compile"), sps("torch_eager")),
    }
    if any(v == "float" for _, v in by):
        ratios["float: jax/torch_eager"] = ratio(sps("jax", "float"), sps("torch_eager", "float"))
        ratios["float: jax/torch_compile"] = ratio(
            sps("jax", "float"), sps("torch_compile", "float")
        )
        for fw in FRAMEWORKS:
            ratios[f"{fw}: binary/float step time"] = ratio(sps(fw, "float"), sps(fw))
    targets = [
        {
            "target": f"jax steps/s >= {COMPILE_TARGET:g} x torch.compile",
            "value": ratios["jax/torch_compile"],
            "met": None
            if ratios["jax/torch_compile"] is None
            else ratios["jax/torch_compile"] >= COMPILE_TARGET,
        },
        {
            "target": f"jax steps/s >= {EAGER_TARGET:g} x torch eager",
            "value": ratios["jax/torch_eager"],
            "met": None
            if ratios["jax/torch_eager"] is None
            else ratios["jax/torch_eager"] >= EAGER_TARGET,
        },
    ]
    return {"ratios": ratios, "targets": targets}


def run_benchmark(
    args: argparse.Namespace, argv: list[str], progress: Any = None
) -> dict[str, Any]:
    """Run every selected (framework, variant) in its own process; the JSON-ready result.

    ``progress(partial_result)`` is called after each process (``"partial": True``), so
    a caller can save what is done if the run is stopped."""
    from benchmarks.machine import machine_info

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[resnete18_step] {msg}", file=sys.stderr, flush=True)

    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    variants = ["binary", "float"] if args.explain else ["binary"]
    result: dict[str, Any] = {
        "schema": "bitorch-resnete18-step/1",
        "command": "python -m benchmarks.resnete18_step " + " ".join(argv),
        "settings": {
            "batch": args.batch,
            "image": args.image,
            "channels": 3,
            "classes": args.classes,
            "steps": args.steps,
            "warmup": args.warmup,
            "device": args.device,
            "frameworks": frameworks,
            "variants": variants,
            "optimizer": f"SGD lr {LEARNING_RATE}, momentum {MOMENTUM}",
            "seed": args.seed,
            "torch_threads": args.torch_threads,
        },
        "machine": machine_info(),
        "runs": [],
    }
    specs = [(fw, "binary", args.torch_threads) for fw in frameworks]
    # the float control skips torch.compile: one more cold compile costs minutes on a CPU
    specs += [(fw, "float", args.torch_threads) for fw in frameworks if fw != "torch_compile"]
    specs = [spec for spec in specs if spec[1] in variants]
    if args.explain and "torch_eager" in frameworks and args.torch_threads != 1:
        specs.append(("torch_eager", "binary", 1))  # the thread-count control
    flag_specs = []
    if args.explain and "jax" in frameworks and args.device == "cpu":
        flag_specs.append(("jax", "binary", args.torch_threads))  # the XLA:CPU control
    wall = time.perf_counter()
    for framework, variant, threads, xla_flags in [(*spec, None) for spec in specs] + [
        (*spec, XLA_CPU_CONTROL_FLAGS) for spec in flag_specs
    ]:
        label = _label(framework, threads, args.torch_threads, xla_flags)
        log(f"{label} ({variant} network), fresh process")
        run = _run_worker(args, framework, variant, threads, log, xla_flags)
        if run.get("ok"):
            log(
                f"{label} ({variant}): {run['steps_per_s']:.3f} steps/s, "
                f"first call {run['first_call_s']:.1f} s"
            )
        result["runs"].append(run)
        if progress is not None:
            progress(_json_ready({**result, "partial": True}))
    result["wall_s"] = time.perf_counter() - wall
    result.update(_evaluate(result))
    result["machine"]["load_average_end"] = _load()
    return _json_ready(result)


# --------------------------------------------------------------------------- reports


def _f(value: Any, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "network",
        "framework",
        "steps/s",
        "step ms (median)",
        "first call s",
        "compile s",
        "peak RSS growth MiB",
        "steady peak above RSS MiB",
        "XLA step buffers MiB",
        "load 1-min",
    ]
    rows = []
    for r in result["runs"]:
        if not r.get("ok"):
            rows.append(
                [
                    r["variant"],
                    r.get("label", r["framework"]),
                    "failed: " + str(r.get("error"))[:120],
                ]
            )
            rows[-1] += [""] * (len(header) - 3)
            continue
        mem = r.get("memory") or {}
        xla = (mem.get("xla_memory_analysis") or {}).get("peak_mib")
        rows.append(
            [
                r["variant"],
                r.get("label", r["framework"]),
                _f(r["steps_per_s"], ".3f"),
                _f(1e3 * r["step_median_s"], ".0f"),
                _f(r["first_call_s"], ".1f"),
                _f(r["compile_s"], ".1f"),
                _f(mem.get("rss_growth_whole_run_mib"), ".0f"),
                _f(mem.get("steady_peak_above_rss_mib"), ".0f"),
                _f(xla, ".0f"),
                _f((r.get("load_end") or [None])[0]),
            ]
        )
    return header, rows


def text_table(result: dict[str, Any]) -> str:
    """The terminal report."""
    header, rows = _rows(result)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    for t in result.get("targets", []):
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"target {t['target']}: {_f(t['value'])}x -> {met}")
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]


def _ms(value: float | None) -> str:
    """Milliseconds for a finding: whole ms from 10 ms up, one decimal below."""
    return _f(value, ".0f" if value is None or abs(value) >= 10 else ".1f") + " ms"


def _binary_micro_finding(
    jax_micro: dict[str, Any] | None, torch_micro: dict[str, Any] | None, result: dict[str, Any]
) -> str | None:
    """The sentence on one binary convolution's pieces (``_binary_conv_micro_*``), from
    this run's numbers only; ``None`` if JAX's measurement is missing."""
    if not jax_micro:
        return None
    fb, fw = jax_micro.get("fwd_bwd_ms") or {}, jax_micro.get("forward_ms") or {}
    tfb = (torch_micro or {}).get("fwd_bwd_ms") or {}
    s = result["settings"]
    ms = _ms
    diff = lambda a, b: None if a is None or b is None else a - b  # noqa: E731
    a, b = fb.get("float_pad_in_conv"), fb.get("float_pad_-1_valid")
    c, d, e = fb.get("sign_pad_in_conv"), fb.get("binary_pad_-1_valid"), fb.get("q_conv")
    text = (
        f"One binary convolution alone (3x3 64->64, stride 1, padding 1, on ({s['batch']}, "
        f"{s['image']}, {s['image']}, 64), forward + backward with input and weight "
        f"gradients against a random cotangent, median of {jax_micro.get('repeats')}). JAX: "
        f"float convolution with its zero padding inside the convolution {ms(a)}; float "
        f"input padded with -1 by jnp.pad, then an unpadded (VALID) convolution {ms(b)}; "
        "sign with gradient cancellation on the input and sign on the weight, zero padding "
        f"inside the convolution {ms(c)}; the same with the -1 padding by jnp.pad and a "
        f"VALID convolution (q_conv's former formulation) {ms(d)}; q_conv as it is (the -1 "
        f"ring padded one element wider and cropped again by a convolution padding of -1) "
        f"{ms(e)}."
    )
    if tfb:
        text += (
            f" torch eager: conv2d {ms(tfb.get('float_pad_in_conv'))}, F.pad(-1) + conv2d "
            f"{ms(tfb.get('float_pad_-1_valid'))}, QConv2d {ms(tfb.get('QConv2d'))}."
        )
    text += (
        f" In JAX the quantizers add {ms(diff(c, a))}, the -1 padding by jnp.pad + VALID "
        f"{ms(diff(d, c))} per convolution ({ms(diff(b, a))} on float inputs) and q_conv's "
        f"cropped ring {ms(diff(e, c))}"
    )
    if tfb:
        text += (
            f"; in torch the whole binary layer adds "
            f"{ms(diff(tfb.get('QConv2d'), tfb.get('float_pad_in_conv')))}"
        )
    text += (
        f". Not the pad op itself (jnp.pad alone {ms(fw.get('pad_-1_only'))}) but the "
        f"unpadded convolutions it leaves: forward alone {ms(fw.get('binary_pad_-1_valid'))} "
        f"for the VALID form against {ms(fw.get('float_pad_in_conv'))} for the float "
        f"convolution and {ms(fw.get('q_conv'))} for q_conv."
    )
    hlo = jax_micro.get("hlo_convolutions") or {}
    if hlo.get("binary_pad_-1_valid"):
        convs, floats = hlo["binary_pad_-1_valid"], hlo.get("float_pad_in_conv") or []
        ours = hlo.get("q_conv") or []
        bare = [c for c in convs if "pad=" not in c["window"]]
        text += (
            f" XLA folds only zero padding into a convolution: in the compiled VALID form "
            f"{len(bare)} of its {len(convs)} convolutions have no padding at all (windows "
            f"{', '.join(c['window'].replace('size=', '') for c in bare) or '-'}), "
            f"{sum(c['ynnpack'] for c in bare)} of them in YNNPACK library fusions; padded "
            f"are {sum('pad=' in c['window'] for c in floats)} of {len(floats)} in the float "
            f"layer and {sum('pad=' in c['window'] for c in ours)} of {len(ours)} in q_conv."
        )
    same = jax_micro.get("q_conv_vs_valid_bit_identical")
    if e is not None and d is not None and same:
        identical = [k for k, v in same.items() if v]
        text += f" q_conv is {_f(ratio(d, e))}x as fast as the VALID form; " + (
            "output, input and weight gradients bit-identical."
            if len(identical) == len(same)
            else f"bit-identical: {', '.join(identical) or 'none'} of y, dx, dw."
        )
    return text


def _findings(result: dict[str, Any]) -> list[str]:
    """Measured facts that explain the ratios (only what this run measured)."""
    default = result["settings"]["torch_threads"]
    ok_runs = [r for r in result["runs"] if r.get("ok")]
    by = {
        (r["framework"], r["variant"]): r
        for r in ok_runs
        if r.get("torch_threads_setting") == default and not r.get("xla_flags_setting")
    }
    ratios = result.get("ratios", {})
    out = []
    flagged = [r for r in ok_runs if r.get("xla_flags_setting") and r["variant"] == "binary"]
    jax_default = by.get(("jax", "binary"))
    if flagged and jax_default:
        run, eager = flagged[0], by.get(("torch_eager", "binary"))
        compiled = by.get(("torch_compile", "binary"))
        out.append(
            f"XLA:CPU control, the JAX binary step with XLA_FLAGS={run['xla_flags_setting']} "
            f"(YNNPACK library fusions off): {1e3 * run['step_median_s']:.0f} ms against "
            f"{1e3 * jax_default['step_median_s']:.0f} ms with XLA's defaults"
            + (
                f"; JAX/eager speed {_f(ratio(run['steps_per_s'], eager['steps_per_s']))}x"
                if eager
                else ""
            )
            + (
                f", JAX/compile {_f(ratio(run['steps_per_s'], compiled['steps_per_s']))}x"
                if compiled
                else ""
            )
            + ". The flag changes which kernels XLA:CPU calls for convolutions and dots."
        )
    one = [r for r in ok_runs if r.get("torch_threads_setting") == 1 and default != 1]
    eager = by.get(("torch_eager", "binary"))
    if one and eager:
        out.append(
            f"torch eager with 1 thread: {1e3 * one[0]['step_median_s']:.0f} ms per step, "
            f"against {1e3 * eager['step_median_s']:.0f} ms with torch's default "
            f"{eager.get('torch_threads')} threads (JAX/eager with 1 torch thread "
            f"{_f(ratio(by.get(('jax', 'binary'), {}).get('steps_per_s'), one[0]['steps_per_s']))}"
            "x). torch runs every kernel on an OpenMP team; when other processes hold "
            "the cores, the team waits at each barrier, so eager torch (hundreds of "
            "kernels per step) loses most on a busy machine."
        )
    jb, eb, cb = by.get(("jax", "binary")), by.get(("torch_eager", "binary")), None
    cb = by.get(("torch_compile", "binary"))
    if jb and eb:
        out.append(
            f"Binary network: JAX {1e3 * jb['step_median_s']:.0f} ms per step, torch eager "
            f"{1e3 * eb['step_median_s']:.0f} ms "
            f"(JAX/eager speed {_f(ratios.get('jax/torch_eager'))}x)"
            + (
                f", torch.compile {1e3 * cb['step_median_s']:.0f} ms (JAX/compile "
                f"{_f(ratios.get('jax/torch_compile'))}x)."
                if cb
                else "."
            )
        )
    if ("jax", "float") in by:
        parts, extra = [], []
        for fw in FRAMEWORKS:
            f, b = by.get((fw, "float")), by.get((fw, "binary"))
            if f and b:
                parts.append(
                    f"{fw} {1e3 * f['step_median_s']:.0f} ms float vs "
                    f"{1e3 * b['step_median_s']:.0f} ms binary"
                )
                extra.append(f"{fw} {1e3 * (b['step_median_s'] - f['step_median_s']):.0f} ms")
        text = (
            "Control, the same network with float convolutions (nn.Conv2d / Conv2d, zero "
            "padding) in place of the binary QConv2d: " + "; ".join(parts) + ". The binary "
            "layers (sign of inputs and weights, -1 padding, straight-through gradients "
            "with cancellation) add " + ", ".join(extra) + " per step. JAX/eager speed on "
            f"the float network: {_f(ratios.get('float: jax/torch_eager'))}x."
        )
        if cb:
            text += (
                f" torch.compile's binary step ({1e3 * cb['step_median_s']:.0f} ms) is close "
                f"to JAX's float step ({1e3 * by[('jax', 'float')]['step_median_s']:.0f} ms)."
            )
        out.append(text)
    micro: dict[str, Any] = {}
    for r in by.values():
        micro.update(r.get("conv_micro") or {})
    if micro:
        s = result["settings"]
        out.append(
            f"One 3x3 64->64 convolution on ({s['batch']}, 64, {s['image']}, {s['image']}), "
            "forward + backward (input and weight gradients), median of 3, alone: "
            + ", ".join(f"{k[:-3].replace('_', ' ')} {v:.0f} ms" for k, v in sorted(micro.items()))
            + ". torch's convolutions run as aten::mkldnn_convolution (oneDNN, see the "
            "profile below); the JAX figures are XLA:CPU's own convolution."
        )
    binary_micro = _binary_micro_finding(
        (jb or {}).get("binary_conv_micro"), (eb or {}).get("binary_conv_micro"), result
    )
    if binary_micro:
        out.append(binary_micro)
    if eb and eb.get("profile_top_ops"):
        ops = ", ".join(
            f"{o['op']} {o['share']:.0%} ({o['calls']} calls)" for o in eb["profile_top_ops"][:6]
        )
        out.append(f"torch eager, one profiled step, largest self-CPU shares: {ops}.")
    if jb and jb.get("xla_flops"):
        out.append(
            f"XLA counts {jb['xla_flops'] / 1e9:.1f} GFLOP in the compiled JAX step: "
            f"{jb['xla_flops'] / 1e9 / jb['step_median_s']:.1f} GFLOP/s achieved."
        )
    load = result["machine"].get("load_average")
    if load and result["machine"].get("cpus") and load[0] > 0.5 * result["machine"]["cpus"]:
        out.append(
            f"The machine was busy (1-minute load {load[0]} at the start, on "
            f"{result['machine']['cpus']} CPUs; each run's load is in the table): absolute "
            "times are inflated, and each framework ran in its own process at a different "
            "time, so ratios carry that noise."
        )
    return out


def markdown_section(result: dict[str, Any]) -> str:
    """The "ResnetE18 training step" section, between :data:`BEGIN_MARKER` and
    :data:`END_MARKER`, from ``result`` only."""
    s, m = result["settings"], result["machine"]
    header, rows = _rows(result)
    lines = [
        BEGIN_MARKER,
        "",
        "## ResnetE18 training step",
        "",
        f"Generated by `{result['command']}` on {m.get('date')}. ResnetE18 "
        f"(bitorch.models / bitorch_jax.models), input {s['batch']}x{s['channels']}x"
        f"{s['image']}x{s['image']}, {s['classes']} classes, training mode, cross-entropy, "
        f"backward, {s['optimizer']}; one fixed random batch. Each framework ran in its own "
        f"fresh process: first call, {s['warmup']} warm-up step(s), then {s['steps']} timed "
        "steps (median). compile s = first call minus the median step. Peak RSS growth = "
        "`ru_maxrss` at the end minus before the first call (compiler and steps; "
        "tracemalloc cannot see torch's or XLA's allocations); steady peak = the highest "
        "RSS during the timed steps above the RSS before them (Linux `clear_refs`); XLA "
        "step buffers = `memory_analysis()` of the compiled step (arguments + outputs + "
        "temporaries - aliased).",
        "",
        f"- Machine: {m.get('cpu_model')}, {m.get('cpus')} logical CPUs, "
        f"{m.get('memory_gib')} GiB RAM, GPU: {m.get('gpu') or 'none'}; device measured: "
        f"{s['device']}",
        f"- Software: Python {m.get('python')}, "
        + ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
        + f"; torch threads {m.get('torch_threads')}",
        f"- Load average at start {m.get('load_average')}, at end {m.get('load_average_end')}; "
        f"whole run {result.get('wall_s', 0):.0f} s",
        "",
        *_md_table(header, rows),
        "",
        "Targets (binary network):",
        "",
    ]
    for t in result.get("targets", []):
        met = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        lines.append(f"- {t['target']}: {_f(t['value'])}x, {met}")
    findings = _findings(result)
    if findings:
        lines += ["", "Findings of this run:", ""]
        lines += [f"- {f}" for f in findings]
    lines += ["", END_MARKER, ""]
    return "\n".join(lines)


def merge_section(existing: str | None, block: str) -> str:
    """``existing`` with ``block`` between the markers (appended if it has none).

    >>> block = BEGIN_MARKER + "\\nnew\\n" + END_MARKER + "\\n"
    >>> merge_section("notes\\n", block).endswith(END_MARKER + "\\n")
    True
    >>> merge_section("a\\n" + block.replace("new", "old") + "b\\n", block).count("old")
    0
    """
    if existing is None:
        return "# Benchmarks\n\n" + block
    begin, end = existing.count(BEGIN_MARKER), existing.count(END_MARKER)
    if begin == 0 and end == 0:
        return existing.rstrip("\n") + "\n\n" + block
    if begin != 1 or end != 1 or existing.index(BEGIN_MARKER) > existing.index(END_MARKER):
        raise ValueError(
            f"found {begin} begin and {end} end marker(s) of the ResnetE18 section; need "
            "one of each, in order"
        )
    head = existing[: existing.index(BEGIN_MARKER)]
    tail = existing[existing.index(END_MARKER) + len(END_MARKER) :]
    return head + block.rstrip("\n") + tail


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.resnete18_step",
        description="ResnetE18 training step (forward, cross-entropy, backward, SGD) in "
        "jax.jit, torch eager and torch.compile, each in a fresh process.",
    )
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--image", type=int, default=32, help="image height = width (default 32)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after the first call")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--explain",
        action="store_true",
        help="also run the float-convolution control network, a single-convolution "
        "timing per layout, and torch eager's op profile",
    )
    p.add_argument("--worker-timeout", type=float, default=900, help="seconds per process")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE", help="write/replace the section in FILE")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: rewrite the reports of a result saved with --json",
    )
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--variant", choices=VARIANTS, default="binary", help=argparse.SUPPRESS)
    return p


def _saver(path: str | None) -> Any:
    """A ``progress`` callback writing partial results to ``path`` (``None``: none)."""
    if not path:
        return None

    def save(partial: dict[str, Any]) -> None:
        with open(path, "w") as f:
            json.dump(partial, f, indent=1, allow_nan=False)
            f.write("\n")

    return save


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch", "image", "classes", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.device == "gpu":
        # torch and JAX share the GPU (and the parent only asks JAX for its devices):
        # JAX must not take 75 % of the GPU memory up front
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.worker:
        return _worker_main(args)
    bad = [f for f in args.frameworks.split(",") if f.strip() and f.strip() not in FRAMEWORKS]
    if bad:
        parser.error(f"--frameworks: unknown {bad}; choose from {', '.join(FRAMEWORKS)}")
    if args.markdown and os.path.exists(args.markdown):
        with open(args.markdown) as f:
            try:
                merge_section(f.read(), BEGIN_MARKER + "\n" + END_MARKER + "\n")
            except ValueError as err:
                parser.error(f"--markdown {args.markdown}: {err}")
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        result.update(_evaluate(result))
    else:
        result = run_benchmark(args, argv, progress=_saver(args.json))
    print(text_table(result))
    if args.json and not args.from_json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, allow_nan=False)
            f.write("\n")
    if args.markdown:
        existing = None
        if os.path.exists(args.markdown):
            with open(args.markdown) as f:
                existing = f.read()
        with open(args.markdown, "w") as f:
            f.write(merge_section(existing, markdown_section(result)))
    return 0 if all(r.get("ok") for r in result["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
