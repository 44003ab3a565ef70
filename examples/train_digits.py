"""Train the binary digits network with bitorch (PyTorch) and bitorch_jax (Flax NNX).

Both start from identical weights (the torch initialisation, converted), see the same
batches in the same order and use the same optimizer (Adam, lr 1e-3). The script prints
the two loss curves side by side, the largest step-wise loss difference and both test
accuracies, and saves a PNG of the curves::

    python -m examples.train_digits                       # float32, 400 steps
    python -m examples.train_digits --dtype float64       # tighter agreement
    python -m examples.train_digits --steps 800 --out out/digits.png

Why the float32 curves drift apart while the float64 ones do not: the two libraries
round differently in the last bit (summation order in convolutions, BatchNorm, Adam), and
two amplifiers turn that into visible differences. (1) Adam divides each gradient by its
own running magnitude, so a gradient that is pure rounding noise (for instance a weight
whose binary input is the same sign over the whole batch, where BatchNorm makes the true
gradient 0) moves the weight by about ``lr`` in a direction set by the noise; this
dominates the first steps. (2) Where a pre-activation sits within rounding of 0, ``sign``
sends it to opposite sides in the two runs, a difference of 2 rather than 1e-7. Both are
rare per element but compound over steps. float64 pushes the rounding down by nine orders
of magnitude, and the curves then agree to ~1e-16 over the whole run.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

from examples.binary_net import (
    HYPERPARAMETERS,
    DigitsData,
    batch_indices,
    build_flax_net_from_torch,
    build_torch_net,
    jax_logits,
    load_digits_data,
    make_jax_optimizer,
    make_jax_train_step,
    make_torch_optimizer,
    torch_logits,
    torch_train_step,
)

__all__ = ["TrainingResult", "train_both", "main"]


@dataclass
class TrainingResult:
    """Loss curves, accuracies, prediction agreement and timings of one run."""

    torch_losses: np.ndarray
    jax_losses: np.ndarray
    torch_accuracy: float
    jax_accuracy: float
    prediction_agreement: float
    initial_logit_difference: float
    torch_seconds: float
    jax_seconds: float
    jax_first_step_seconds: float


def train_both(
    *, steps: int, dtype: str = "float32", seed: int = 0, data: DigitsData | None = None
) -> TrainingResult:
    """Train the torch and the Flax network side by side; see the module docstring."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"train_both: dtype must be 'float32' or 'float64', got {dtype!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"train_both: steps must be an int >= 1, got {steps!r}")
    data = data if data is not None else load_digits_data(seed=seed)
    torch_dtype = getattr(torch, dtype)
    np_dtype = np.dtype(dtype)
    batch_size = HYPERPARAMETERS["batch_size"]
    batches = list(batch_indices(len(data.y_train), batch_size, steps, seed))

    x_train_t = torch.from_numpy(data.x_train.astype(np_dtype))
    y_train_t = torch.from_numpy(data.y_train)
    x_test_t = torch.from_numpy(data.x_test.astype(np_dtype))

    torch_net = build_torch_net(seed, dtype=torch_dtype)
    x64 = jax.enable_x64(True) if dtype == "float64" else nullcontext()
    with x64:
        flax_net = build_flax_net_from_torch(torch_net)

        # identical start: evaluation-mode logits on the test set, before any training
        x_test_j = jnp.asarray(DigitsData.nhwc(data.x_test.astype(np_dtype)))
        logits_t = torch_logits(torch_net, x_test_t).numpy()
        logits_j = np.asarray(jax_logits(flax_net, x_test_j))
        initial_difference = float(np.max(np.abs(logits_t - logits_j)))

        torch_optimizer = make_torch_optimizer(torch_net)
        torch_losses = np.empty(steps)
        start = time.perf_counter()
        for i, index in enumerate(batches):
            torch_losses[i] = torch_train_step(
                torch_net, torch_optimizer, x_train_t[index], y_train_t[index]
            )
        torch_seconds = time.perf_counter() - start

        jax_optimizer = make_jax_optimizer(flax_net)
        step = make_jax_train_step(flax_net, jax_optimizer)
        x_train_j = jnp.asarray(DigitsData.nhwc(data.x_train.astype(np_dtype)))
        y_train_j = jnp.asarray(data.y_train.astype(np.int32))
        jax_losses = np.empty(steps)
        start = time.perf_counter()
        first_step = 0.0
        for i, index in enumerate(batches):
            jax_losses[i] = float(step(x_train_j[index], y_train_j[index]))
            if i == 0:
                first_step = time.perf_counter() - start
        jax_seconds = time.perf_counter() - start

        pred_t = torch_logits(torch_net, x_test_t).argmax(-1).numpy()
        pred_j = np.asarray(jnp.argmax(jax_logits(flax_net, x_test_j), axis=-1))
    return TrainingResult(
        torch_losses=torch_losses,
        jax_losses=jax_losses,
        torch_accuracy=float(np.mean(pred_t == data.y_test)),
        jax_accuracy=float(np.mean(pred_j == data.y_test)),
        prediction_agreement=float(np.mean(pred_t == pred_j)),
        initial_logit_difference=initial_difference,
        torch_seconds=torch_seconds,
        jax_seconds=jax_seconds,
        jax_first_step_seconds=first_step,
    )


