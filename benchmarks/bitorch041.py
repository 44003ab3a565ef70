"""bitorch (this repository) against the published bitorch 0.4.1: speed and results.

Both packages are called ``bitorch``, so they cannot share a process. This script starts
one worker process per implementation: ours with this interpreter and the repository on
``PYTHONPATH``, bitorch 0.4.1 with the interpreter of a scratch virtualenv where the
0.4.1 wheel is installed (``--bt041-python``; nothing of 0.4.1 is imported here or by
the project). Each worker checks which ``bitorch`` it imported and reports its path.

``time`` (the default): forward + backward in torch eager of every quantizer on
``--size`` (default ``2**24``) float32 elements (``x = 1.5 * randn``, a random output
gradient, the same in both workers), built with 0.4.1's constructors (``SwishSign(5.0)``,
``InputDoReFa(2)``, ``WeightDoReFa(2)``). One step is ``x.grad = None; q(x).backward(g)``.
The two workers are driven alternately, quantizer by quantizer and repeat by repeat (the
order swapped every time), so slow phases of a shared machine hit both; ``--processes``
(default 3) fresh worker pairs run one after the other, ``--repeats`` (default 5) steps
each after a warm-up, and the table gives the median of all steps (15 by default) and
the ratio ours / 0.4.1.
Everything a worker prints goes to ``/dev/null`` (0.4.1's ``SteHeaviside`` prints a count
in every backward pass; it still formats it, as in real use, but no terminal slows it).

``diff``: the differential check. The same random inputs (float32 and float64, drawn
here with NumPy) go through both implementations; forward values and input gradients are
compared element by element (bit patterns, values, largest difference). The inputs avoid
the cases where SPEC.md lists a deviation from 0.4.1 (NaN, ``±inf``, all-zero or empty
``weightdorefa`` input, ``beta`` not exact in float32, half precision); a short second
part runs those cases and shows that they differ as documented.

Set up the scratch environment once (outside the project; the wheel is not a
dependency of anything here)::

    python3 -m venv /tmp/bt041/venv
    /tmp/bt041/venv/bin/pip install torch==2.13.0 numpy pandas
    /tmp/bt041/venv/bin/pip install --no-deps /tmp/bt041/bitorch-0.4.1-py2.py3-none-any.whl

Then, from the repository root::

    python -m benchmarks.bitorch041 time [--json] [--size 2**24] [--repeats 5] [--processes 3]
    python -m benchmarks.bitorch041 diff [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BT041_PYTHON = "/tmp/bt041/venv/bin/python"
OURS, BT041 = "ours", "bitorch 0.4.1"

# key -> (class name in bitorch.quantizations, positional constructor arguments), the
# call patterns of bitorch 0.4.1, which ours accepts too.
QUANTIZERS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "sign": ("Sign", ()),
    "approxsign": ("ApproxSign", ()),
    "swishsign": ("SwishSign", (5.0,)),
    "steheaviside": ("SteHeaviside", ()),
    "inputdorefa": ("InputDoReFa", (2,)),
    "weightdorefa": ("WeightDoReFa", (2,)),
    "identity": ("Identity", ()),
}

# ----------------------------------------------------------------------------- worker


def _worker(expect: str) -> None:
    """Serve JSON commands on stdin; answer on the original stdout, print nothing else."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the worker)

    import torch

    import bitorch.quantizations as bq

    where = str(Path(bq.__file__).resolve())
    inside_repo = where.startswith(str(ROOT) + os.sep)
    if inside_repo != (expect == OURS):
        raise SystemExit(f"worker for {expect!r} imported the wrong bitorch: {where}")
    state: dict[str, Any] = {}

    def build(key: str) -> Any:
        name, args = QUANTIZERS[key]
        return getattr(bq, name)(*args)

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        reply: dict[str, Any] = {}
        if op == "setup":
            if cmd.get("threads"):
                torch.set_num_threads(int(cmd["threads"]))
            gen = torch.Generator().manual_seed(int(cmd["seed"]))
            x = 1.5 * torch.randn(int(cmd["size"]), generator=gen)
            g = torch.randn(int(cmd["size"]), generator=gen)
            state.update(x=x.requires_grad_(True), g=g, q={k: build(k) for k in cmd["keys"]})
            for key in cmd["keys"]:  # warm-up
                _step(state, key)
            reply = {
                "bitorch": where,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "python": platform.python_version(),
            }
        elif op == "time":
            reply = {"ms": 1e3 * _step(state, cmd["key"])}
        elif op == "diff":
            reply = {"cases": _diff_outputs(torch, bq, cmd["inputs"], cmd["out"])}
        elif op == "quit":
            break
        protocol.write(json.dumps(reply) + "\n")


