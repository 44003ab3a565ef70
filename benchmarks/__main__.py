"""``python -m benchmarks``: speed and memory of bitorch and bitorch_jax, side by side.

Examples::

    python -m benchmarks                                  # everything, 2**24 float32 on CPU
    python -m benchmarks --size 2**20 --repeats 5 --quantizers sign,approxsign
    python -m benchmarks --json out.json --markdown BENCHMARKS.md --malloc both
    python -m benchmarks --device gpu --json gpu.json --markdown gpu.md

Every report (terminal text, Markdown, JSON) holds only what this run measured. The
Markdown report is one block between two marker lines: ``--markdown FILE`` writes a new
FILE, or replaces only that block in an existing FILE (BENCHMARKS.md keeps its
hand-written notes outside the markers); an existing FILE without the markers is left
alone (exit status 2). ``--device gpu`` on a machine without a usable GPU records why,
skips the quantizer timings, still writes the reports, and exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep torch.profiler quiet

PARTS = ("quantizers", "memory", "training")
EXIT_NO_DEVICE = 3  # --device gpu, but no usable GPU: reports written, nothing timed on it


def parse_size(text: str) -> int:
    """An element count: ``16777216`` or ``2**24``."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:\*\*\s*(\d+))?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must be an integer or 'B**E', got {text!r}")
    value = int(match.group(1)) ** int(match.group(2)) if match.group(2) else int(match.group(1))
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Forward+backward speed, floor, saved-for-backward memory and training "
        "step of bitorch (torch eager, torch.compile) and bitorch_jax (jax.jit).",
    )
    p.add_argument("--size", type=parse_size, default=2**24, help="elements (default 2**24)")
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"]
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--quantizers", default="", help="comma-separated registry keys (default: all)")
    p.add_argument(
        "--implementations",
        default="jax,jax_donated,torch_eager,torch_compile",
        help="comma-separated subset of jax,jax_donated,torch_eager,torch_compile",
    )
    p.add_argument("--repeats", type=int, default=15, help="timed repeats per implementation")
    p.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts to run: {','.join(PARTS)}"
    )
    p.add_argument(
        "--malloc",
        default="default",
        choices=["default", "reuse", "both"],
        help="default: as the process starts; reuse: rerun under GLIBC_TUNABLES that "
        "make freed memory reused; both: the default run plus the quantizer "
        "timings again in a child process with reuse",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own choice)",
    )
    p.add_argument("--train-batch", type=int, default=64, help="training batch size")
    p.add_argument("--train-steps", type=int, default=20, help="steps per timed block")
    p.add_argument("--train-repeats", type=int, default=5, help="timed blocks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: load a result written by --json and print/write its reports",
    )
    return p


def _reexec_with_reuse(argv: list[str]) -> None:
    from benchmarks.machine import MALLOC_REUSE_TUNABLES

    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_REUSE_TUNABLES)
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *argv], env)


def _child_reuse_run(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """The quantizer timings again, in a child process under GLIBC_TUNABLES."""
    from benchmarks.machine import MALLOC_REUSE_TUNABLES

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "reuse.json")
        cmd = [
            sys.executable,
            "-m",
            "benchmarks",
            "--only",
            "quantizers",
            "--malloc",
            "reuse",
            "--size",
            str(args.size),
            "--dtype",
            args.dtype,
            "--device",
            args.device,
            "--repeats",
            str(args.repeats),
            "--implementations",
            args.implementations,
            "--seed",
            str(args.seed),
            "--json",
            out,
        ]
        if args.quantizers:
            cmd += ["--quantizers", args.quantizers]
        if args.torch_threads is not None:
            cmd += ["--torch-threads", str(args.torch_threads)]
        env = dict(os.environ, GLIBC_TUNABLES=MALLOC_REUSE_TUNABLES)
        log("running the quantizer timings again with GLIBC_TUNABLES=" + MALLOC_REUSE_TUNABLES)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            return {"error": f"child run failed with exit code {proc.returncode}"}
        with open(out) as f:
            child = json.load(f)
    return {"machine_env": child["machine"]["env"], "quantizers": child["quantizers"]}


