"""The model zoo of this repository's bitorch against the published bitorch 0.4.1.

A differential check, not run in CI. For each named entry (``--models``) a worker in a
scratch virtualenv with bitorch 0.4.1 builds 0.4.1's model (seeded), then

1. saves its ``state_dict`` (the one to load), a training batch, the training-mode
   output on it and the ``state_dict`` after that forward (the BatchNorm statistics it
   updated), an evaluation batch and the eval-mode logits on it;

and this process, with this repository's ``bitorch.models``, builds the same entry,

2. loads the saved ``state_dict`` with ``strict=True`` (keys, order, shapes and dtypes
   are compared first), runs the same training-mode forward and compares output and
   updated ``state_dict`` bit for bit, then the eval-mode logits bit for bit;
3. writes ``tests/models/data041/<entry>.json`` (with ``--write-data``): the entry's
   constructor call and 0.4.1's ``state_dict`` keys, shapes and dtypes, which
   ``tests/models/test_zoo_keys041.py`` checks without needing 0.4.1.

Both packages are called ``bitorch``, so the worker runs as its own process (``-P``,
outside the repository, so that it cannot import this checkout). 0.4.1's
``bitorch.models`` imports ``pandas`` for its model hub only; when the scratch venv has
no pandas, the worker puts an empty stand-in module in its place (the hub is not used).

Entries are the keys of :data:`ENTRIES` (a model name, or a name with a suffix for a
second configuration, such as ``LeNet-v4``) or any other 0.4.1 model name, which gets
:data:`DEFAULT_SPEC`. ``--override 'Name={"input_shape": [1, 3, 64, 64]}'`` changes an
entry's spec for one run.

Set up the scratch environment once (the wheel is no dependency of anything here)::

    python3 -m venv /tmp/bt041/venv
    /tmp/bt041/venv/bin/pip install torch==2.13.0 numpy
    /tmp/bt041/venv/bin/pip install --no-deps /tmp/bt041/bitorch-0.4.1-py2.py3-none-any.whl

Then, from the repository root::

    .venv/bin/python scripts/zoo041_diff.py --models LeNet,ResnetE18 [--write-data]
        [--json out.json] [--override 'ENTRY=JSON'] [--seed 0]

Exit status 0 only when every entry loads strictly and every compared tensor is equal.
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

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "tests" / "models" / "data041"
DEFAULT_BT041_PYTHON = "/tmp/bt041/venv/bin/python"

#: The spec of a model name that is not in ENTRIES.
DEFAULT_SPEC: dict[str, Any] = {
    "args": [],  # positional arguments before input_shape (e.g. ResnetE's layer count)
    "input_shape": [2, 3, 32, 32],  # NCHW, batch included (>= 2: a training forward)
    "num_classes": 10,
    "kwargs": {},
}

#: entry -> spec; "model" is the registry name when the entry is not one.
ENTRIES: dict[str, dict[str, Any]] = {
    **{
        f"LeNet-v{v}": {
            "model": "LeNet",
            "input_shape": [2, 1, 28, 28],
            "kwargs": {"lenet_version": v},
        }
        for v in range(1, 5)
    },
    "LeNet": {"input_shape": [2, 1, 28, 28]},
    "ResnetE": {"args": [18], "input_shape": [2, 3, 32, 32]},
    "ResnetE18": {},
    "ResnetE34": {},
    "ResnetE18-imagenet": {"model": "ResnetE18", "input_shape": [2, 3, 224, 224]},
    "Resnet": {"args": [1, 18]},
}


def spec_of(entry: str, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The full spec of ``entry``: model, args, input_shape, num_classes, kwargs."""
    spec = {**DEFAULT_SPEC, "model": entry.partition("-")[0]}
    spec.update(ENTRIES.get(entry, {}))
    spec.update((overrides or {}).get(entry, {}))
    return spec


