"""A small ReActNet-style binary network, trained twice: PyTorch + bitorch, Flax NNX +
bitorch_jax, from identical weights, with Bop on the binary kernels and Adam on the rest.

The network classifies the 8x8 scikit-learn digits (shipped with scikit-learn)::

    stem    Conv2d(1 -> C, 3x3, padding 1, no bias)      full precision
    bn0     BatchNorm
    2 x block:
      sign  RSign(C)                                     learnable per-channel shift, sign
      conv  QConv2d(C -> C, 3x3, padding 1)              sign weights (Bop); its input is
                                                         already +-1: the input "sign" is the
                                                         identity there, with a straight-through
                                                         gradient and no second cancellation
                                                         (threshold 0); padded with 0
      bn    BatchNorm
      +     residual: block input + bn(conv(...))
      act   RPReLU(C)                                    shift, PReLU, shift
    pool    global average over 8x8
    fc      Linear(C -> 10)

The torch network is built and initialised by PyTorch (``torch.manual_seed``), its binary
kernels set to +-1 (``bitorch.optim.binarize_``, as Bop needs), and the weights carried
into the NNX twin by :func:`bitorch_jax.convert.torch_to_nnx` (same module names, no name
map). Both see the same minibatches in the same order; torch steps ``bitorch.optim.Bop``
and ``torch.optim.Adam``, JAX ``bitorch_jax.optim.binary_optimizer`` (Bop and
``optax.adam`` with the same settings). In float64 (the default; x64 is switched on for
the run only, with ``jax.enable_x64``) the two loss curves agree to rounding: the script
exits with status 1 if the largest relative per-step difference exceeds ``--tolerance``
(default 1e-10). In float32 the curves are printed and saved but not checked: rounding
differences of 1e-7 flip an occasional sign or Bop decision and the runs drift apart
(see ``examples/train_digits.py`` for why).

(The convolution keeps the 1-bit input quantizer rather than being ``QConv2d_NoAct`` so that
the summaries count its MACs as binary: they read a layer's quantizers.) After training,
the binary kernels of both runs are compared (Bop's flips must be the same).

It also prints ``bitorch.summary`` of the torch network, ``bitorch_jax.summary`` of the
NNX one (1-bit and full-precision parameters, packed memory, binary and FP MACs) and
``nnx.tabulate``'s table, and writes ``losses.csv`` and (with matplotlib) ``losses.png``
to ``--out``::

    python -m examples.reactnet_digits                    # float64, 40 steps
    python -m examples.reactnet_digits --steps 200 --out out/reactnet
"""

from __future__ import annotations

import argparse
import csv
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx
from torch import nn
from torch.nn import functional as F

import bitorch
import bitorch_jax
from bitorch.layers import QConv2d, RPReLU, RSign
from bitorch.optim import Bop, binarize_, split_binary_parameters
from bitorch_jax.convert import nnx_to_torch, torch_to_nnx
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.optim import binary_optimizer, bop
from examples.binary_net import DigitsData, batch_indices, load_digits_data

__all__ = [
    "SETTINGS",
    "TorchReActNet",
    "FlaxReActNet",
    "build_torch_net",
    "build_flax_net_from_torch",
    "ReActNetRun",
    "train_both",
    "main",
]

SETTINGS = {
    "channels": 16,
    "batch_size": 128,
    "adam_lr": 5e-3,
    "adam_betas": (0.9, 0.999),
    "adam_eps": 1e-8,
    "bop_threshold": 1e-6,
    "bop_gamma": 1e-3,
    "batchnorm_momentum_torch": 0.1,  # Flax: 1 - 0.1
    "batchnorm_eps": 1e-5,
    "gradient_cancellation_threshold": 1.0,
}
#: The largest relative per-step loss difference accepted in float64.
TOLERANCE_FLOAT64 = 1e-10
_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------- torch


def _torch_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(
        channels, momentum=SETTINGS["batchnorm_momentum_torch"], eps=SETTINGS["batchnorm_eps"]
    )