def device_status(device: str) -> dict[str, Any]:
    """Whether ``device`` is usable by both frameworks, and if not, why.

    ``{"requested", "available", "torch", "jax", "reason"}``; ``torch``/``jax`` name the
    device each framework will use (``None`` where it has none).
    """
    from benchmarks.frameworks import jax_device, torch_device

    status: dict[str, Any] = {"requested": device, "available": True, "torch": None, "jax": None}
    reasons = []
    try:
        tdev = torch_device(device)
        if tdev.type == "cuda":
            import torch

            status["torch"] = f"{tdev.type}:{torch.cuda.current_device()} " + (
                torch.cuda.get_device_name(torch.cuda.current_device())
            )
        else:
            status["torch"] = str(tdev)
    except Exception as err:  # reported, not fatal
        reasons.append(f"torch: {err}")
    try:
        status["jax"] = str(jax_device(device))
    except Exception as err:  # reported, not fatal
        reasons.append(f"jax: {err}")
    status["reason"] = "; ".join(reasons) or None
    status["available"] = not reasons
    return status


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run the selected parts; return the JSON-ready result."""
    import torch

    from benchmarks.cases import select_cases
    from benchmarks.machine import load_average, machine_info
    from benchmarks.memory import jax_residuals, torch_residuals
    from benchmarks.quantizers import bench_quantizer, warm_up_compilers
    from benchmarks.report import evaluate_targets

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[benchmarks] {msg}", file=sys.stderr, flush=True)

    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise SystemExit(f"--only: unknown parts {bad}; choose from {', '.join(PARTS)}")
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    if args.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    # Cold compiles: no on-disk caches, so compile_s means the same on every run.
    inductor_config.fx_graph_cache = False
    functorch_config.enable_autograd_cache = False

    cases = select_cases([q.strip() for q in args.quantizers.split(",") if q.strip()])
    implementations = tuple(i.strip() for i in args.implementations.split(",") if i.strip())
    result: dict[str, Any] = {
        "schema": "bitorch-benchmarks/1",
        "command": "python -m benchmarks " + " ".join(argv),
        "settings": {
            "size": args.size,
            "dtype": args.dtype,
            "device": args.device,
            "repeats": args.repeats,
            "quantizers": [c.key for c in cases],
            "implementations": list(implementations),
            "malloc": args.malloc,
            "train_batch": args.train_batch,
            "train_steps": args.train_steps,
        },
        "machine": machine_info(),
        "device": device_status(args.device),
    }
    if not result["device"]["available"]:
        log(f"--device {args.device} is not usable: {result['device']['reason']}")
        if "quantizers" in parts:
            log("skipping the quantizer timings (they run on --device); the reports say why")
            parts.remove("quantizers")
    if "quantizers" in parts:
        log("warming up torch.compile and jax.jit")
        result["warm_up"] = warm_up_compilers(torch_compile="torch_compile" in implementations)
        result["quantizers"] = []
        for case in cases:
            log(f"timing {case.label} (size {args.size}, {args.dtype}, {args.device})")
            result["quantizers"].append(
                bench_quantizer(
                    case,
                    size=args.size,
                    dtype=args.dtype,
                    device=args.device,
                    repeats=args.repeats,
                    implementations=implementations,
                    seed=args.seed,
                )
            )
    if "memory" in parts:
        log("counting saved-for-backward bytes")
        result["residuals"] = []
        for case in cases:
            row: dict[str, Any] = {"quantizer": case.label, "key": case.key}
            for name, fn in (
                ("torch_eager", lambda c: torch_residuals(c, dtype=args.dtype)),
                ("torch_compile", lambda c: torch_residuals(c, dtype=args.dtype, compiled=True)),
                ("jax", lambda c: jax_residuals(c, dtype=args.dtype)),
            ):
                if name == "torch_compile" and name not in implementations:
                    row[name] = {
                        "error": "not run (torch_compile not in --implementations)",
                        "total_bytes_per_element": None,
                    }
                    continue
                try:
                    torch._dynamo.reset()
                    row[name] = fn(case)
                except Exception as err:  # reported, not fatal
                    row[name] = {
                        "error": f"{type(err).__name__}: {err}"[:500],
                        "total_bytes_per_element": None,
                    }
            result["residuals"].append(row)
    if "training" in parts:
        log("training-step benchmark of examples/binary_net.py")
        try:
            from benchmarks.training import bench_training

            result["training"] = bench_training(
                batch_size=args.train_batch,
                steps=args.train_steps,
                repeats=args.train_repeats,
                seed=args.seed,
            )
        except Exception as err:
            result["training"] = {"error": f"{type(err).__name__}: {err}"[:800]}
    if args.malloc == "both" and "quantizers" in parts:
        result["quantizers_malloc_reuse"] = _child_reuse_run(args, log)
    result["load_average_end"] = load_average()
    result["targets"] = evaluate_targets(result)
    return result


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _merged_markdown(path: str, block: str) -> str | None:
    """``path``'s text with ``block`` as its generated report (a new file if there is
    none); ``None``, after saying why, if ``path`` has hand-written text but no markers."""
    from benchmarks.report import merge_markdown

    existing = None
    if os.path.exists(path):
        with open(path) as f:
            existing = f.read()
    try:
        return merge_markdown(existing, block)
    except ValueError as err:
        print(f"python -m benchmarks: --markdown {path}: {err}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.markdown and _merged_markdown(args.markdown, "") is None:
        return 2  # refused now, not after the measurements
    if args.from_json:
        from benchmarks.report import evaluate_targets

        with open(args.from_json) as f:
            result = json.load(f)
        result["targets"] = evaluate_targets(result)  # as this version judges them
    else:
        if args.malloc == "reuse" and "GLIBC_TUNABLES" not in os.environ:
            _reexec_with_reuse(argv)  # malloc settings are read when the process starts
        # Reports are made from exactly what the JSON holds (non-finite floats as None),
        # so --from-json reproduces them.
        result = json_ready(run(args, argv))
    from benchmarks.analysis import analysis_markdown, intro_markdown, method_markdown
    from benchmarks.report import markdown_report, text_report

    print(text_report(result))
    if args.json and not args.from_json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, allow_nan=False)
            f.write("\n")
    if args.markdown:
        block = markdown_report(
            result,
            intro=intro_markdown(result),
            method=method_markdown(result),
            analysis=analysis_markdown(result),
        )
        text = _merged_markdown(args.markdown, block)  # read again: it may have been edited
        if text is None:
            return 2
        with open(args.markdown, "w") as f:
            f.write(text)
    if not args.from_json and (result.get("device") or {}).get("available") is False:
        return EXIT_NO_DEVICE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
