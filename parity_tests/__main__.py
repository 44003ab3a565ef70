"""``python -m parity_tests`` (console script ``bitorch-parity``): the parity table.

Compares every quantizer registered in both ``bitorch`` and ``bitorch_jax`` (with its
parameter variants) for float32, float64, float16 and bfloat16 on every device present,
prints one table and exits 0 only when everything matches (1 otherwise, 2 for usage
errors). ``--plugin module:attr`` adds your own :class:`~parity_tests.cases.Case` pairs.

Example::

    python -m parity_tests --quantizers sign swishsign --dtypes float32 --size 10000

Subcommand ``models`` (:mod:`parity_tests.models`): the model zoo, torch against NNX::

    python -m parity_tests models --models LeNet,ResnetE18 --dtypes float64
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from bitorch_common.tolerances import DTYPES, FLIP_ULPS

__all__ = ["main", "build_parser", "load_plugin"]


class UsageError(Exception):
    """A bad command line (exit status 2)."""


def _split(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m parity_tests",
        description=(
            "Compare every bitorch (PyTorch) quantizer with its bitorch_jax (JAX) twin: "
            "forward values and input gradients, per dtype and device; and the quantized "
            "layers (QLinear, QConv1d/2d/3d, QActivation) with the linen and NNX classes "
            "(converted weights): outputs, input, weight and bias gradients. Exits 0 only "
            "when everything matches."
        ),
        epilog="Whole networks (the model zoo): python -m parity_tests models --help",
    )
    parser.add_argument(
        "--quantizers",
        nargs="+",
        metavar="NAME",
        help="registry keys (or plugin case names) to compare, comma list or 'all' "
        "(default) or 'none'",
    )
    parser.add_argument(
        "--layers",
        nargs="+",
        metavar="ID",
        help="layer case ids (QLinear, QConv1d/2d/3d, QActivation vs linen and NNX) to "
        "compare, comma list or 'all' (default) or 'none'; see --list. Layers run in "
        "float32 and float64 only",
    )
    parser.add_argument("--dtypes", nargs="+", metavar="DTYPE", help=f"default: {' '.join(DTYPES)}")
    parser.add_argument(
        "--devices",
        nargs="+",
        metavar="DEVICE",
        help="cpu, gpu or all (default: all = cpu, and gpu when present)",
    )
    parser.add_argument(
        "--size",
        type=_non_negative,
        default=100_000,
        help="elements per input array (default: 100000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add Case pairs from MODULE:ATTR (a Case, a list of them, or a function "
        "returning them); may be repeated",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the selected cases and exit: quantizer labels, then layer case ids "
        "(on stdout with --layers, else on stderr)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress indicator")
    return parser


def load_plugin(spec: str) -> list[Any]:
    """The cases named by ``module:attr`` (a Case, an iterable of them, or a factory)."""
    from parity_tests.cases import Case

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--plugin expects MODULE:ATTR, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--plugin {spec}: {exc}") from None
    if callable(obj) and not isinstance(obj, Case):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - a broken factory is a bad --plugin
            raise UsageError(f"--plugin {spec}: calling {attr}() failed: {exc}") from None
    cases = [obj] if isinstance(obj, Case) else list(obj) if isinstance(obj, Iterable) else None
    if not cases or not all(isinstance(c, Case) for c in cases):
        raise UsageError(f"--plugin {spec}: expected a Case or a non-empty list of Cases")
    return cases


class _Progress:
    """``[ 12/60] name dtype`` rewritten in place on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.width = 0

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        if done >= total:
            self.stream.write("\r" + " " * self.width + "\r")
        else:
            text = f"[{done + 1:>{len(str(total))}}/{total}] {label}"
            self.stream.write("\r" + text.ljust(self.width))
            self.width = max(self.width, len(text))
        self.stream.flush()


def _select(args: argparse.Namespace, extra_cases: Sequence[Any]) -> list[Any]:
    from parity_tests.cases import check_registries, registry_cases

    keys = check_registries()
    plugin_cases = list(extra_cases)
    for spec in args.plugin:
        plugin_cases += load_plugin(spec)
    wanted = _split(args.quantizers)
    if wanted is None or wanted == ["all"]:
        return registry_cases() + plugin_cases
    if wanted == ["none"]:
        return []
    plugin_names = {c.name for c in plugin_cases}
    unknown = [w for w in wanted if w.lower() not in keys and w not in plugin_names]
    if unknown:
        known = ", ".join([*keys, *sorted(plugin_names - set(keys))])
        raise UsageError(f"unknown quantizer(s): {', '.join(unknown)}; known: {known}")
    registry_wanted = [k for k in dict.fromkeys(w.lower() for w in wanted) if k in keys]
    return registry_cases(registry_wanted) + [c for c in plugin_cases if c.name in wanted]