def build(spec: dict[str, Any]) -> Any:
    """``spec``'s model from whichever ``bitorch`` is importable."""
    import bitorch.models

    cls = bitorch.models.model_from_name(spec["model"])
    # by keyword: QuickNet's second positional parameter is section_filters, not num_classes
    return cls(
        *spec["args"], tuple(spec["input_shape"]), num_classes=spec["num_classes"], **spec["kwargs"]
    )


def _import_041_models() -> Any:
    try:
        import pandas  # noqa: F401
    except ImportError:  # only 0.4.1's model hub uses it
        import types

        stand_in = types.ModuleType("pandas")
        stand_in.DataFrame = type("DataFrame", (), {})  # type: ignore[attr-defined]
        sys.modules["pandas"] = stand_in
    import bitorch.models

    return bitorch.models


def worker(specs_path: str, out_dir: str) -> None:
    """In the 0.4.1 venv: build each entry, record weights, batches and outputs."""
    import torch

    _import_041_models()
    specs = json.loads(Path(specs_path).read_text())
    for entry, spec in specs.items():
        torch.manual_seed(spec["seed"])
        model = build(spec)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        generator = torch.Generator().manual_seed(spec["seed"] + 1)
        x_train = torch.randn(*spec["input_shape"], generator=generator) * 2
        x_eval = torch.randn(*spec["input_shape"], generator=generator)
        model.train()
        with torch.no_grad():
            train_out = model(x_train)
        trained = {k: v.clone() for k, v in model.state_dict().items()}
        model.eval()
        with torch.no_grad():
            logits = model(x_eval)
        torch.save(
            {
                "initial": initial,
                "x_train": x_train,
                "train_out": train_out,
                "trained": trained,
                "x_eval": x_eval,
                "logits": logits,
            },
            Path(out_dir) / f"{entry}.pt",
        )


def _run_worker(python: str, specs_path: str, out_dir: str) -> None:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    command = [python, "-P", str(Path(__file__).resolve()), "--worker", specs_path, out_dir]
    done = subprocess.run(
        command, cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"bitorch 0.4.1 worker failed:\n{done.stdout}\n{done.stderr}")


def _layout(state: dict[str, Any]) -> list[list[Any]]:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]


def _max_diff(a: Any, b: Any) -> float:
    import torch

    if a.shape != b.shape:
        return float("inf")
    if not a.is_floating_point():
        return float((a != b).sum())
    if not a.numel():
        return 0.0
    a, b = a.double(), b.double()
    if not torch.equal(a.isnan(), b.isnan()):  # NaN in one only: a real difference
        return float("inf")
    both = a.isnan()  # NaN at the same places (0.4.1's own float32 overflow) is equal
    return float((a.masked_fill(both, 0.0) - b.masked_fill(both, 0.0)).abs().max())


def _same(a: Any, b: Any) -> bool:
    """Bit-equal, NaN equal to NaN at the same positions (torch.equal says NaN != NaN)."""
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    nan = a.isnan()
    return torch.equal(nan, b.isnan()) and torch.equal(
        a.masked_fill(nan, 0.0), b.masked_fill(nan, 0.0)
    )


