"""Public API: compare a torch callable with a JAX callable, or run the case table.

>>> import bitorch.quantizations as bt, bitorch_jax.quantizations as bj
>>> report = compare(bt.Sign(), bj.Sign(), shape=(1000,), dtypes=["float32"],
...                  pre_round=lambda x: x, boundaries="zero", name="sign")
>>> report.ok, report[0].verdict
(True, 'PASS')

Each comparison makes the input once in NumPy (random values plus SPEC.md's edge values,
or your own arrays), draws one random non-unit cotangent, runs the forward and the input
gradient in both frameworks on the same dtype and device (torch autograd; ``jax.vjp``
under ``jax.jit``) and compares them with :func:`bitorch_common.comparison.compare_sample`.
On a GPU it also compares each framework's CPU result with its own GPU result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from bitorch_common.comparison import SampleComparison, compare_sample
from bitorch_common.inputs import cotangents, make_samples, np_dtype
from bitorch_common.tolerances import DTYPES, dtype_name
from parity_tests.backends import (
    DEVICES,
    gpu_status,
    jax_runner,
    jax_x64,
    run_jax,
    run_torch,
    to_torch,
)
from parity_tests.cases import Case
from parity_tests.report import ParityReport, ParityResult

__all__ = [
    "compare",
    "run_case",
    "run_case_groups",
    "run_cases",
    "resolve_devices",
    "resolve_dtypes",
]

Progress = Callable[[int, int, str], None]


def resolve_dtypes(dtypes: Iterable[Any] | Any | None) -> list[str]:
    """Canonical dtype names; ``None`` means all four (float32, float64, float16, bfloat16)."""
    if dtypes is None:
        return list(DTYPES)
    if isinstance(dtypes, (str, np.dtype, type)) or not isinstance(dtypes, Iterable):
        dtypes = [dtypes]
    names = [dtype_name(d) for d in dtypes]
    if not names:
        raise ValueError("dtypes is empty")
    return list(dict.fromkeys(names))


def resolve_devices(devices: Iterable[str] | str | None) -> tuple[list[str], list[str]]:
    """``(devices to run, skip messages)``. ``None``/``"all"``: CPU, and GPU when present.

    A GPU that is asked for but absent is skipped with a message that says why.
    """
    if devices is None or devices == "all":
        wanted = list(DEVICES)
        explicit = False
    else:
        wanted = [devices] if isinstance(devices, str) else list(devices)
        explicit = True
        bad = [d for d in wanted if d not in DEVICES]
        if bad or not wanted:
            raise ValueError(f"devices must be among {DEVICES} (or 'all'), got {wanted!r}")
    run, skipped = [], []
    for device in dict.fromkeys(wanted):
        if device == "gpu":
            present, reason = gpu_status()
            if not present:
                how = "requested but " if explicit else ""
                skipped.append(f"GPU: {how}not present, skipped ({reason})")
                continue
        run.append(device)
    return run, skipped


def _framework_outputs(
    case: Case, samples: list[np.ndarray], grads: list[np.ndarray], device: str, runner: Any
) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    pairs = zip(samples, grads, strict=True)
    return {
        "torch": [run_torch(case.torch_fn, x, g, device) for x, g in pairs],
        "jax": run_jax(runner, samples, grads, device),
    }


def _output_mismatches(
    case: Case, samples: list[np.ndarray], device: str
) -> list[SampleComparison] | None:
    """After a framework run raised: per input array, whether the forward outputs of the
    two frameworks differ from each other (or from the input) in shape or dtype, as
    :func:`compare_sample` words it; ``None`` when none does (or this check fails too), so
    that the original error is reported instead.

    A wrong output shape makes the gradient step itself fail (the cotangent has the
    input's shape), so the shapes are found with a forward pass alone: torch runs
    ``case.torch_fn``, JAX only traces ``case.jax_fn`` (:func:`jax.eval_shape`).
    """
    try:
        found = []
        for x in samples:
            y = case.torch_fn(to_torch(x, device))
            torch_out = np.zeros(tuple(y.shape), np_dtype(str(y.dtype).removeprefix("torch.")))
            with jax_x64(x.dtype):
                out = jax.eval_shape(case.jax_fn, jax.ShapeDtypeStruct(x.shape, x.dtype))
            jax_out = np.zeros(tuple(out.shape), np_dtype(str(out.dtype)))
            g = np.zeros_like(x)
            found.append(compare_sample(x, g, (torch_out, g), (jax_out, g)))
    except Exception:  # noqa: BLE001 - the diagnosis is best effort; the error stands
        return None
    return found if any(c.problems for c in found) else None


def _rows(
    case: Case,
    dtype: str,
    devices: Sequence[str],
    groups: list[list[np.ndarray]],
    rng: np.random.Generator,
) -> list[list[ParityResult]]:
    """Run every input array of every group once per framework and device, then compare
    group by group: one list of rows per group."""
    samples = [x for group in groups for x in group]
    grads = [cotangents(x.shape, dtype, rng) for x in samples]
    runner = jax_runner(case.jax_fn)
    need = set(devices) | ({"cpu"} if "gpu" in devices else set())
    outputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    mismatches: dict[str, list[SampleComparison]] = {}
    for device in sorted(need):
        try:
            outputs[device] = _framework_outputs(case, samples, grads, device, runner)
        except Exception as exc:  # noqa: BLE001 - reported as an ERROR row, not hidden
            errors[device] = f"{type(exc).__name__}: {exc}"
            found = _output_mismatches(case, samples, device)
            if found is not None:
                mismatches[device] = found

    pairs = [(d, "torch", "jax", d, d) for d in devices]
    if "gpu" in devices:
        pairs += [
            ("torch cpu/gpu", "torch:cpu", "torch:gpu", "cpu", "gpu"),
            ("jax cpu/gpu", "jax:cpu", "jax:gpu", "cpu", "gpu"),
        ]
    all_rows = []
    start = 0
    for group in groups:
        stop = start + len(group)
        rows = []
        for label, left, right, dev_left, dev_right in pairs:
            result = ParityResult(case.name, case.params_text, dtype, label, left=left, right=right)
            failed = [errors[d] for d in (dev_left, dev_right) if d in errors]
            named = [c for c in mismatches.get(dev_left, [])[start:stop] if c.problems]
            if (left, right) == ("torch", "jax") and named:
                for comparison in named:  # outputs of another shape or dtype: FAIL, named
                    result.add(comparison)
            elif failed:
                result.error = failed[0]
            else:
                fw_left, fw_right = left.split(":")[0], right.split(":")[0]
                try:
                    _compare_runs(
                        case,
                        result,
                        samples[start:stop],
                        grads[start:stop],
                        outputs[dev_left][fw_left][start:stop],
                        outputs[dev_right][fw_right][start:stop],
                    )
                except Exception as exc:  # noqa: BLE001 - e.g. a failing user pre_round
                    result.error = f"{type(exc).__name__}: {exc}"
            rows.append(result)
        all_rows.append(rows)
        start = stop
    return all_rows


def _compare_runs(
    case: Case,
    result: ParityResult,
    samples: list[np.ndarray],
    grads: list[np.ndarray],
    left: list[tuple[np.ndarray, np.ndarray]],
    right: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    for i, (x, g, a, b) in enumerate(zip(samples, grads, left, right, strict=True)):
        result.add(
            compare_sample(
                x,
                g,
                a,
                b,
                sample=i,
                discrete=case.discrete,
                pre_round=case.pre_round,
                boundaries=case.boundaries,
                flip_scale=case.flip_scale,
                grad_scale=case.grad_scale,
                pre_round_exact=case.pre_round_exact,
                level=case.level,
                exact_where=case.exact_where,
                grad_exact=case.grad_exact,
            )
        )


def _samples(
    case: Case, shape: Sequence[int], dtype: str, rng: np.random.Generator, edge_values: bool
) -> list[np.ndarray]:
    return make_samples(
        tuple(shape),
        dtype,
        rng,
        edges=edge_values,
        extra_edges=case.extra_edges,
        tensor_wide=case.tensor_wide,
    )


def run_case(
    case: Case,
    *,
    dtype: Any = "float32",
    devices: Sequence[str] = ("cpu",),
    shape: Sequence[int] | None = None,
    inputs: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    edge_values: bool = True,
) -> list[ParityResult]:
    """Compare one case for one dtype on ``devices`` (already resolved: present ones only).

    Give ``shape`` (random values plus edge values) or ``inputs`` (arrays cast to
    ``dtype``). Rows: ``cpu`` (torch vs JAX on CPU), ``gpu`` (torch CUDA vs JAX GPU), and
    on a GPU also ``torch cpu/gpu`` and ``jax cpu/gpu``. A framework that raises gives an
    ``ERROR`` row with its message.
    """
    name = dtype_name(dtype)
    rng = np.random.default_rng(seed)
    if inputs is not None:
        samples = [np.asarray(x).astype(np_dtype(name)) for x in inputs]
    elif shape is not None:
        samples = _samples(case, shape, name, rng, edge_values)
    else:
        raise ValueError("run_case needs shape= or inputs=")
    return _rows(case, name, list(devices), [samples], rng)[0]


def run_case_groups(
    case: Case,
    *,
    dtype: Any,
    groups: Mapping[str, Sequence[int] | Sequence[np.ndarray]],
    devices: Sequence[str] = ("cpu",),
    seed: int = 0,
) -> dict[str, list[ParityResult]]:
    """:func:`run_case` for several input groups at once, with one set of rows per group.

    A group is a shape (random values plus edge values, as ``shape=``) or a list of
    arrays (as ``inputs=``). All groups share the framework runs, so JAX compiles a few
    programs for all of them instead of one per group.
    """
    name = dtype_name(dtype)
    rng = np.random.default_rng(seed)
    arrays = []
    for group in groups.values():
        if all(isinstance(s, (int, np.integer)) for s in group):
            arrays.append(_samples(case, tuple(int(s) for s in group), name, rng, True))
        else:
            arrays.append([np.asarray(x).astype(np_dtype(name)) for x in group])
    rows = _rows(case, name, list(devices), arrays, rng)
    return dict(zip(groups, rows, strict=True))


def run_cases(
    cases: Sequence[Case],
    *,
    dtypes: Iterable[Any] | None = None,
    devices: Iterable[str] | str | None = None,
    shape: Sequence[int] = (100_000,),
    seed: int = 0,
    progress: Progress | None = None,
) -> ParityReport:
    """Every case × dtype on every device present: the run behind ``python -m parity_tests``.

    ``progress(done, total, label)`` is called before each case/dtype.
    """
    dtype_names = resolve_dtypes(dtypes)
    run, skipped = resolve_devices(devices)
    report = ParityReport(skipped=skipped)
    total = len(cases) * len(dtype_names)
    done = 0
    for case in cases:
        for name in dtype_names:
            if progress is not None:
                progress(done, total, f"{case.label} {name}")
            if run:
                report.results += run_case(case, dtype=name, devices=run, shape=shape, seed=seed)
            done += 1
    if progress is not None:
        progress(total, total, "done")
    return report


def compare(
    torch_fn: Callable[..., Any],
    jax_fn: Callable[..., Any],
    *,
    inputs: np.ndarray | Sequence[np.ndarray] | None = None,
    shape: Sequence[int] | None = None,
    dtypes: Iterable[Any] | Any | None = None,
    devices: Iterable[str] | str | None = ("cpu",),
    seed: int = 0,
    discrete: bool = True,
    pre_round: Callable[[np.ndarray], np.ndarray] | None = None,
    boundaries: str | None = None,
    flip_scale: float | None = None,
    grad_scale: float | None = None,
    tensor_wide: bool = False,
    pre_round_exact: bool | None = None,
    level: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    grad_exact: bool = False,
    edge_values: bool = True,
    name: str = "custom",
    params: Mapping[str, Any] | None = None,
) -> ParityReport:
    """Compare your torch quantizer with your JAX quantizer; returns a :class:`ParityReport`.

    Both callables take one array and return an array of its shape (the same dtype in
    both frameworks; otherwise the row is ``FAIL`` and its details name the mismatch, e.g.
    ``forward dtype: torch bfloat16, jax float32``). Inputs: ``shape=`` makes random
    values (``2*normal`` or ``uniform(-1.5, 1.5)``) with SPEC.md's edge values
    (``edge_values=False`` leaves them out); or ``inputs=`` gives one array (NumPy, JAX or
    torch) or a list of arrays.
    ``dtypes``: names or dtype objects; default: the dtype of ``inputs``, else float32.
    ``devices``: ``"cpu"``, ``"gpu"`` or ``"all"`` (CPU, and
    GPU when present); an absent GPU is listed in ``report.skipped``.

    ``discrete=True`` (a quantizer): outputs must be equal exactly, except boundary flips
    where ``pre_round(x)`` (your NumPy function giving the value before rounding; default
    the input itself) lies within a few ulps of a ``boundaries`` point: ``"zero"`` (a sign
    threshold at 0) or ``"half"`` (round half to even at ``k + 0.5``). Without
    ``boundaries`` every difference fails. ``flip_scale`` sets the magnitude whose ulps
    size the flip window (default: 0 for ``"zero"``, the largest pre-round value for
    ``"half"``). ``discrete=False``: forward values get the gradient tolerance.
    ``grad_scale``: an upper bound of ``|dq/dx|`` (default: the largest seen, at least 1).
    ``tensor_wide=True``: one NaN poisons the whole output (a per-tensor statistic), so
    NaN gets its own input array.

    ``str(report)`` is the table (plus details of failures); ``report.ok`` the verdict.
    """
    if pre_round_exact is None:
        pre_round_exact = pre_round is None
    if boundaries is not None and pre_round is None:
        pre_round = _identity
    case = Case(
        name=name,
        params=dict(params or {}),
        torch_fn=torch_fn,
        jax_fn=jax_fn,
        discrete=discrete,
        pre_round=pre_round,
        boundaries=boundaries,
        flip_scale=flip_scale,
        grad_scale=grad_scale,
        tensor_wide=tensor_wide,
        pre_round_exact=pre_round_exact,
        level=level,
        grad_exact=grad_exact,
    )
    if (inputs is None) == (shape is None):
        raise ValueError("compare needs exactly one of inputs= or shape=")
    if inputs is not None:
        arrays = (
            [np.asarray(inputs)]
            if isinstance(inputs, np.ndarray)
            else [np.asarray(a) for a in inputs]
        )
        if not arrays:
            raise ValueError("inputs is empty")
        if dtypes is None:
            dtypes = [a.dtype for a in arrays[:1]]
    elif dtypes is None:
        dtypes = ["float32"]
    dtype_names = resolve_dtypes(dtypes)
    run, skipped = resolve_devices(devices)
    report = ParityReport(skipped=skipped)
    if not run:
        return report
    for dtype in dtype_names:
        report.results += run_case(
            case,
            dtype=dtype,
            devices=run,
            shape=shape,
            inputs=None if inputs is None else arrays,
            seed=seed,
            edge_values=edge_values,
        )
    return report


def _identity(x: np.ndarray) -> np.ndarray:
    return x
