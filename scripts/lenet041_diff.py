"""LeNet gradients of this repository's bitorch against the published bitorch 0.4.1.

A differential check, not run in CI. The same LeNet (bitorch 0.4.1's
``bitorch.models.lenet.LeNet``, ``lenet_version=0``: sign inputs and weights, with
``QConv2d``, ``QActivation``, ``QLinear`` and ``ShapePrintDebug``) is trained for a few
SGD steps in float64 twice, from the same seed-initialised weights (saved to a ``.npz``)
on the same batches:

* with bitorch 0.4.1, in a scratch virtualenv: its own ``LeNet`` model class;
* with this repository: the same architecture written with ``bitorch.layers`` (imported
  by 0.4.1's paths), as ``tests/torch/test_layers041.py`` builds it.

Both packages are called ``bitorch``, so each runs in its own process (``-P``, outside
the repository, so that the 0.4.1 worker cannot import this checkout). Every parameter
gradient of every step, the losses and the final parameters are compared bit for bit;
the script prints the largest difference and exits 0 only when everything is equal.

Set up the scratch environment once (the wheel is no dependency of anything here)::

    python3 -m venv /tmp/bt041/venv
    /tmp/bt041/venv/bin/pip install torch==2.13.0 numpy
    /tmp/bt041/venv/bin/pip install --no-deps /tmp/bt041/bitorch-0.4.1-py2.py3-none-any.whl

Then, from the repository root::

    .venv/bin/python scripts/lenet041_diff.py [--steps 3] [--batch 16] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BT041_PYTHON = "/tmp/bt041/venv/bin/python"
NUM_CLASSES = 10
LEARNING_RATE = 0.05
MOMENTUM = 0.9


def build_lenet(input_channels: int = 1, num_classes: int = NUM_CLASSES) -> Any:
    """bitorch 0.4.1's LeNet (version 0) from ``bitorch.layers``, whichever bitorch is
    importable; the network is ``._model``, as in 0.4.1's ``Model`` base class."""
    from torch import nn

    from bitorch.layers import QActivation, QConv2d, QLinear
    from bitorch.layers.debug_layers import ShapePrintDebug

    channels, hidden = 64, 1000

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._model = nn.Sequential(
                nn.Conv2d(input_channels, channels, kernel_size=5),
                nn.Tanh(),
                nn.MaxPool2d(2, 2),
                nn.BatchNorm2d(channels),
                QConv2d(
                    channels,
                    channels,
                    kernel_size=5,
                    input_quantization="sign",
                    weight_quantization="sign",
                ),  # fmt: skip
                nn.BatchNorm2d(channels),
                nn.MaxPool2d(2, 2),
                ShapePrintDebug(),
                nn.Flatten(),
                QActivation(activation="sign"),
                QLinear(channels * 4 * 4, hidden, weight_quantization="sign"),
                nn.BatchNorm1d(hidden),
                nn.Tanh(),
                nn.Linear(hidden, num_classes),
            )

        def forward(self, x: Any) -> Any:
            return self._model(x)

    return LeNet()


# ----------------------------------------------------------------------------- worker


def worker(which: str, data_dir: str) -> None:
    """Train from ``data_dir/init.npz`` on ``data_dir/batches.npz``; write ``which.npz``."""
    import torch
    import torch.nn.functional as F

    import bitorch

    torch.set_num_threads(1)
    path = os.path.dirname(bitorch.__file__)
    batches = np.load(os.path.join(data_dir, "batches.npz"))
    xs, ys = batches["x"], batches["y"]
    if which == "bt041":
        if "site-packages" not in path:
            raise SystemExit(f"the bitorch 0.4.1 worker imported {path}")
        from bitorch.models import LeNet

        model = LeNet(input_shape=list(xs.shape[1:]), num_classes=NUM_CLASSES, lenet_version=0)
        mirror = build_lenet()  # the mirror has 0.4.1's state_dict layout too
        if [(k, tuple(v.shape)) for k, v in mirror.state_dict().items()] != [
            (k, tuple(v.shape)) for k, v in model.state_dict().items()
        ]:
            raise SystemExit("the LeNet mirror does not have 0.4.1's state_dict layout")
    else:
        if not path.startswith(str(ROOT)):
            raise SystemExit(f"the worker for this repository imported {path}")
        model = build_lenet()
    model = model.double()
    init = np.load(os.path.join(data_dir, "init.npz"))
    state = {k: torch.from_numpy(init[k]) for k in init.files}
    model.load_state_dict(state, strict=True)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    out: dict[str, np.ndarray] = {}
    losses = []
    for step in range(xs.shape[0]):
        optimizer.zero_grad()
        x = torch.from_numpy(xs[step])
        loss = F.cross_entropy(model(x), torch.from_numpy(ys[step]))
        loss.backward()
        losses.append(loss.item())
        for name, parameter in model.named_parameters():
            out[f"grad/{step}/{name}"] = parameter.grad.detach().numpy().copy()
        optimizer.step()
    for name, value in model.state_dict().items():
        out[f"final/{name}"] = value.detach().numpy().copy()
    out["losses"] = np.asarray(losses)
    np.savez(os.path.join(data_dir, f"{which}.npz"), **out)
    print(json.dumps({"bitorch": path, "torch": torch.__version__}))