def compare(entry: str, spec: dict[str, Any], record_path: Path) -> dict[str, Any]:
    """Load 0.4.1's record into this repository's model; compare everything."""
    import torch

    record = torch.load(record_path, weights_only=True)
    result: dict[str, Any] = {"entry": entry, "spec": spec}
    torch.manual_seed(spec["seed"])
    model = build(spec)
    ours, theirs = _layout(model.state_dict()), _layout(record["initial"])
    result["keys_equal"] = [k for k, *_ in ours] == [k for k, *_ in theirs]
    result["layout_equal"] = ours == theirs
    if not result["layout_equal"]:
        result["layout_diff"] = {
            "only_here": sorted({k for k, *_ in ours} - {k for k, *_ in theirs})[:20],
            "only_041": sorted({k for k, *_ in theirs} - {k for k, *_ in ours})[:20],
            "different": [a for a, b in zip(ours, theirs, strict=False) if a != b][:20],
        }
    try:
        model.load_state_dict(record["initial"], strict=True)
        result["strict_load"] = True
    except RuntimeError as error:
        result["strict_load"] = False
        result["load_error"] = str(error)[:2000]
        result["ok"] = False
        return result
    model.train()
    with torch.no_grad():
        train_out = model(record["x_train"])
    result["train_out_max_abs_diff"] = _max_diff(train_out, record["train_out"])
    after = model.state_dict()
    result["trained_state_max_abs_diff"] = max(
        (_max_diff(after[k], v) for k, v in record["trained"].items()), default=0.0
    )
    model.eval()
    with torch.no_grad():
        logits = model(record["x_eval"])
    result["logits_max_abs_diff"] = _max_diff(logits, record["logits"])
    result["logits_bit_equal"] = _same(logits, record["logits"])
    result["ok"] = (
        result["layout_equal"]
        and result["logits_bit_equal"]
        and _same(train_out, record["train_out"])
        and result["trained_state_max_abs_diff"] == 0.0
    )
    return result


def write_data(entry: str, spec: dict[str, Any], record_path: Path) -> Path:
    """``tests/models/data041/<entry>.json``: the constructor call and 0.4.1's layout."""
    import torch

    record = torch.load(record_path, weights_only=True)
    data = {
        "generated_by": "scripts/zoo041_diff.py --write-data (bitorch 0.4.1)",
        "entry": entry,
        "model": spec["model"],
        "args": spec["args"],
        "input_shape": spec["input_shape"],
        "num_classes": spec["num_classes"],
        "kwargs": spec["kwargs"],
        "state_dict": _layout(record["initial"]),
    }
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"{entry}.json"
    # one line per state_dict entry, so that a diff of the file reads as a layout diff
    head = json.dumps({k: v for k, v in data.items() if k != "state_dict"}, indent=1)
    rows = ",\n  ".join(json.dumps(row) for row in data["state_dict"])
    path.write_text(f'{head[:-2]},\n "state_dict": [\n  {rows}\n ]\n}}\n')
    if json.loads(path.read_text()) != data:
        raise RuntimeError(f"{path}: the written file does not read back as written")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", required=True, help="comma-separated entries")
    parser.add_argument("--python", default=DEFAULT_BT041_PYTHON, help="the 0.4.1 venv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--override", action="append", default=[], help='ENTRY=JSON, e.g. LeNet={"num_classes": 3}'
    )
    parser.add_argument("--write-data", action="store_true", help="write tests/models/data041")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    overrides: dict[str, dict[str, Any]] = {}
    for item in args.override:
        entry, sep, text = item.partition("=")
        if not sep:
            parser.error(f"--override expects ENTRY=JSON, got {item!r}")
        overrides[entry] = json.loads(text)
    entries = [e.strip() for e in args.models.split(",") if e.strip()]
    specs = {e: {**spec_of(e, overrides), "seed": args.seed} for e in entries}

    sys.path.insert(0, str(ROOT))  # this repository's bitorch in this process
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        specs_path = Path(tmp) / "specs.json"
        specs_path.write_text(json.dumps(specs))
        _run_worker(args.python, str(specs_path), tmp)
        for entry, spec in specs.items():
            record_path = Path(tmp) / f"{entry}.pt"
            result = compare(entry, spec, record_path)
            if args.write_data:
                result["data_file"] = str(write_data(entry, spec, record_path).relative_to(ROOT))
            results.append(result)
            print(
                f"{entry:22s} strict_load={result['strict_load']!s:5s} "
                f"layout_equal={result['layout_equal']!s:5s} "
                f"logits_bit_equal={result.get('logits_bit_equal')!s:5s} "
                f"max|dlogits|={result.get('logits_max_abs_diff')} "
                f"max|dtrain_out|={result.get('train_out_max_abs_diff')} "
                f"max|dstats|={result.get('trained_state_max_abs_diff')} "
                f"ok={result['ok']}"
            )
            if not result["strict_load"]:
                print(result["load_error"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
