"""ResnetE18 from PyTorch to JAX and back: convert, compare, fine-tune, checkpoint, return.

Steps, on the 8x8 scikit-learn digits::

    1. build bitorch.models.ResnetE18((1, 1, 8, 8), num_classes=10) (torch, seeded)
    2. convert it into bitorch_jax.models.ResnetE18 with bitorch_jax.convert.torch_to_nnx
       (same module names: no name map) and compare the two layer by layer with
       parity_tests.compare_models (its table is printed, its per-layer maxima plotted)
    3. fine-tune the NNX model in JAX (optax Adam, a jitted step with donated state)
    4. save the NNX state with orbax, restore it into a freshly built NNX model
    5. convert back with bitorch_jax.convert.nnx_to_torch (the torch state_dict as
       template, so num_batches_tracked comes back), load it into a fresh torch
       ResnetE18 with strict=True, and check that torch gives the JAX logits
       (evaluation mode) -- in float32, and in float64 (both models in float64)

Why ``input_shape=(1, 1, 8, 8)`` and not the digits resized to 32x32x3: ResnetE18 picks
its stem from the input size; for anything but 224x224 it is one 3x3 stride-1
convolution with padding 1, which takes any channel count, and the three stride-2
stages take 8x8 to 4x4, 2x2 and 1x1 (the 2x2 average pool of the last shortcut still
fits). So the model runs on the digits as they are, at 1/16 of the 32x32 compute and
with no invented pixels.

    python -m examples.resnete18_roundtrip                     # 2 epochs, out/resnete18
    python -m examples.resnete18_roundtrip --epochs 1 --train-limit 256 --out /tmp/rt

Exit status 1 if the restored state differs from the trained one, the strict load fails
or loses ``num_batches_tracked``, or the torch logits differ from the JAX ones by more
than ``--tolerance`` (float32, relative to the largest logit; float64 must agree to
1e-9). ``compare_models``' verdict
is printed and saved (``roundtrip.json``) but does not set the exit status: it judges the
untrained model with its own tolerances, a separate question from the round trip.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx

import bitorch.models as tmodels
import bitorch_jax.models as jmodels
from bitorch_jax.convert import nnx_to_torch, torch_to_nnx

__all__ = ["INPUT_SHAPE", "load_digits", "main", "train_jax", "roundtrip"]

INPUT_SHAPE = (1, 1, 8, 8)
CLASSES = 10
TOLERANCE_FLOAT64 = 1e-9  # relative to the largest |logit|


def load_digits(*, seed: int = 0, test_size: int = 360) -> dict[str, np.ndarray]:
    """scikit-learn's 1797 digits scaled to ``[-1, 1]``, NCHW ``(N, 1, 8, 8)`` float32,
    split by a seeded permutation."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = (digits.images.astype(np.float32) / 8.0 - 1.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:test_size], order[test_size:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def nhwc(x: np.ndarray) -> np.ndarray:
    """NCHW (torch) to NHWC (Flax)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def build_torch(seed: int, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The torch ResnetE18 for the digits, seeded, in evaluation mode."""
    torch.manual_seed(seed)
    return tmodels.ResnetE18(INPUT_SHAPE, num_classes=CLASSES).to(dtype).eval()


def build_nnx(dtype: Any = jnp.float32) -> nnx.Module:
    """A fresh NNX ResnetE18 for the digits (its weights are overwritten by conversion
    or restoring), in evaluation mode."""
    model = jmodels.ResnetE18(INPUT_SHAPE, num_classes=CLASSES, rngs=nnx.Rngs(0), param_dtype=dtype)
    model.eval()
    return model


@nnx.jit
def _logits(model: nnx.Module, x: jax.Array) -> jax.Array:
    return model(x)


