"""The quantizers the benchmark measures, and the bytes each one must move at least.

Derived from the quantizer table (:mod:`bitorch_common.quantizers`): every row with a
``benchmark`` entry is measured once, with that entry's representative parameters
(DoReFa at 2 bits, SwishSign at ``beta=5``), and its traffic model says how many bytes
per element a forward+backward pass must read and write at the least; the floor is that
many bytes at the bandwidth measured on this machine (see :mod:`benchmarks.floor`).
``CASES`` is computed on access, so a row registered later is benchmarked too.

>>> case = case_by_label("approxsign")
>>> case.traffic(4)  # float32: bytes read, bytes written per element
(12, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bitorch_common.quantizers import rows

__all__ = ["Case", "CASES", "all_cases", "case_by_label", "select_cases"]  # noqa: F822 (CASES: __getattr__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Case:
    """One quantizer as benchmarked.

    ``reads_arrays``/``writes_arrays`` count full-size arrays of the input dtype;
    ``extra_bytes`` counts a per-element residual of a fixed byte size that is written in
    the forward pass and read again in the backward pass. ``why`` explains the count.
    """

    key: str
    params: dict[str, Any]
    reads_arrays: int
    writes_arrays: int
    extra_bytes: int
    why: str

    @property
    def label(self) -> str:
        """``key`` plus its hyperparameters, e.g. ``inputdorefa(bits=2)``."""
        if not self.params:
            return self.key
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.key}({args})"

    def traffic(self, itemsize: int) -> tuple[int, int]:
        """(bytes read, bytes written) per element for an input of ``itemsize`` bytes."""
        reads = self.reads_arrays * itemsize + self.extra_bytes
        writes = self.writes_arrays * itemsize + self.extra_bytes
        return reads, writes

    def build(self, registry_lookup: Callable[[str], type]) -> Any:
        """The quantizer object from a framework's ``quantization_from_name``."""
        return registry_lookup(self.key)(**self.params)


def all_cases() -> tuple[Case, ...]:
    """One :class:`Case` per quantizer-table row that has a benchmark entry, table order."""
    return tuple(
        Case(
            key=spec.key,
            params=dict(spec.benchmark.params),
            reads_arrays=spec.benchmark.reads_arrays,
            writes_arrays=spec.benchmark.writes_arrays,
            extra_bytes=spec.benchmark.extra_bytes,
            why=spec.benchmark.why,
        )
        for spec in rows()
        if spec.benchmark is not None
    )


def __getattr__(name: str) -> Any:
    if name == "CASES":
        return all_cases()
    raise AttributeError(f"module 'benchmarks.cases' has no attribute {name!r}")


def case_by_label(name: str) -> Case:
    """The case whose registry key is ``name``; ``ValueError`` naming the keys otherwise."""
    cases = all_cases()
    for case in cases:
        if case.key == name:
            return case
    known = ", ".join(c.key for c in cases)
    raise ValueError(f"unknown quantizer {name!r}; benchmarked keys: {known}")


def select_cases(names: list[str] | None) -> list[Case]:
    """The cases for ``names`` (registry keys), in the order given; all when ``None``."""
    if not names:
        return list(all_cases())
    return [case_by_label(n) for n in names]