def _step(state: dict[str, Any], key: str) -> float:
    x, g, q = state["x"], state["g"], state["q"][key]
    x.grad = None
    start = time.perf_counter()
    q(x).backward(g)
    return time.perf_counter() - start


def _diff_outputs(torch: Any, bq: Any, inputs: str, out: str) -> int:
    """Forward values and input gradients of every case in ``inputs`` (an .npz), saved to
    ``out``; a case is ``key|dtype|input|args`` with the constructor args as JSON."""
    data = np.load(inputs)
    results: dict[str, np.ndarray] = {}
    for case in json.loads(str(data["cases"])):
        key, args = case["key"], tuple(case["args"])
        x = torch.from_numpy(data[case["x"]].copy()).requires_grad_(True)
        g = torch.from_numpy(data[case["g"]].copy())
        name = QUANTIZERS[key][0]
        try:
            y = getattr(bq, name)(*args)(x)
            y.backward(g.to(y.dtype))  # 0.4.1's steheaviside output is always float32
            results[case["id"] + "|fwd"] = y.detach().numpy()
            results[case["id"] + "|grad"] = x.grad.numpy()
        except Exception as exc:  # an error is a result too (e.g. 0.4.1 on empty input)
            results[case["id"] + "|error"] = np.array(f"{type(exc).__name__}: {exc}")
    np.savez(out, **results)
    return len(results)


# ----------------------------------------------------------------------------- parent


class Worker:
    """One worker process (one implementation), driven over stdin/stdout."""

    def __init__(self, label: str, python: str) -> None:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if label == OURS:
            env["PYTHONPATH"] = str(ROOT)
        cmd = [python, "-s", str(Path(__file__).resolve()), "--worker", label]
        self.label = label
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),  # not the repository: 0.4.1 must not see ./bitorch
        )

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.label} worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(op="quit")
        self.proc.wait(timeout=60)


@contextlib.contextmanager
def workers(bt041_python: str) -> Iterator[dict[str, Worker]]:
    if not Path(bt041_python).exists():
        raise SystemExit(
            f"{bt041_python} not found: set up the scratch virtualenv (see --help) or pass "
            "--bt041-python"
        )
    started = {OURS: Worker(OURS, sys.executable), BT041: Worker(BT041, bt041_python)}
    try:
        yield started
    finally:
        for w in started.values():
            w.close()


def run_time(args: argparse.Namespace) -> dict[str, Any]:
    keys = args.quantizers
    samples: dict[str, dict[str, list[float]]] = {k: {OURS: [], BT041: []} for k in keys}
    for p in range(args.processes):
        # A fresh pair of workers each time: a process's own memory layout (where its
        # large buffers land, huge pages or not) biases all its steps alike.
        with workers(args.bt041_python) as ws:
            env = {
                label: w.ask(op="setup", size=args.size, seed=0, keys=keys, threads=args.threads)
                for label, w in ws.items()
            }
            for r in range(args.repeats):
                for i, key in enumerate(keys):
                    order = (BT041, OURS) if (p + r + i) % 2 == 0 else (OURS, BT041)
                    for label in order:
                        samples[key][label].append(ws[label].ask(op="time", key=key)["ms"])
    rows = []
    for key in keys:
        old, new = (statistics.median(samples[key][label]) for label in (BT041, OURS))
        rows.append(
            {
                "quantizer": key,
                "bitorch041_ms": old,
                "ours_ms": new,
                "ratio": new / old,
                "samples_ms": samples[key],
            }
        )
    return {
        "date": datetime.date.today().isoformat(),
        "command": _command(),
        "size": args.size,
        "repeats": args.repeats,
        "processes": args.processes,
        "dtype": "float32",
        "step": "x.grad = None; q(x).backward(g)  (torch eager, CPU)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "workers": env,
        "results": rows,
    }