def jax_logits(model: nnx.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Evaluation-mode logits of the NHWC array ``x`` (model switched to eval)."""
    model.eval()
    return np.concatenate(
        [np.asarray(_logits(model, jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
    )


def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Evaluation-mode logits of the NCHW array ``x``."""
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def compare(
    torch_model: torch.nn.Module, flax_model: nnx.Module, x: np.ndarray, y: np.ndarray
) -> Any:
    """``parity_tests.compare_models`` on the NCHW images ``x`` with labels ``y`` (eval and
    train mode: logits, loss, gradients, BatchNorm statistics, every activation); prints
    its table and returns its report."""
    from parity_tests.models import compare_models

    report = compare_models(torch_model, flax_model, x, labels=y, convert=False, name="ResnetE18")
    print(report.table())
    details = report.details()
    if details:
        print(details)
    return report


def layer_maxima(report: Any) -> dict[str, list[tuple[str, float]]]:
    """Per mode, ``(layer, max |torch - jax|)`` of every compared activation, in torch
    execution order, from a ``compare_models`` report."""
    out: dict[str, list[tuple[str, float]]] = {}
    for row in report:
        out[row.params] = [
            (key[len("activation ") :], float(info.get("max_diff") or 0.0))
            for key, info in row.arrays.items()
            if key.startswith("activation ")
        ]
    return out


def save_plot(maxima: dict[str, list[tuple[str, float]]], path: Path, title: str) -> None:
    """Per-layer max |torch - jax| (log scale), one line per mode; layers that agree
    bit for bit (0) are drawn as triangles on the bottom edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positive = [v for rows in maxima.values() for _, v in rows if v > 0]
    floor = min(positive) / 10 if positive else 1e-12
    fig, ax = plt.subplots(figsize=(11, 4.5))
    names: list[str] = []
    for mode, rows in maxima.items():
        names = names if len(names) >= len(rows) else [n for n, _ in rows]
        xs = np.arange(len(rows))
        values = np.array([v for _, v in rows])
        line = ax.semilogy(xs, np.where(values > 0, values, np.nan), marker="o",
                           markersize=2, linewidth=0.8, label=mode)[0]  # fmt: skip
        zero = values == 0
        if zero.any():
            ax.plot(xs[zero], np.full(zero.sum(), floor), "v", color=line.get_color(),
                    markersize=3, label=f"{mode}: exactly 0")  # fmt: skip
    step = max(1, len(names) // 40)
    ax.set_xticks(range(0, len(names), step), names[::step], rotation=90, fontsize=5)
    ax.set_ylabel("max |torch - jax| of the layer output")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train_jax(
    model: nnx.Module,
    data: dict[str, np.ndarray],
    *,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    train_limit: int | None = None,
) -> list[dict[str, float]]:
    """Fine-tune ``model`` in place (Adam, jitted step, donated state); one record per
    epoch: mean training loss, test accuracy, seconds."""
    x_train, y_train = nhwc(data["x_train"]), data["y_train"].astype(np.int32)
    if train_limit is not None:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    x_test = nhwc(data["x_test"])
    model.train()
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))

    def loss_fn(net: nnx.Module, xb: jax.Array, yb: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(net(xb), yb).mean()

    # functional step: the state goes in and comes out, donated, so XLA updates it in
    # place; the model and optimizer objects see it again through nnx.update below
    @functools.partial(jax.jit, donate_argnums=0)
    def step(state: Any, xb: jax.Array, yb: jax.Array) -> tuple[Any, jax.Array]:
        net, opt = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(loss_fn)(net, xb, yb)
        opt.update(net, grads)
        return nnx.state((net, opt)), loss

    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(y_train))
        losses = []
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            state, loss = step(state, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
            losses.append(float(loss))
        nnx.update((model, optimizer), state)
        accuracy = float(np.mean(jax_logits(model, x_test).argmax(-1) == data["y_test"]))
        model.train()
        history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "test_accuracy": accuracy,
                "seconds": time.perf_counter() - start,
            }
        )
        print(
            f"epoch {epoch + 1}: train loss {history[-1]['loss']:.4f}, test accuracy "
            f"{accuracy:.4f} ({history[-1]['seconds']:.1f} s)",
            flush=True,
        )
    model.eval()
    return history


def save_and_restore(model: nnx.Module, directory: Path) -> nnx.Module:
    """Save ``model``'s state with orbax (as a plain nested dict of arrays) and restore it
    into a freshly built model (``nnx.eval_shape``: no weights are initialised)."""
    import orbax.checkpoint as ocp

    path = (directory / "state").resolve()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, nnx.to_pure_dict(nnx.state(model)))
        checkpointer.wait_until_finished()
        graphdef, abstract_state = nnx.split(nnx.eval_shape(build_nnx))
        restored = checkpointer.restore(path, nnx.to_pure_dict(abstract_state))
    nnx.replace_by_pure_dict(abstract_state, restored)
    fresh = nnx.merge(graphdef, abstract_state)
    fresh.eval()
    return fresh


def roundtrip(
    restored: nnx.Module, template: dict[str, torch.Tensor], data: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Back to torch (strict load into a fresh model) and the test-set logit differences,
    float32 and float64 (the same weights widened in both frameworks)."""
    x_test, y_test = data["x_test"], data["y_test"]
    state_dict = nnx_to_torch(restored, template=template)
    back = tmodels.ResnetE18(INPUT_SHAPE, num_classes=CLASSES)
    load = back.load_state_dict(state_dict, strict=True)  # raises on any mismatch
    logits_t = torch_logits(back, x_test)
    logits_j = jax_logits(restored, nhwc(x_test))

    back64 = tmodels.ResnetE18(INPUT_SHAPE, num_classes=CLASSES).double()
    back64.load_state_dict({k: v.double() if v.is_floating_point() else v
                            for k, v in state_dict.items()}, strict=True)  # fmt: skip
    x64 = x_test.astype(np.float64)
    with jax.enable_x64(True):
        model64 = build_nnx(jnp.float64)
        torch_to_nnx(back64, model64)
        logits_j64 = jax_logits(model64, nhwc(x64))
    logits_t64 = torch_logits(back64, x64)
    counters = [k for k in template if k.endswith("num_batches_tracked")]
    return {
        "strict_load": f"missing {load.missing_keys}, unexpected {load.unexpected_keys}",
        "state_dict_entries": len(state_dict),
        # (torch's BatchNorm accepts a state_dict without the counter even with
        # strict=True and resets it; the template is what carries it back)
        "num_batches_tracked_from_template": bool(counters)
        and all(k in state_dict and torch.equal(state_dict[k], template[k]) for k in counters),
        "max_abs_diff_float32": float(np.max(np.abs(logits_t - logits_j))),
        "max_abs_logit_float32": float(np.max(np.abs(logits_j))),
        "same_prediction_float32": float(np.mean(logits_t.argmax(-1) == logits_j.argmax(-1))),
        "max_abs_diff_float64": float(np.max(np.abs(logits_t64 - logits_j64))),
        "max_abs_logit_float64": float(np.max(np.abs(logits_j64))),
        "jax_accuracy": float(np.mean(logits_j.argmax(-1) == y_test)),
        "torch_accuracy": float(np.mean(logits_t.argmax(-1) == y_test)),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.resnete18_roundtrip",
        description="ResnetE18: torch -> NNX, compare, fine-tune in JAX, orbax save/restore, "
        "NNX -> torch with strict load, logits compared.",
    )
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default 2)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-limit", type=int, default=None, help="use only the first N training images"
    )
    parser.add_argument("--compare-images", type=int, default=8, help="images for compare_models")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="float32: largest allowed max |torch - jax| logit difference, relative to the "
        "largest |logit| (default 1e-3)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/resnete18"), help="output folder")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch", "compare_images", "torch_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    torch.set_num_threads(args.torch_threads)
    wall = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    data = load_digits(seed=args.seed)
    torch_model = build_torch(args.seed)
    template = {k: v.clone() for k, v in torch_model.state_dict().items()}
    flax_model = build_nnx()
    torch_to_nnx(torch_model, flax_model)
    print(
        f"ResnetE18{INPUT_SHAPE}, {CLASSES} classes: {len(template)} state_dict entries, "
        f"{sum(p.numel() for p in torch_model.parameters()):,} parameters; converted to NNX"
    )

    print(f"\n[{time.perf_counter() - wall:.0f} s] == parity_tests.compare_models "
          "(torch vs converted NNX, eval and train mode) ==")  # fmt: skip
    n = args.compare_images
    report = compare(torch_model, flax_model, data["x_test"][:n], data["y_test"][:n])
    maxima = layer_maxima(report)
    save_plot(maxima, args.out / "layer_diffs.png", "ResnetE18: per-layer max |torch - jax|")

    print(
        f"\n[{time.perf_counter() - wall:.0f} s] == fine-tuning in JAX: {args.epochs} "
        f"epoch(s), batch {args.batch}, Adam lr {args.lr} =="
    )
    history = train_jax(
        flax_model,
        data,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        train_limit=args.train_limit,
    )

    print(
        f"\n[{time.perf_counter() - wall:.0f} s] == orbax save, restore into a fresh NNX model =="
    )
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        restored = save_and_restore(flax_model, Path(tmp))
    same = jax.tree_util.tree_all(
        jax.tree_util.tree_map(
            lambda a, b: bool(jnp.array_equal(a, b)), nnx.state(flax_model), nnx.state(restored)
        )
    )
    print(f"restored state equal to the trained state: {same}")

    print(
        f"\n[{time.perf_counter() - wall:.0f} s] == back to torch (nnx_to_torch, "
        "template = the original state_dict) =="
    )
    numbers = roundtrip(restored, template, data)
    rel32 = numbers["max_abs_diff_float32"] / max(numbers["max_abs_logit_float32"], 1e-30)
    rel64 = numbers["max_abs_diff_float64"] / max(numbers["max_abs_logit_float64"], 1e-30)
    print(f"load_state_dict(strict=True): {numbers['strict_load']}")
    print("num_batches_tracked taken from the template: "
          f"{numbers['num_batches_tracked_from_template']}")  # fmt: skip
    print(
        f"test logits (eval mode), max |torch - jax|: float32 "
        f"{numbers['max_abs_diff_float32']:.3g} ({rel32:.2g} of max |logit|), float64 "
        f"{numbers['max_abs_diff_float64']:.3g} ({rel64:.2g}); same prediction on "
        f"{numbers['same_prediction_float32']:.1%} of the test images (float32)"
    )
    print(f"test accuracy: jax {numbers['jax_accuracy']:.4f}, torch after the round trip "
          f"{numbers['torch_accuracy']:.4f}")  # fmt: skip
    ok = same and numbers["num_batches_tracked_from_template"]
    ok = ok and rel32 <= args.tolerance and rel64 <= TOLERANCE_FLOAT64
    summary = {
        "input_shape": INPUT_SHAPE,
        "epochs": history,
        "compare_models_ok": report.ok,
        "layer_max_abs_diff": maxima,
        "restored_equal": same,
        **numbers,
        "relative_float32": rel32,
        "relative_float64": rel64,
        "ok": ok,
        "seconds": time.perf_counter() - wall,
    }
    (args.out / "roundtrip.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"plot: {args.out / 'layer_diffs.png'}; numbers: {args.out / 'roundtrip.json'}")
    print(("OK" if ok else "FAILED") + f": round trip in {summary['seconds']:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
