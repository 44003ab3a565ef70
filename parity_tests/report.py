"""Results of parity comparisons and their rendering: one table, details, JSON.

A :class:`ParityResult` is one table row (one quantizer, parameters, dtype and device);
a :class:`ParityReport` is a list of rows plus the cases that were skipped (and why).
Both render as the same table as ``python -m parity_tests`` (``str()`` or ``.table()``);
a failure's details name the differing elements, their inputs and both values, or, when
the two sides' outputs differ in shape or dtype, that mismatch (no element is compared then).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bitorch_common.comparison import SampleComparison, json_safe

__all__ = ["ParityResult", "ParityReport", "format_table", "COLUMNS"]

COLUMNS = (
    "quantizer",
    "params",
    "dtype",
    "device",
    "max fwd diff",
    "max grad diff",
    "boundary flips",
    "verdict",
)


def _num(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.3g}"


@dataclass
class ParityResult(SampleComparison):
    """One comparison: ``left`` (torch, or a framework's CPU run) against ``right``.

    The measured fields (``elements``, ``max_forward_diff``, ... ``problems``) are those of
    :class:`SampleComparison`, keyword-only; :meth:`add` folds one sample in.
    """

    quantizer: str
    params: str
    dtype: str
    device: str
    left: str = "torch"
    right: str = "jax"
    error: str | None = None
    #: ``"quantizer"`` or ``"layer"`` (then ``quantizer`` holds the layer case id and
    #: ``params`` the Flax API compared: ``linen``/``nnx``, or ``torch`` for CPU vs GPU)
    kind: str = "quantizer"

    @property
    def ok(self) -> bool:
        """True when nothing failed (boundary flips are allowed and shown)."""
        return self.error is None and self.failures == 0 and not self.problems

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` (differing elements, or outputs of another shape or dtype)
        or ``ERROR`` (a framework raised)."""
        if self.error is not None:
            return "ERROR"
        return "PASS" if self.failures == 0 and not self.problems else "FAIL"

    def add(self, sample: SampleComparison) -> None:
        """Fold one input array's comparison into this row.

        A sample whose outputs differ in shape or dtype (``sample.problems``; its elements
        were not compared) adds those problems, with ``left``/``right`` replaced by this
        row's side names and each distinct problem once, and nothing else.
        """
        self.elements += sample.elements
        if sample.problems:
            for problem in sample.problems:
                named = _name_sides(problem, self.left, self.right)
                if named not in self.problems:
                    self.problems.append(named)
            return
        self.max_forward_diff = max(self.max_forward_diff, sample.max_forward_diff)
        self.max_grad_diff = max(self.max_grad_diff, sample.max_grad_diff)
        self.grad_tolerance_used = max(self.grad_tolerance_used, sample.grad_tolerance_used)
        self.flips += sample.flips
        self.failures += sample.failures
        self.flip_list += sample.flip_list
        self.failure_list += sample.failure_list

    def row(self) -> tuple[str, ...]:
        """The table cells of this result."""
        if self.error is not None or self.problems:
            fwd = grad = flips = "-"  # not compared
        else:
            fwd, grad, flips = (
                _num(self.max_forward_diff),
                _num(self.max_grad_diff),
                str(self.flips),
            )
        return (self.quantizer, self.params, self.dtype, self.device, fwd, grad, flips,
                self.verdict)  # fmt: skip

    @property
    def title(self) -> str:
        """``name params dtype device (left vs right)``."""
        return (
            f"{self.quantizer} {self.params} {self.dtype} {self.device} "
            f"({self.left} vs {self.right})"
        )

    def details(self) -> str:
        """Failures (a shape or dtype mismatch by name, up to ten differing elements per
        kind) and boundary flips."""
        lines = []
        if self.error is not None:
            lines.append(f"ERROR {self.title}: {self.error}")
        if self.problems:
            lines.append(f"FAIL {self.title}: " + "; ".join(self.problems))
        if self.failures:
            lines.append(f"FAIL {self.title}: {self.failures} differing element(s)")
            lines += [f"  {e.describe(self.left, self.right)}" for e in self.failure_list]
            shown = len(self.failure_list)
            if shown < self.failures:
                lines.append(f"  ... and {self.failures - shown} more")
        if self.flips:
            lines.append(
                f"boundary flips in {self.title}: {self.flips} element(s) whose pre-round "
                "value lies within the flip window of a rounding boundary"
            )
            lines += [f"  {e.describe(self.left, self.right)}" for e in self.flip_list]
            if len(self.flip_list) < self.flips:
                lines.append(f"  ... and {self.flips - len(self.flip_list)} more")
        return "\n".join(lines)

    def table(self) -> str:
        """This result as a one-row table."""
        return format_table([self])

    def __str__(self) -> str:
        details = self.details()
        return self.table() + ("\n\n" + details if details else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of this row, with the listed elements."""
        return {
            "kind": self.kind,
            "quantizer": self.quantizer,
            "params": self.params,
            "dtype": self.dtype,
            "device": self.device,
            "left": self.left,
            "right": self.right,
            "elements": self.elements,
            "max_forward_diff": json_safe(self.max_forward_diff),
            "max_grad_diff": json_safe(self.max_grad_diff),
            "grad_tolerance_used": json_safe(self.grad_tolerance_used),
            "boundary_flips": self.flips,
            "failures": self.failures,
            "verdict": self.verdict,
            "error": self.error,
            "problems": list(self.problems),
            "failing_elements": [e.to_dict() for e in self.failure_list],
            "flip_elements": [e.to_dict() for e in self.flip_list],
        }


def _name_sides(problem: str, left: str, right: str) -> str:
    """``"forward dtype: left float32, right bfloat16"`` (as
    :func:`~bitorch_common.comparison.compare_sample` words a shape or dtype mismatch) with
    the sides' names: ``"forward dtype: torch float32, jax bfloat16"``."""
    return problem.replace(": left ", f": {left} ", 1).replace(", right ", f", {right} ", 1)


def format_table(results: list[ParityResult]) -> str:
    """Render rows as an aligned plain-text table with the :data:`COLUMNS` header."""
    rows = [COLUMNS] + [r.row() for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    numeric = {4, 5, 6}
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if i in numeric and n else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class ParityReport:
    """All rows of a run, plus skipped parts (e.g. ``GPU: not present, skipped``)."""

    results: list[ParityResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when at least one comparison ran and none failed."""
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failed(self) -> list[ParityResult]:
        """The rows that did not pass."""
        return [r for r in self.results if not r.ok]

    def __iter__(self) -> Iterator[ParityResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> ParityResult:
        return self.results[i]

    def table(self) -> str:
        """Every row as one table."""
        return format_table(self.results)

    def summary(self) -> str:
        """Counts of rows, passes, failures and flips, and what was skipped."""
        n = len(self.results)
        failed = len(self.failed)
        flips = sum(r.flips for r in self.results)
        flip_rows = sum(1 for r in self.results if r.flips)
        lines = [
            f"{n} comparisons: {n - failed} passed, {failed} failed; "
            f"{flips} boundary flip(s) in {flip_rows} row(s)."
        ]
        lines += self.skipped
        if not self.results:
            lines.append("Nothing was compared.")
        return "\n".join(lines)

    def largest_by_dtype(self) -> str:
        """Per dtype: the largest forward and gradient differences of all rows, and the
        largest fraction of the gradient tolerance used."""
        lines = ["largest differences by dtype (share of the gradient tolerance used):"]
        measured = [r for r in self.results if r.error is None and not r.problems]
        dtypes = list(dict.fromkeys(r.dtype for r in measured))
        for dtype in dtypes:
            rows = [r for r in measured if r.dtype == dtype]
            fwd = max(r.max_forward_diff for r in rows)
            grad = max(r.max_grad_diff for r in rows)
            used = max(r.grad_tolerance_used for r in rows)
            lines.append(
                f"  {dtype:<9} forward {_num(fwd):>8}   gradient {_num(grad):>8}  ({used:.2f})"
            )
        return "\n".join(lines) if dtypes else ""

    def details(self) -> str:
        """The details of every row that failed or had boundary flips."""
        return "\n".join(d for d in (r.details() for r in self.results) if d)

    def __str__(self) -> str:
        parts = [self.table(), self.summary()]
        details = self.details()
        if details:
            parts.append(details)
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``ok``, ``skipped`` and every row."""
        return {
            "ok": self.ok,
            "skipped": list(self.skipped),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, **extra: Any) -> str:
        """:meth:`to_dict` (plus ``extra`` keys) as JSON text."""
        return json.dumps({**extra, **self.to_dict()}, indent=2, allow_nan=False)