def time_table(result: dict[str, Any]) -> str:
    lines = [
        f"{'quantizer':14s} {'0.4.1 ms':>10s} {'ours ms':>10s} {'ratio':>7s}",
        f"{'-' * 14} {'-' * 10} {'-' * 10} {'-' * 7}",
    ]
    for row in result["results"]:
        lines.append(
            f"{row['quantizer']:14s} {row['bitorch041_ms']:10.1f} {row['ours_ms']:10.1f} "
            f"{row['ratio']:7.2f}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ differential check

# Cases outside SPEC.md's deviations: (key, constructor args, dtypes).
DIFF_CASES: list[tuple[str, tuple[Any, ...]]] = [
    ("sign", ()),
    ("approxsign", ()),
    ("swishsign", (5.0,)),
    ("swishsign", (1.0,)),
    ("swishsign", (2.5,)),
    ("steheaviside", ()),
    *[("inputdorefa", (b,)) for b in (1, 2, 3, 4, 8, 16)],
    *[("weightdorefa", (b,)) for b in (1, 2, 3, 4, 8, 16)],
    ("identity", ()),
]

# steheaviside's output is float32 in 0.4.1 whatever the input dtype (a deviation), so
# with float64 input its gradient is the float32 cotangent's: shown with the deviations.
DIFF_SKIP = {("steheaviside", "float64")}

# The deviations of SPEC.md, run to show that they are what differs: (label, key, args,
# input name).
DEVIATION_CASES: list[tuple[str, str, tuple[Any, ...], str]] = [
    ("NaN input (sign)", "sign", (), "nonfinite"),
    ("NaN/inf input (approxsign)", "approxsign", (), "nonfinite"),
    ("NaN/inf input (swishsign)", "swishsign", (5.0,), "nonfinite"),
    ("NaN input, output dtype (steheaviside)", "steheaviside", (), "nonfinite"),
    ("all-zero input (weightdorefa)", "weightdorefa", (2,), "zeros"),
    ("empty input (weightdorefa)", "weightdorefa", (2,), "empty"),
    ("beta not exact in float32 (swishsign)", "swishsign", (1.3,), "randn"),
    ("output dtype (steheaviside)", "steheaviside", (), "randn"),
    ("all-subnormal input (weightdorefa)", "weightdorefa", (2,), "subnormal"),
    ("huge finite input (swishsign)", "swishsign", (5.0,), "huge"),
]


def _diff_inputs(rng: np.random.Generator, dtype: type) -> dict[str, np.ndarray]:
    """Random finite inputs (no NaN, no inf, not all zero), one tensor each."""
    one = dtype(1)
    up, down = np.nextafter(one, dtype(2)), np.nextafter(one, dtype(0))
    sub = float(np.finfo(dtype).smallest_subnormal)
    specials = np.array([0.0, -0.0, 1, -1, up, -up, down, -down, 0.5, -0.5, 1e-30, -1e-30])
    specials = np.concatenate([specials, [sub, -sub, 3 * sub, -5 * sub]])
    n = 200_000
    near = np.concatenate(
        [
            specials.astype(dtype),
            rng.uniform(-1.01, 1.01, n).astype(dtype),
            (1 + rng.integers(-8, 9, 2000) * np.finfo(dtype).eps).astype(dtype),
        ]
    )
    rng.shuffle(near)
    return {
        "randn": (1.5 * rng.standard_normal(n)).astype(dtype),
        "uniform": rng.uniform(-3, 3, n).astype(dtype),
        "near_thresholds": near,
        "wide": (rng.standard_normal(n) * 10.0 ** rng.uniform(-30, 3, n)).astype(dtype),
    }


def _deviation_inputs(rng: np.random.Generator, dtype: type) -> dict[str, np.ndarray]:
    x = (1.5 * rng.standard_normal(1000)).astype(dtype)
    x[::97] = np.nan
    x[5::89] = np.inf
    x[7::89] = -np.inf
    info = np.finfo(dtype)
    sub = rng.integers(1, 1000, 1000) * info.smallest_subnormal * rng.choice([-1, 1], 1000)
    huge = info.max / rng.uniform(1, 50, 1000) * rng.choice([-1, 1], 1000)
    return {
        "nonfinite": x,
        "subnormal": sub.astype(dtype),
        "huge": huge.astype(dtype),
        "zeros": np.zeros(1000, dtype),
        "empty": np.zeros(0, dtype),
        "randn": (1.5 * rng.standard_normal(1000)).astype(dtype),
    }


def run_diff(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    arrays: dict[str, np.ndarray] = {}
    cases: list[dict[str, Any]] = []
    for dtype in (np.float32, np.float64):
        dt = np.dtype(dtype).name
        for name, x in _diff_inputs(rng, dtype).items():
            arrays[f"x|{dt}|{name}"] = x
            arrays[f"g|{dt}|{name}"] = (1.5 * rng.standard_normal(x.shape)).astype(dtype)
            for key, cargs in DIFF_CASES:
                if (key, dt) not in DIFF_SKIP:
                    cases.append(_case("diff", key, cargs, dt, name))
        for name, x in _deviation_inputs(rng, dtype).items():
            arrays[f"x|{dt}|dev-{name}"] = x
            arrays[f"g|{dt}|dev-{name}"] = (1.5 * rng.standard_normal(x.shape)).astype(dtype)
        for label, key, cargs, name in DEVIATION_CASES:
            cases.append(_case("deviation", key, cargs, dt, "dev-" + name, label=label))
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, cases=np.array(json.dumps(cases)), **arrays)
        outputs = {}
        with workers(args.bt041_python) as ws:
            for label, w in ws.items():
                path = Path(tmp) / f"{label.replace(' ', '_')}.npz"
                w.ask(op="diff", inputs=str(inputs), out=str(path))
                with np.load(path) as data:
                    outputs[label] = {k: data[k] for k in data.files}
    rows = [_compare(case, outputs[BT041], outputs[OURS]) for case in cases]
    return {
        "date": datetime.date.today().isoformat(),
        "command": _command(),
        "seed": args.seed,
        "results": rows,
    }


def _case(kind: str, key: str, cargs: tuple[Any, ...], dt: str, name: str, **extra: Any) -> dict:
    args_s = ",".join(map(str, cargs))
    return {
        "kind": kind,
        "id": f"{key}({args_s})|{dt}|{name}",
        "key": key,
        "args": list(cargs),
        "dtype": dt,
        "input": name,
        "x": f"x|{dt}|{name}",
        "g": f"g|{dt}|{name}",
        **extra,
    }


def _bits_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: the bit patterns differ (any NaN equals any NaN)."""
    both_nan = np.isnan(a) & np.isnan(b)
    return ~both_nan & (
        a.view(np.uint8).reshape(a.shape + (-1,)) != b.view(np.uint8).reshape(b.shape + (-1,))
    ).any(axis=-1)


def _compare_arrays(old: np.ndarray, new: np.ndarray) -> dict[str, Any]:
    info: dict[str, Any] = {"n": int(new.size)}
    if old.dtype != new.dtype:
        info["dtype"] = f"0.4.1 {old.dtype}, ours {new.dtype}"
        old = old.astype(new.dtype)
    if old.shape != new.shape:
        return {**info, "shape": f"0.4.1 {old.shape}, ours {new.shape}"}
    with np.errstate(invalid="ignore"):
        value_equal = (old == new) | (np.isnan(old) & np.isnan(new))
        bits = _bits_differ(old, new)
        finite = np.isfinite(old) & np.isfinite(new)
        diff = np.abs(old[finite].astype(np.float64) - new[finite].astype(np.float64))
    info.update(
        value_differ=int((~value_equal).sum()),
        bits_differ=int(bits.sum()),
        signed_zero_only=int((bits & value_equal & (old == 0)).sum()),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        nan=f"{int(np.isnan(old).sum())} / {int(np.isnan(new).sum())}",
    )
    return info


def _compare(case: dict[str, Any], old: dict, new: dict) -> dict[str, Any]:
    row: dict[str, Any] = {k: case[k] for k in ("kind", "id", "key", "dtype", "input")}
    if "label" in case:
        row["label"] = case["label"]
    for label, out in ((BT041, old), (OURS, new)):
        if case["id"] + "|error" in out:
            row[f"error {label}"] = str(out[case["id"] + "|error"])
    if any(k.startswith("error") for k in row):
        return row
    for part in ("fwd", "grad"):
        row[part] = _compare_arrays(old[case["id"] + "|" + part], new[case["id"] + "|" + part])
    return row


def diff_table(result: dict[str, Any]) -> str:
    out = [
        "Outside the deviations (values: elements whose values differ; bits: whose bit "
        "patterns differ, of which only the sign of a zero):",
        f"{'case':58s} {'n':>7s} {'fwd values':>10s} {'fwd bits':>8s} {'grad values':>11s} "
        f"{'grad bits':>9s} {'(±0 only)':>9s} {'max |grad diff|':>15s}",
    ]
    for row in result["results"]:
        if row["kind"] != "diff":
            continue
        if "fwd" not in row:
            out.append(f"{row['id']:58s} ERROR {row}")
            continue
        f, g = row["fwd"], row["grad"]
        out.append(
            f"{row['id']:58s} {f['n']:7d} {f['value_differ']:10d} {f['bits_differ']:8d} "
            f"{g['value_differ']:11d} {g['bits_differ']:9d} {g['signed_zero_only']:9d} "
            f"{g['max_abs_diff']:15.3g}"
        )
    out += ["", "The deviations of SPEC.md (expected to differ):"]
    for row in result["results"]:
        if row["kind"] != "deviation":
            continue
        head = f"{row['label']} [{row['dtype']}]"
        if "fwd" not in row:
            errors = "; ".join(f"{k[6:]}: {v}" for k, v in row.items() if k.startswith("error"))
            out.append(f"  {head}: {errors}")
            continue
        parts = []
        for part in ("fwd", "grad"):
            r = row[part]
            note = f", {r['dtype']}" if "dtype" in r else ""
            parts.append(
                f"{part}: {r['value_differ']}/{r['n']} values differ, NaN (0.4.1 / ours) "
                f"{r['nan']}{note}"
            )
        out.append(f"  {head}: " + "; ".join(parts))
    return "\n".join(out)


# ------------------------------------------------------------------------------- main


def _command() -> str:
    return "python -m benchmarks.bitorch041 " + " ".join(sys.argv[1:])


def _size(text: str) -> int:
    if "**" in text:
        base, exp = text.split("**")
        return int(base) ** int(exp)
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bitorch041",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("mode", nargs="?", choices=("time", "diff"), default="time")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--size", type=_size, default=2**24, help="elements (default 2**24)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed steps per quantizer and worker pair"
    )
    parser.add_argument(
        "--processes", type=int, default=3, help="worker pairs started one after the other"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the diff inputs")
    parser.add_argument(
        "--quantizers",
        type=lambda s: s.split(","),
        default=list(QUANTIZERS),
        help="comma-separated keys (default: all)",
    )
    parser.add_argument("--bt041-python", default=DEFAULT_BT041_PYTHON)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    unknown = sorted(set(args.quantizers) - set(QUANTIZERS))
    if unknown:
        parser.error(f"unknown quantizers {unknown}; known: {', '.join(QUANTIZERS)}")
    if args.repeats < 1 or args.processes < 1:
        parser.error("--repeats and --processes must be >= 1")
    result = run_time(args) if args.mode == "time" else run_diff(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['date']}: {result['command']}")
        if args.mode == "time":
            steps = result["repeats"] * result["processes"]
            sizes = (
                f"{result['size']} float32 elements, median of {steps} steps "
                f"({result['processes']} worker pairs x {result['repeats']})"
            )
            print(f"{sizes}; workers: {json.dumps(result['workers'])}")
            print(time_table(result))
        else:
            print(diff_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