class TorchBlock(nn.Module):
    """RSign -> binary 3x3 conv -> BatchNorm -> + input -> RPReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        threshold = SETTINGS["gradient_cancellation_threshold"]
        self.sign = RSign(channels, gradient_cancellation_threshold=threshold)
        # the input is +-1 already: sign is the identity, no second gradient cancellation
        self.conv = QConv2d(channels, channels, 3, padding=1, pad_value=0.0,
                            gradient_cancellation_threshold=0.0)  # fmt: skip
        self.bn = _torch_bn(channels)
        self.act = RPReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.bn(self.conv(self.sign(x))))


class TorchReActNet(nn.Module):
    """The network in PyTorch (bitorch layers). Input ``(N, 1, 8, 8)``."""

    def __init__(self, channels: int = SETTINGS["channels"], blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn0 = _torch_bn(channels)
        self.blocks = nn.ModuleList([TorchBlock(channels) for _ in range(blocks)])
        self.fc = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean((2, 3)))


def build_torch_net(seed: int, *, dtype: torch.dtype = torch.float64) -> TorchReActNet:
    """PyTorch's initialisation under ``torch.manual_seed(seed)``, binary kernels +-1."""
    torch.manual_seed(seed)
    net = TorchReActNet().to(dtype)
    binarize_(net)
    return net


# ----------------------------------------------------------------------------- Flax NNX


def _flax_bn(channels: int, param_dtype: jnp.dtype) -> nnx.BatchNorm:
    return nnx.BatchNorm(
        channels,
        momentum=1.0 - SETTINGS["batchnorm_momentum_torch"],
        epsilon=SETTINGS["batchnorm_eps"],
        use_fast_variance=False,  # mean((x - mean)**2), as torch
        param_dtype=param_dtype,
        rngs=nnx.Rngs(0),
    )


_ZEROS = nnx.initializers.zeros_init()


