"""Timing: interleaved repeats, medians, and first-call (compile) time.

All implementations of one quantizer (and the floor kernels) are timed round-robin: each
repeat runs every one of them once, in a rotated order. On a shared machine the load
changes over seconds; interleaving makes every implementation see the same mix of it,
so the ratios stay meaningful even when the absolute times drift.

>>> stats = summarize([0.3, 0.1, 0.2])
>>> stats["median_s"], stats["min_s"]
(0.2, 0.1)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

__all__ = ["summarize", "first_call", "interleaved", "Timed"]


def summarize(times: list[float]) -> dict[str, Any]:
    """Median, min, max and interquartile range (seconds) of ``times``."""
    if not times:
        raise ValueError("summarize: no times given")
    arr = np.asarray(times, dtype=np.float64)
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return {
        "median_s": float(med),
        "min_s": float(arr.min()),
        "max_s": float(arr.max()),
        "iqr_s": float(q3 - q1),
        "repeats": len(times),
    }


def first_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, result). ``fn`` must block until done."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class Timed:
    """A measured operation: ``run(prepare())`` is timed, ``prepare()`` is not.

    ``run`` must block until its results exist (``block_until_ready``, CUDA sync).
    ``prepare`` makes fresh arguments a call consumes (a donated JAX buffer); by
    default it gives ``None``.
    """

    def __init__(self, run: Callable[[Any], Any], prepare: Callable[[], Any] | None = None) -> None:
        self.run = run
        self.prepare = prepare if prepare is not None else _nothing

    def once(self) -> tuple[float, Any]:
        """One timed call: (seconds, result)."""
        args = self.prepare()
        start = time.perf_counter()
        result = self.run(args)
        return time.perf_counter() - start, result


def _nothing() -> None:
    return None


def _minor_faults() -> int:
    if resource is None:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def interleaved(
    fns: dict[str, Timed], *, repeats: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time each of ``fns`` ``repeats`` times, round-robin in a rotated order.

    A call's result is dropped right after it is timed, so its memory is freed before
    the next call, as in a loop (freeing is inside the timed span: a loop pays it too).
    Returns the times and, per function, the mean number of minor page faults per call
    (the operating system mapping fresh zeroed pages: a count, so immune to load).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, int] = dict.fromkeys(names, 0)
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            timed = fns[name]
            args = timed.prepare()
            faults_before = _minor_faults()
            start = time.perf_counter()
            result = timed.run(args)
            del result
            times[name].append(time.perf_counter() - start)
            faults[name] += _minor_faults() - faults_before
            del args
    return times, {name: faults[name] / repeats for name in names}