def save_plot(result: TrainingResult, path: Path, title: str) -> None:
    """Both loss curves (top) and their absolute difference on a log scale (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(result.torch_losses) + 1)
    diff = np.abs(result.torch_losses - result.jax_losses)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(2, 1))
    top.plot(steps, result.torch_losses, label="PyTorch + bitorch", linewidth=1.6)
    top.plot(steps, result.jax_losses, label="Flax NNX + bitorch_jax", linewidth=1.0, ls="--")
    top.set_ylabel("training loss (cross-entropy)")
    top.set_title(title)
    top.legend()
    bottom.semilogy(steps, np.maximum(diff, 1e-18), color="tab:red", linewidth=0.8)
    bottom.set_ylabel("|torch - jax|")
    bottom.set_xlabel("step")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.train_digits",
        description="Train the same binary network with bitorch (PyTorch) and bitorch_jax "
        "(Flax) from identical weights and compare the loss curves.",
    )
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--seed", type=int, default=0, help="weights, split and batch order")
    parser.add_argument("--every", type=int, default=25, help="print every N-th step")
    parser.add_argument(
        "--out", type=Path, default=Path("out/train_digits.png"), help="PNG plot path"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: this network is too small to gain from "
        "more, and on a busy CPU extra threads make torch several times slower)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1 or args.torch_threads < 1:
        parser.error("--steps, --every and --torch-threads must be >= 1")
    torch.set_num_threads(args.torch_threads)

    wall = time.perf_counter()
    result = train_both(steps=args.steps, dtype=args.dtype, seed=args.seed)
    diff = np.abs(result.torch_losses - result.jax_losses)
    print(
        f"binary digits network, {args.dtype}, {args.steps} steps of batch "
        f"{HYPERPARAMETERS['batch_size']}, Adam lr {HYPERPARAMETERS['learning_rate']}, "
        f"seed {args.seed}"
    )
    print(f"initial test-set logits, max |torch - jax|: {result.initial_logit_difference:.3g}")
    print(f"{'step':>6}  {'torch loss':>12}  {'jax loss':>12}  {'|diff|':>10}")
    for i in range(args.steps):
        if (i + 1) % args.every == 0 or i == 0 or i == args.steps - 1:
            print(
                f"{i + 1:>6}  {result.torch_losses[i]:>12.6f}  {result.jax_losses[i]:>12.6f}  "
                f"{diff[i]:>10.3g}"
            )
    worst = int(np.argmax(diff))
    print(f"largest per-step loss difference: {diff[worst]:.3g} at step {worst + 1}")
    for k in (10, 50, 100):
        if k <= args.steps:
            print(f"  largest over the first {k:>3} steps: {diff[:k].max():.3g}")
    print(f"mean per-step loss difference: {diff.mean():.3g}")
    print(
        f"test accuracy: torch {result.torch_accuracy:.4f}, jax {result.jax_accuracy:.4f} "
        f"(same prediction on {result.prediction_agreement:.1%} of the test images)"
    )
    print(
        f"training time: torch {result.torch_seconds:.2f} s, jax {result.jax_seconds:.2f} s "
        f"(of which {result.jax_first_step_seconds:.2f} s first step, with compilation)"
    )
    save_plot(
        result,
        args.out,
        f"binary digits network, {args.dtype}: PyTorch vs Flax from identical weights",
    )
    print(f"plot: {args.out}")
    print(f"total wall time: {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