def _select_layers(args: argparse.Namespace) -> list[Any]:
    """The layer cases of ``--layers`` (default: all)."""
    from parity_tests.layers import select_layer_cases

    try:
        return select_layer_cases(_split(args.layers))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None, *, extra_cases: Sequence[Any] = ()) -> int:
    """Run the parity table; returns the exit status (0 all match, 1 not, 2 usage error).

    ``extra_cases`` adds :class:`~parity_tests.cases.Case` pairs, as ``--plugin`` does.
    ``python -m parity_tests models ...`` runs the model zoo instead
    (:func:`parity_tests.models.main`).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["models"]:
        from parity_tests.models import main as models_main

        return models_main(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)

    import jax
    import torch

    from parity_tests.api import resolve_devices, resolve_dtypes, run_cases
    from parity_tests.cases import RegistryMismatch
    from parity_tests.layers import LAYER_DTYPES, run_layer_cases

    try:
        dtypes = resolve_dtypes(_split(args.dtypes))
        devices = _split(args.devices)
        if devices is not None and "all" in devices:
            devices = None
        run_devices, skipped = resolve_devices(devices)
        cases = _select(args, extra_cases)
        layer_cases = _select_layers(args)
    except RegistryMismatch as exc:
        print(f"parity: FAIL: {exc}", file=sys.stderr)
        return 1
    except (UsageError, ValueError, TypeError) as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2

    if args.list:
        for case in cases:
            print(case.label)
        # layer cases go to stdout when asked for (--layers), else to stderr, so that the
        # plain list stays one quantizer label per line
        stream = sys.stdout if args.layers is not None else sys.stderr
        if layer_cases and args.layers is None:
            print(f"{len(layer_cases)} layer cases (listed on stdout with --layers all):",
                  file=stream)  # fmt: skip
        for layer_case in layer_cases:
            print(f"{layer_case.id}  {layer_case.description}", file=stream)
        return 0

    out = sys.stdout
    print(
        f"bitorch-jax parity: bitorch (torch {torch.__version__}) vs bitorch_jax "
        f"(jax {jax.__version__})",
        file=out,
    )
    print(
        f"{len(cases)} quantizer cases x {len(dtypes)} dtypes; {args.size} elements per input "
        f"(random values + SPEC edge values), random non-unit cotangent, seed {args.seed}",
        file=out,
    )
    layer_dtypes = [d for d in dtypes if d in LAYER_DTYPES]
    layer_skip = None
    if not layer_cases:
        layer_line = "layer cases: none selected (--layers)"
    elif not layer_dtypes:
        layer_skip = (
            f"Layers: skipped, {len(layer_cases)} layer cases selected but they run in "
            f"{' and '.join(LAYER_DTYPES)} only and --dtypes has neither"
        )
        layer_line = layer_skip
    else:
        layer_line = (
            f"{len(layer_cases)} layer cases x {len(layer_dtypes)} dtypes "
            f"({', '.join(layer_dtypes)}): QLinear, QConv1d/2d/3d, QActivation vs linen and "
            "NNX with bitorch_jax.convert weights; output, input/weight/bias gradients"
        )
    print(layer_line, file=out)
    device_text = ", ".join(run_devices) if run_devices else "none"
    print(f"devices: {device_text}" + "".join(f"; {s}" for s in skipped), file=out)
    print(file=out)

    progress = _Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.quiet)
    start = time.perf_counter()
    report = run_cases(
        cases,
        dtypes=dtypes,
        devices=devices,
        shape=(args.size,),
        seed=args.seed,
        progress=progress,
    )
    quantizer_time = time.perf_counter() - start
    if layer_cases and layer_dtypes and run_devices:
        report.results += run_layer_cases(
            layer_cases,
            dtypes=layer_dtypes,
            devices=run_devices,
            seed=args.seed,
            progress=progress,
        ).results
    if layer_skip:
        report.skipped.append(layer_skip)
    elapsed = time.perf_counter() - start

    print(report.table(), file=out)
    print(file=out)
    print(report.summary(), file=out)
    largest = report.largest_by_dtype()
    if largest:
        print(largest, file=out)
    print(
        "Forward: discrete outputs must be equal; a boundary flip is allowed and counted only "
        f"where the pre-round value is computed inexactly, lies within {FLIP_ULPS} ulps of a "
        "rounding boundary and both values are levels next to it. Gradients: bit-equal where "
        "exactly specified; transcendental ones within the per-dtype tolerances of "
        "bitorch_common/tolerances.py.",
        file=out,
    )
    if any(r.kind == "layer" for r in report.results):
        print(
            "Layers (params: linen/nnx vs torch): outputs of layers whose two quantizers are "
            "1-bit are exact sums of +-1 and must be bit-equal; other outputs and every "
            "gradient (weight and bias gradients in torch layout) within layer_tolerance "
            "(bitorch_common/tolerances.py); NaN positions equal; input gradient exactly 0 "
            "where |x| > threshold > 0.",
            file=out,
        )
    details = report.details()
    if details:
        print(file=out)
        print(details, file=out)
    verdict = "PASS: everything matches" if report.ok else "FAIL: see above"
    split = f": quantizers {quantizer_time:.1f} s, layers {elapsed - quantizer_time:.1f} s"
    print(f"\n{verdict} ({elapsed:.1f} s{split})", file=out)

    if args.json:
        text = report.to_json(
            torch=torch.__version__,
            jax=jax.__version__,
            seed=args.seed,
            size=args.size,
            dtypes=dtypes,
            devices=run_devices,
            layer_cases=[c.id for c in layer_cases] if layer_dtypes else [],
            layer_dtypes=layer_dtypes if layer_cases else [],
        )
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