class FlaxBlock(nnx.Module):
    """The same block in NNX (channels last)."""

    def __init__(self, channels: int, param_dtype: jnp.dtype) -> None:
        threshold = SETTINGS["gradient_cancellation_threshold"]
        self.sign = qnnx.RSign(
            channels, gradient_cancellation_threshold=threshold, param_dtype=param_dtype
        )
        self.conv = qnnx.QConv(
            channels, channels, (3, 3), padding=1, pad_value=0.0,
            gradient_cancellation_threshold=0.0,
            param_dtype=param_dtype, precision=_HIGHEST, kernel_init=_ZEROS, rngs=nnx.Rngs(0),
        )  # fmt: skip
        self.bn = _flax_bn(channels, param_dtype)
        self.act = qnnx.RPReLU(channels, param_dtype=param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.act(x + self.bn(self.conv(self.sign(x))))


class FlaxReActNet(nnx.Module):
    """The network in Flax NNX (bitorch_jax layers). Input ``(N, 8, 8, 1)`` (NHWC). The
    parameters are zeros until :func:`bitorch_jax.convert.torch_to_nnx` writes them."""

    def __init__(
        self,
        channels: int = SETTINGS["channels"],
        blocks: int = 2,
        *,
        param_dtype: jnp.dtype = jnp.float64,
    ) -> None:
        same = {"param_dtype": param_dtype, "precision": _HIGHEST, "rngs": nnx.Rngs(0)}
        self.stem = nnx.Conv(1, channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                             kernel_init=_ZEROS, **same)  # fmt: skip
        self.bn0 = _flax_bn(channels, param_dtype)
        self.blocks = nnx.List([FlaxBlock(channels, param_dtype) for _ in range(blocks)])
        self.fc = nnx.Linear(channels, 10, kernel_init=_ZEROS, **same)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn0(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean((1, 2)))


def build_flax_net_from_torch(torch_net: TorchReActNet) -> FlaxReActNet:
    """The NNX twin holding exactly ``torch_net``'s weights (call under x64 for float64)."""
    dtype = next(torch_net.parameters()).dtype
    param_dtype = {torch.float32: jnp.float32, torch.float64: jnp.float64}[dtype]
    net = FlaxReActNet(param_dtype=param_dtype)
    return torch_to_nnx(torch_net, net)


# ----------------------------------------------------------------------------- training


@dataclass
class ReActNetRun:
    """Both loss curves, the summaries and timings of one run."""

    torch_losses: np.ndarray
    jax_losses: np.ndarray
    torch_summary: str
    jax_summary: str
    nnx_tabulate: str
    torch_seconds: float
    jax_seconds: float
    bop_flips: int
    binary_kernels_equal: bool

    @property
    def abs_diff(self) -> np.ndarray:
        return np.abs(self.torch_losses - self.jax_losses)

    @property
    def rel_diff(self) -> np.ndarray:
        return self.abs_diff / np.abs(self.torch_losses)


def _torch_optimizers(net: TorchReActNet) -> list[torch.optim.Optimizer]:
    binary, other = split_binary_parameters(net)
    return [
        Bop(binary, threshold=SETTINGS["bop_threshold"], gamma=SETTINGS["bop_gamma"]),
        torch.optim.Adam(
            other, lr=SETTINGS["adam_lr"], betas=SETTINGS["adam_betas"], eps=SETTINGS["adam_eps"]
        ),  # fmt: skip
    ]


def _jax_optimizer(net: FlaxReActNet) -> nnx.Optimizer:
    b1, b2 = SETTINGS["adam_betas"]
    tx = binary_optimizer(
        net,
        other=optax.adam(SETTINGS["adam_lr"], b1=b1, b2=b2, eps=SETTINGS["adam_eps"]),
        bop=bop(threshold=SETTINGS["bop_threshold"], gamma=SETTINGS["bop_gamma"]),
    )
    return nnx.Optimizer(net, tx, wrt=nnx.Param)


def _loss(net: FlaxReActNet, xb: jax.Array, yb: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(net(xb), yb).mean()


@nnx.jit
def _jax_step(net: FlaxReActNet, optimizer: nnx.Optimizer, xb: jax.Array, yb: jax.Array):
    loss, grads = nnx.value_and_grad(_loss)(net, xb, yb)
    optimizer.update(net, grads)
    return loss


def train_both(
    *, steps: int, dtype: str = "float64", seed: int = 0, data: DigitsData | None = None
) -> ReActNetRun:
    """Train the torch and the NNX network side by side (module doc)."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"train_both: dtype must be 'float32' or 'float64', got {dtype!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"train_both: steps must be an int >= 1, got {steps!r}")
    data = data if data is not None else load_digits_data(seed=seed)
    np_dtype = np.dtype(dtype)
    batches = list(batch_indices(len(data.y_train), SETTINGS["batch_size"], steps, seed))
    x_t = torch.from_numpy(data.x_train.astype(np_dtype))
    y_t = torch.from_numpy(data.y_train)

    torch_net = build_torch_net(seed, dtype=getattr(torch, dtype))
    with jax.enable_x64(True) if dtype == "float64" else nullcontext():
        flax_net = build_flax_net_from_torch(torch_net)  # before any torch step
        x_j = jnp.asarray(DigitsData.nhwc(data.x_train.astype(np_dtype)))
        y_j = jnp.asarray(data.y_train.astype(np.int32))
        example_t, example_j = x_t[:1], x_j[:1]
        torch_summary = str(bitorch.summary(torch_net, example_t))
        jax_summary = str(bitorch_jax.summary(flax_net, example_j))
        tabulate = nnx.tabulate(
            flax_net, example_j, console_kwargs={"width": 160, "color_system": None}
        )

        binary_start = [p.detach().clone() for p in split_binary_parameters(torch_net)[0]]
        optimizers = _torch_optimizers(torch_net)
        torch_net.train()
        torch_losses = np.empty(steps)
        start = time.perf_counter()
        for i, index in enumerate(batches):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(torch_net(x_t[index]), y_t[index])
            loss.backward()
            for opt in optimizers:
                opt.step()
            torch_losses[i] = loss.item()
        torch_seconds = time.perf_counter() - start

        optimizer = _jax_optimizer(flax_net)
        flax_net.train()
        jax_losses = np.empty(steps)
        start = time.perf_counter()
        for i, index in enumerate(batches):
            jax_losses[i] = float(_jax_step(flax_net, optimizer, x_j[index], y_j[index]))
        jax_seconds = time.perf_counter() - start
        jax_state = nnx_to_torch(flax_net)
    binary_names = [n for n, p in torch_net.named_parameters()
                    if any(p is b for b in split_binary_parameters(torch_net)[0])]  # fmt: skip
    flips = sum(int((torch_net.get_parameter(n) != before).sum())
                for n, before in zip(binary_names, binary_start, strict=True))  # fmt: skip
    equal = all(torch.equal(jax_state[n], torch_net.get_parameter(n).detach())
                for n in binary_names)  # fmt: skip
    return ReActNetRun(torch_losses, jax_losses, torch_summary, jax_summary, tabulate,
                       torch_seconds, jax_seconds, flips, equal)  # fmt: skip


# ----------------------------------------------------------------------------- output


def save_csv(run: ReActNetRun, path: Path) -> None:
    """``step, loss_torch, loss_jax, abs_diff, rel_diff`` per step (full precision)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss_torch", "loss_jax", "abs_diff", "rel_diff"])
        for i in range(len(run.torch_losses)):
            writer.writerow([i + 1, repr(float(run.torch_losses[i])),
                             repr(float(run.jax_losses[i])), repr(float(run.abs_diff[i])),
                             repr(float(run.rel_diff[i]))])  # fmt: skip


def save_plot(run: ReActNetRun, path: Path, title: str) -> bool:
    """Both curves and their difference (log scale); False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(run.torch_losses) + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(2, 1))
    top.plot(steps, run.torch_losses, label="PyTorch + bitorch", linewidth=1.6)
    top.plot(steps, run.jax_losses, label="Flax NNX + bitorch_jax", linewidth=1.0, ls="--")
    top.set_ylabel("training loss (cross-entropy)")
    top.set_title(title)
    top.legend()
    bottom.semilogy(steps, np.maximum(run.abs_diff, 1e-18), color="tab:red", linewidth=0.8)
    bottom.set_ylabel("|torch - jax| (0 at 1e-18)")
    bottom.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.reactnet_digits",
        description="Train a small ReActNet (RSign, binary convolutions, RPReLU; Bop and "
        "Adam) with bitorch (PyTorch) and bitorch_jax (Flax NNX) from identical weights and "
        "compare the loss curves.",
    )
    parser.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--seed", type=int, default=0, help="weights, split and batch order")
    parser.add_argument("--out", type=Path, default=Path("out/reactnet_digits"),
                        help="directory for losses.csv and losses.png")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=TOLERANCE_FLOAT64,
                        help="largest relative per-step loss difference accepted in float64 "
                        f"(default {TOLERANCE_FLOAT64:g})")  # fmt: skip
    parser.add_argument("--every", type=int, default=5, help="print every N-th step")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1 or args.torch_threads < 1 or not args.tolerance >= 0:
        parser.error("--steps, --every, --torch-threads must be >= 1 and --tolerance >= 0")
    torch.set_num_threads(args.torch_threads)

    wall = time.perf_counter()
    run = train_both(steps=args.steps, dtype=args.dtype, seed=args.seed)
    print("== bitorch.summary (torch) ==")
    print(run.torch_summary)
    print("== bitorch_jax.summary (Flax NNX) ==")
    print(run.jax_summary)
    print("== nnx.tabulate (Flax NNX) ==")
    print(run.nnx_tabulate)
    print(
        f"ReActNet digits, {args.dtype}, {args.steps} steps of batch {SETTINGS['batch_size']}, "
        f"Bop (threshold {SETTINGS['bop_threshold']:g}, gamma {SETTINGS['bop_gamma']:g}) + "
        f"Adam (lr {SETTINGS['adam_lr']:g}), seed {args.seed}"
    )
    print(f"{'step':>5}  {'torch loss':>20}  {'jax loss':>20}  {'|diff|':>9}  {'rel':>9}")
    for i in range(args.steps):
        if (i + 1) % args.every == 0 or i == 0 or i == args.steps - 1:
            print(f"{i + 1:>5}  {run.torch_losses[i]:>20.15f}  {run.jax_losses[i]:>20.15f}  "
                  f"{run.abs_diff[i]:>9.2e}  {run.rel_diff[i]:>9.2e}")  # fmt: skip
    worst_abs, worst_rel = float(run.abs_diff.max()), float(run.rel_diff.max())
    print(f"max |loss_torch - loss_jax| over the steps: {worst_abs:.3e} "
          f"(relative {worst_rel:.3e})")  # fmt: skip
    same = "equal" if run.binary_kernels_equal else "NOT equal"
    print(f"Bop flipped {run.bop_flips} binary weights (torch); the JAX binary kernels are "
          f"{same} to torch's after training")  # fmt: skip
    print(f"training time: torch {run.torch_seconds:.2f} s, jax {run.jax_seconds:.2f} s "
          f"(with compilation)")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    save_csv(run, args.out / "losses.csv")
    print(f"curves: {args.out / 'losses.csv'}")
    title = f"ReActNet digits, {args.dtype}: PyTorch vs Flax NNX from identical weights"
    if save_plot(run, args.out / "losses.png", title):
        print(f"plot: {args.out / 'losses.png'}")
    else:
        print("plot: skipped (matplotlib is not installed; it is in the [examples] extra)")
    print(f"total wall time: {time.perf_counter() - wall:.1f} s")
    if args.dtype == "float64":
        if not worst_rel <= args.tolerance:
            print(f"FAIL: relative loss difference {worst_rel:.3e} > tolerance {args.tolerance:g}")
            return 1
        if not run.binary_kernels_equal:
            print("FAIL: the binary kernels differ after training")
            return 1
        print(f"OK: relative loss difference {worst_rel:.3e} <= tolerance {args.tolerance:g}")
    else:
        print("float32: agreement reported, not checked (see the module doc)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
