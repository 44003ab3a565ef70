"""The quantizers the benchmark measures, and the bytes each one must move at least.

Every registry key is measured once, with one representative hyperparameter where it has
one (DoReFa at 2 bits, SwishSign at ``beta=5``). The traffic model says how many bytes per
element a forward+backward pass must read and write at the least; the floor is that many
bytes at the bandwidth measured on this machine (see :mod:`benchmarks.floor`).

>>> case = case_by_label("approxsign")
>>> case.traffic(4)  # float32: bytes read, bytes written per element
(12, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["Case", "CASES", "case_by_label", "select_cases"]


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


_PASS_THROUGH = (
    "forward reads x and writes y; the backward of a pass-through gradient reads g and "
    "writes dx (dx = g: torch hands g itself back, so eager torch may skip this write); "
    "nothing is saved"
)
_SAVES_X = (
    "forward reads x and writes y; the gradient depends on x, so the backward reads g "
    "and x again and writes dx; the saved residual is x itself (already in memory, "
    "so saving it writes nothing)"
)

CASES: tuple[Case, ...] = (
    Case(key="sign", params={}, reads_arrays=2, writes_arrays=2, extra_bytes=0, why=_PASS_THROUGH),
    Case(key="approxsign", params={}, reads_arrays=3, writes_arrays=2, extra_bytes=0, why=_SAVES_X),
    Case(
        key="swishsign",
        params={"beta": 5.0},
        reads_arrays=3,
        writes_arrays=2,
        extra_bytes=0,
        why=_SAVES_X,
    ),
    Case(
        key="steheaviside",
        params={},
        reads_arrays=2,
        writes_arrays=2,
        extra_bytes=1,
        why=(
            "forward reads x, writes y and a 1-byte code per element (pass / zero / NaN: "
            "three states, so a bool mask is not enough); backward reads g and the code "
            "and writes dx. Saving x instead would read 4 (float32) bytes instead of "
            "writing and reading 1+1; a 2-bit packed code would save 1.5 bytes more"
        ),
    ),
    Case(
        key="inputdorefa",
        params={"bits": 2},
        reads_arrays=2,
        writes_arrays=2,
        extra_bytes=0,
        why=_PASS_THROUGH,
    ),
    Case(
        key="weightdorefa",
        params={"bits": 2},
        reads_arrays=3,
        writes_arrays=2,
        extra_bytes=0,
        why=(
            "forward reads x twice: once for the per-tensor max|tanh x| (every output "
            "depends on it) and once to quantize, then writes y; the backward is a "
            "pass-through (reads g, writes dx)"
        ),
    ),
    Case(
        key="identity",
        params={},
        reads_arrays=2,
        writes_arrays=2,
        extra_bytes=0,
        why=(
            "y = x and dx = g; both frameworks return y as a new array (torch's STE "
            "clones), so forward reads x and writes y; backward as a pass-through"
        ),
    ),
)


def case_by_label(name: str) -> Case:
    """The case whose registry key is ``name``; ``ValueError`` naming the keys otherwise."""
    for case in CASES:
        if case.key == name:
            return case
    known = ", ".join(c.key for c in CASES)
    raise ValueError(f"unknown quantizer {name!r}; benchmarked keys: {known}")


def select_cases(names: list[str] | None) -> list[Case]:
    """The cases for ``names`` (registry keys), in the order given; all when ``None``."""
    if not names:
        return list(CASES)
    return [case_by_label(n) for n in names]