# ----------------------------------------------------------------------------- driver


def _prepare(data_dir: str, steps: int, batch: int, seed: int) -> None:
    """Seed-initialised weights (this repository's LeNet) and the batches, saved."""
    import torch

    torch.manual_seed(seed)
    model = build_lenet().double()
    np.savez(
        os.path.join(data_dir, "init.npz"),
        **{k: v.detach().numpy() for k, v in model.state_dict().items()},
    )
    rng = np.random.default_rng(seed)
    np.savez(
        os.path.join(data_dir, "batches.npz"),
        x=rng.normal(size=(steps, batch, 1, 28, 28)),
        y=rng.integers(0, NUM_CLASSES, size=(steps, batch)),
    )


def _run_worker(python: str, which: str, data_dir: str) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if which == "ours":
        env["PYTHONPATH"] = str(ROOT)
    command = [python, "-P", str(Path(__file__).resolve()), "--worker", which, "--data", data_dir]
    done = subprocess.run(command, cwd=tempfile.gettempdir(), env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(data_dir: str) -> dict[str, Any]:
    ours, theirs = (np.load(os.path.join(data_dir, f"{w}.npz")) for w in ("ours", "bt041"))
    if sorted(ours.files) != sorted(theirs.files):
        raise SystemExit(f"different entries: {sorted(set(ours.files) ^ set(theirs.files))}")
    rows = []
    for key in sorted(ours.files, key=lambda k: (k.split("/")[0], k)):
        a, b = ours[key], theirs[key]
        same_bits = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        rows.append({"array": key, "dtype": str(a.dtype), "elements": int(a.size),
                     "max_abs_diff": diff, "bit_equal": bool(same_bits)})  # fmt: skip
    grads = [r for r in rows if r["array"].startswith("grad/")]
    return {
        "rows": rows,
        "max_grad_diff": max(r["max_abs_diff"] for r in grads),
        "all_bit_equal": all(r["bit_equal"] for r in rows),
        "losses_ours": ours["losses"].tolist(),
        "losses_bt041": theirs["losses"].tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bt041-python", default=DEFAULT_BT041_PYTHON)
    parser.add_argument("--json", help="also write the result to this file")
    parser.add_argument("--worker", choices=["ours", "bt041"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data)
        return 0
    if not Path(args.bt041_python).exists():
        raise SystemExit(f"no bitorch 0.4.1 interpreter at {args.bt041_python}; see the docstring")
    with tempfile.TemporaryDirectory() as data_dir:
        _prepare(data_dir, args.steps, args.batch, args.seed)
        info = {
            "ours": _run_worker(sys.executable, "ours", data_dir),
            "bt041": _run_worker(args.bt041_python, "bt041", data_dir),
        }
        result = {**compare(data_dir), "workers": info, "steps": args.steps,
                  "batch": args.batch, "seed": args.seed, "dtype": "float64"}  # fmt: skip
    grads = [r for r in result["rows"] if r["array"].startswith("grad/")]
    print(f"LeNet (bitorch 0.4.1 lenet_version=0), float64, {args.steps} SGD steps, batch "
          f"{args.batch}, seed {args.seed}")  # fmt: skip
    print(f"  ours:  bitorch at {info['ours']['bitorch']} (torch {info['ours']['torch']})")
    print(f"  0.4.1: bitorch at {info['bt041']['bitorch']} (torch {info['bt041']['torch']})")
    print(f"{'array':46} {'elements':>9} {'max |diff|':>11}  bit-equal")
    for r in result["rows"]:
        print(f"{r['array']:46} {r['elements']:9d} {r['max_abs_diff']:11.3g}  {r['bit_equal']}")
    print(f"losses ours  {result['losses_ours']}")
    print(f"losses 0.4.1 {result['losses_bt041']}")
    largest, equal = result["max_grad_diff"], result["all_bit_equal"]
    print(f"{len(grads)} parameter gradients over {args.steps} steps: largest difference "
          f"{largest:.3g}; everything bit-equal: {equal}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["all_bit_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
