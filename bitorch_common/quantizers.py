"""The quantizer table: one row per quantizer, the single source every consumer derives from.

A row (:class:`QuantizerSpec`) says everything that is not the implementation itself:
the registry key and the name of the functional form (the same in ``bitorch`` and
``bitorch_jax``), the bit width, the parameter variants to test, the NumPy oracle of the
forward value and of the input gradient, the value the discrete step acts on (the
pre-round value), where that step jumps and whether the pre-round value is computed
exactly, whether one statistic spans the whole tensor, extra edge values, whether the
gradient is exactly specified, and what the benchmark needs. The parity command's cases,
the torch and JAX unit-test tables, the layer tests and the benchmark cases all read it.

Adding a quantizer is its torch file, its JAX file (each registered under the key) and
one :func:`register_row` call (or one entry of :data:`ROWS` for a built-in).

>>> row("inputdorefa").bit_width_of({"bits": 4})
4
>>> [r.key for r in rows()][:3]
['sign', 'approxsign', 'swishsign']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitorch_common import oracles as o
from bitorch_common.comparison import BOUNDARIES, SampleComparison, compare_sample

__all__ = [
    "BOUNDARIES",
    "Benchmark",
    "QuantizerSpec",
    "ROWS",
    "rows",
    "row",
    "register_row",
    "unregister_row",
    "Variant",
    "variants",
]


Params = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    """What ``python -m benchmarks`` needs: one representative parameter set and the
    traffic model (full-size arrays of the input dtype read and written per element, plus
    a fixed-size per-element residual written forward and read backward), with why."""

    params: Params = field(default_factory=dict)
    reads_arrays: int
    writes_arrays: int
    extra_bytes: int = 0
    why: str


@dataclass(frozen=True, kw_only=True)
class QuantizerSpec:
    """One quantizer: the row of the table (see the module docstring).

    Oracles take the NumPy input (float16, ``ml_dtypes.bfloat16``, float32 or float64)
    and the parameters as keywords: ``forward(x, **p)``, ``grad(x, g, **p)``,
    ``pre_round(x, **p)``. ``level(k, x_dtype, **p)`` gives the output value of rounded
    integer ``k`` (``"half"`` boundaries only; a ``"zero"`` step goes from -1 to +1).
    ``pre_round_exact``: the pre-round value is the input itself or one correctly rounded
    operation on it, so both frameworks compute it bit for bit and no boundary flip is
    allowed; ``exact_where(x)`` marks elements where an inexact pre-round value is exact
    all the same (``weightdorefa`` at ``x = 0``: ``tanh 0 = 0``). ``grad_exact``: the
    gradient is exactly specified (pass-through, masks,
    a polynomial computed in float32/float64 and rounded once), so it must be bit-equal
    in every dtype. ``grad_scale(**p)``: an upper bound of ``|dq/dx|``.
    """

    key: str
    function: str
    bit_width: int | Callable[..., int]
    forward: Callable[..., np.ndarray]
    grad: Callable[..., np.ndarray]
    variants: tuple[Params, ...] = ({},)
    pre_round: Callable[..., np.ndarray] | None = None
    boundaries: str | None = None
    level: Callable[..., np.ndarray] | None = None
    pre_round_exact: bool = True
    exact_where: Callable[[np.ndarray], np.ndarray] | None = None
    tensor_wide: bool = False
    extra_edges: Callable[..., tuple[float, ...]] | None = None
    grad_exact: bool = True
    grad_scale: float | Callable[..., float] = 1.0
    benchmark: Benchmark | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or self.key != self.key.lower():
            raise ValueError(f"a quantizer key is a non-empty lower-case str, got {self.key!r}")
        if not isinstance(self.function, str) or not self.function.isidentifier():
            raise ValueError(f"{self.key}: function must be an identifier, got {self.function!r}")
        if self.boundaries not in (None, *BOUNDARIES):
            raise ValueError(f"{self.key}: boundaries must be one of {BOUNDARIES} or None")
        if (self.pre_round is None) != (self.boundaries is None):
            raise ValueError(f"{self.key}: pre_round and boundaries go together")
        if self.boundaries == "half" and self.level is None:
            raise ValueError(f"{self.key}: 'half' boundaries need level(k, dtype, **params)")
        if not self.variants or not all(isinstance(v, Mapping) for v in self.variants):
            raise ValueError(f"{self.key}: variants must be a non-empty tuple of dicts")

    @property
    def discrete(self) -> bool:
        """Whether the output is a discrete set of levels (all but identity-like rows)."""
        return self.boundaries is not None

    def bit_width_of(self, params: Params) -> int:
        """The bit width of the quantizer built with ``params``."""
        return self.bit_width(**params) if callable(self.bit_width) else int(self.bit_width)

    def grad_scale_of(self, params: Params) -> float:
        """An upper bound of ``|dq/dx|`` for ``params`` (at least 1)."""
        if self.grad_scale is None:  # no bound from the parameters: from the data (below)
            return None  # type: ignore[return-value]  # compare_sample: largest |grad / g|
        value = self.grad_scale(**params) if callable(self.grad_scale) else self.grad_scale
        return max(1.0, float(value))

    def extra_edges_of(self, params: Params) -> tuple[float, ...]:
        """Edge values of this quantizer beyond SPEC.md's common ones (e.g. DoReFa ties)."""
        return tuple(self.extra_edges(**params)) if self.extra_edges is not None else ()

    def oracle(self, params: Params | None = None) -> o.Oracle:
        """The closed forms with ``params`` bound (see :class:`~bitorch_common.oracles.Oracle`)."""
        p = dict(params or {})
        pre = None if self.pre_round is None else (lambda x: self.pre_round(x, **p))
        level = None if self.level is None else (lambda k, dt: self.level(k, dt, **p))
        return o.Oracle(
            key=self.key,
            params=p,
            forward=lambda x: self.forward(x, **p),
            grad=lambda x, g: self.grad(x, g, **p),
            pre_round=pre,
            boundaries=self.boundaries,
            level=level,
        )

    def label(self, params: Params) -> str:
        """``key(params)``, e.g. ``inputdorefa(bits=2)``; the bare key without params."""
        inner = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{self.key}({inner})" if inner else self.key


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

_DOREFA_BITS = (1, 2, 3, 4, 8, 12, 16, 24)

#: The built-in quantizers, in table order.
ROWS: tuple[QuantizerSpec, ...] = (
    QuantizerSpec(
        key="sign",
        function="sign",
        bit_width=1,
        forward=o.sign_forward,
        grad=o.pass_through,
        pre_round=o.as_compute,
        boundaries="zero",
        benchmark=Benchmark(reads_arrays=2, writes_arrays=2, why=_PASS_THROUGH),
    ),
    QuantizerSpec(
        key="approxsign",
        function="approx_sign",
        bit_width=1,
        forward=o.sign_forward,
        grad=o.approx_sign_grad,
        pre_round=o.as_compute,
        boundaries="zero",
        grad_scale=2.0,
        benchmark=Benchmark(reads_arrays=3, writes_arrays=2, why=_SAVES_X),
    ),
    QuantizerSpec(
        key="swishsign",
        function="swish_sign",
        bit_width=1,
        variants=tuple({"beta": b} for b in (1.0, 5.0, 10.0)),
        forward=lambda x, beta: o.sign_forward(x),
        grad=o.swish_sign_grad,
        pre_round=lambda x, beta: o.as_compute(x),
        boundaries="zero",
        grad_exact=False,
        grad_scale=lambda beta: beta,
        benchmark=Benchmark(params={"beta": 5.0}, reads_arrays=3, writes_arrays=2, why=_SAVES_X),
    ),
    QuantizerSpec(
        key="steheaviside",
        function="ste_heaviside",
        bit_width=1,
        forward=o.heaviside_forward,
        grad=o.heaviside_grad,
        pre_round=o.as_compute,
        boundaries="zero",
        benchmark=Benchmark(
            reads_arrays=2,
            writes_arrays=2,
            extra_bytes=1,
            why=(
                "forward reads x, writes y and a 1-byte code per element (pass / zero / NaN: "
                "three states, so a bool mask is not enough); backward reads g and the code "
                "and writes dx"
            ),
        ),
    ),
    QuantizerSpec(
        key="inputdorefa",
        function="input_dorefa",
        bit_width=lambda bits: bits,
        variants=tuple({"bits": b} for b in _DOREFA_BITS),
        forward=o.input_dorefa_forward,
        grad=lambda x, g, bits: o.pass_through(x, g),
        pre_round=o.input_dorefa_pre_round,
        boundaries="half",
        level=o.input_dorefa_level,
        extra_edges=o.input_dorefa_ties,
        benchmark=Benchmark(params={"bits": 2}, reads_arrays=2, writes_arrays=2, why=_PASS_THROUGH),
    ),
    QuantizerSpec(
        key="weightdorefa",
        function="weight_dorefa",
        bit_width=lambda bits: bits,
        variants=tuple({"bits": b} for b in _DOREFA_BITS),
        forward=o.weight_dorefa_forward,
        grad=lambda x, g, bits: o.pass_through(x, g),
        pre_round=o.weight_dorefa_pre_round,
        boundaries="half",
        level=o.weight_dorefa_level,
        pre_round_exact=False,
        exact_where=o.weight_dorefa_exact,
        tensor_wide=True,
        benchmark=Benchmark(
            params={"bits": 2},
            reads_arrays=3,
            writes_arrays=2,
            why=(
                "forward reads x twice: once for the per-tensor max|tanh x| (every output "
                "depends on it) and once to quantize, then writes y; the backward is a "
                "pass-through (reads g, writes dx)"
            ),
        ),
    ),
    QuantizerSpec(
        key="identity",
        function="identity",
        bit_width=32,
        forward=o.identity_forward,
        grad=o.pass_through,
        benchmark=Benchmark(
            reads_arrays=2,
            writes_arrays=2,
            why="y = x and dx = g; forward reads x and writes y; backward as a pass-through",
        ),
    ),
    QuantizerSpec(
        key="progressive_sign",
        function="progressive_sign",
        bit_width=1,
        # bitorch 0.4.1's constructor arguments (its own scale: use_global_scaling=False)
        # plus the mode: training (torch: module.train(), set by parity_tests.cases).
        # Divisors max(1 - t, 1e-7): 1 (hardtanh), 4**-3.7 and 3**-1.5 (not powers of
        # two: a real division), 1e-7 (1 - t below EPSILON); then eval mode (the sign).
        variants=tuple(
            {
                "use_global_scaling": False,
                "initial_scale": s,
                "alpha": a,
                "beta": b,
                "training": t,
            }
            for s, a, b, t in (
                (0.0, 4.0, 10.0, True),
                (0.37, 4.0, 10.0, True),
                (0.6, 3.0, 2.5, True),
                (1.0, 10.0, 10.0, True),
                (0.37, 4.0, 10.0, False),
            )
        ),
        forward=o.progressive_sign_forward,
        grad=lambda x, g, **p: o.pass_through(x, g),
        # Training mode is not discrete, but its value is one correctly rounded division
        # by the same divisor in both frameworks, so it must be bit-equal as the sign of
        # eval mode must: both are checked as exact ("zero" boundaries, exact pre-round).
        pre_round=lambda x, **p: o.as_compute(x),
        boundaries="zero",
        extra_edges=o.progressive_sign_edges,
        benchmark=Benchmark(
            params={"use_global_scaling": False, "initial_scale": 0.37},
            reads_arrays=2,
            writes_arrays=2,
            why=_PASS_THROUGH,
        ),
    ),
    # ------------------------------------------------------------ beyond bitorch 0.4.1
    # SPEC.md's second table. The per-channel (or per-tensor) statistic mean|x| of
    # magnitudeawaresign, xnorscaled and steternary(twn) is computed exactly (a fixed
    # pairwise order of elementwise additions, one IEEE division), so their outputs are
    # checked as exact: "zero" boundaries on the input itself, no flip allowed.
    QuantizerSpec(
        key="stesign",
        function="ste_sign",
        bit_width=1,
        variants=tuple({"clip_value": c} for c in (1.0, 0.5, 0.3, float("inf"))),
        forward=lambda x, clip_value: o.sign_forward(x),
        grad=o.ste_sign_grad,
        pre_round=lambda x, **p: o.as_compute(x),
        boundaries="zero",
        extra_edges=o.ste_sign_edges,
        benchmark=Benchmark(
            params={"clip_value": 1.0},
            reads_arrays=2,
            writes_arrays=2,
            extra_bytes=1,
            why=(
                "forward reads x, writes y and a 1-byte code per element (pass / zero / NaN); "
                "backward reads g and the code and writes dx"
            ),
        ),
    ),
    QuantizerSpec(
        key="magnitudeawaresign",
        function="magnitude_aware_sign",
        bit_width=1,
        # channel_axis 0 (torch's weight layout) and -1 (Flax's), each meaning the same
        # axis in both frameworks here; 1-d inputs (the parity command's) are per-tensor.
        variants=(
            {"clip_value": 1.0, "channel_axis": 0},
            {"clip_value": 1.0, "channel_axis": -1},
            {"clip_value": 0.3, "channel_axis": 0},
            {"clip_value": float("inf"), "channel_axis": -1},
        ),
        forward=o.scaled_sign_forward,
        grad=o.magnitude_aware_sign_grad,
        pre_round=lambda x, **p: o.as_compute(x),
        boundaries="zero",
        tensor_wide=True,
        extra_edges=lambda clip_value, channel_axis: o.ste_sign_edges(clip_value),
        benchmark=Benchmark(
            params={"channel_axis": 0},
            reads_arrays=5,
            writes_arrays=2,
            why=(
                "forward reads x twice (the per-channel mean|x| comes before any output) and "
                "writes y; only x is saved, so the backward reads x twice again (alpha, then "
                "the clip mask) and g, and writes dx"
            ),
        ),
    ),
    QuantizerSpec(
        key="xnorscaled",
        function="xnor_scaled",
        bit_width=1,
        variants=({"channel_axis": 0}, {"channel_axis": -1}),
        forward=o.scaled_sign_forward,
        grad=o.xnor_scaled_grad,
        pre_round=lambda x, **p: o.as_compute(x),
        boundaries="zero",
        tensor_wide=True,
        benchmark=Benchmark(
            params={"channel_axis": 0},
            reads_arrays=4,
            writes_arrays=2,
            why=(
                "forward reads x twice (the per-channel mean|x|, then the sign) and writes y; "
                "only x is saved: the backward reads x (alpha) and g and writes dx = g * alpha"
            ),
        ),
    ),
    QuantizerSpec(
        key="steternary",
        function="ste_ternary",
        bit_width=2,
        # threshold: the fixed threshold, or with twn the factor of mean|x| (TWN: 0.7)
        variants=tuple(
            {"threshold": t, "twn": twn, "clip_value": c}
            for t, twn, c in (
                (0.05, False, 1.0),
                (0.3, False, 0.5),
                (0.0, False, 1.0),
                (0.7, True, 1.0),
                (0.5, True, float("inf")),
            )
        ),
        forward=o.ste_ternary_forward,
        grad=lambda x, g, threshold=None, twn=False, clip_value=1.0: o.ste_sign_grad(
            x, g, clip_value
        ),
        pre_round=o.ste_ternary_pre_round,
        boundaries="zero",
        tensor_wide=True,  # with twn: one NaN makes the threshold and every output NaN
        extra_edges=o.ste_ternary_edges,
        benchmark=Benchmark(
            params={"threshold": 0.05, "twn": False},
            reads_arrays=2,
            writes_arrays=2,
            extra_bytes=1,
            why=(
                "fixed threshold: forward reads x, writes y and a 1-byte code per element "
                "(pass / zero / NaN); backward reads g and the code and writes dx (twn=True "
                "reads x once more for the per-tensor mean|x|)"
            ),
        ),
    ),
    QuantizerSpec(
        key="larqdorefa",
        function="larq_dorefa",
        bit_width=lambda bits: bits,
        variants=tuple({"bits": b} for b in _DOREFA_BITS),
        forward=o.weight_dorefa_forward,
        grad=o.larq_dorefa_grad,
        pre_round=o.weight_dorefa_pre_round,
        boundaries="half",
        level=o.weight_dorefa_level,
        pre_round_exact=False,
        exact_where=o.weight_dorefa_exact,
        tensor_wide=True,
        # (1 - tanh(x)**2) / m: tanh differs by ulps between the libraries, and |dq/dx|
        # reaches 1/m, unbounded by the parameters: the scale is taken from the data.
        grad_exact=False,
        grad_scale=None,
        benchmark=Benchmark(
            params={"bits": 2},
            reads_arrays=5,
            writes_arrays=2,
            why=(
                "forward reads x twice (the per-tensor max|tanh x|, then the levels) and "
                "writes y; only x is saved, so the backward reads x twice again (m, then "
                "(1 - tanh(x)**2) / m) and g, and writes dx"
            ),
        ),
    ),
)

_TABLE: dict[str, QuantizerSpec] = {r.key: r for r in ROWS}


def rows(keys: Iterable[str] | None = None) -> list[QuantizerSpec]:
    """The rows of ``keys`` (default: every row, built-ins first, then registered ones)."""
    if keys is None:
        return list(_TABLE.values())
    return [row(k) for k in keys]


def row(key: str) -> QuantizerSpec:
    """The row of registry key ``key``; ``KeyError`` naming the known keys otherwise."""
    try:
        return _TABLE[key.lower()]
    except KeyError:
        raise KeyError(f"no quantizer-table row for {key!r}; rows: {', '.join(_TABLE)}") from None


def register_row(spec: QuantizerSpec) -> QuantizerSpec:
    """Add a row (a user's or a test's quantizer); ``ValueError`` if the key has one."""
    if not isinstance(spec, QuantizerSpec):
        raise TypeError(f"register_row expects a QuantizerSpec, got {type(spec).__name__}")
    if spec.key in _TABLE:
        raise ValueError(f"the quantizer table already has a row for {spec.key!r}")
    _TABLE[spec.key] = spec
    return spec


def unregister_row(key: str) -> None:
    """Remove a row added by :func:`register_row` (built-in rows cannot be removed)."""
    if any(r.key == key for r in ROWS):
        raise ValueError(f"{key!r} is a built-in row")
    row(key)
    del _TABLE[key]


@dataclass(frozen=True)
class Variant:
    """One row with one parameter set: what a test case or a parity row runs."""

    spec: QuantizerSpec
    params: Params = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The registry key."""
        return self.spec.key

    @property
    def id(self) -> str:
        """A pytest id: ``inputdorefa-bits2``, ``swishsign-beta5``, ``sign``."""
        return self.key + "".join(f"-{k}{v:g}" for k, v in self.params.items())

    @property
    def label(self) -> str:
        """``inputdorefa(bits=2)``; the bare key without parameters."""
        return self.spec.label(self.params)

    @property
    def bit_width(self) -> int:
        """The bit width of the quantizer built with these parameters."""
        return self.spec.bit_width_of(self.params)

    @property
    def grad_scale(self) -> float:
        """An upper bound of ``|dq/dx|`` (at least 1)."""
        return self.spec.grad_scale_of(self.params)

    @property
    def extra_edges(self) -> tuple[float, ...]:
        """This variant's extra edge values."""
        return self.spec.extra_edges_of(self.params)

    def oracle(self) -> o.Oracle:
        """The closed forms with these parameters bound."""
        return self.spec.oracle(self.params)

    def comparison_rules(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~bitorch_common.comparison.compare_sample` that
        this row prescribes (flip rules, gradient exactness and scale)."""
        orc = self.oracle()
        return {
            "discrete": self.spec.discrete,
            "pre_round": orc.pre_round,
            "boundaries": self.spec.boundaries,
            "pre_round_exact": self.spec.pre_round_exact,
            "level": orc.level,
            "exact_where": self.spec.exact_where,
            "grad_exact": self.spec.grad_exact,
            "grad_scale": self.grad_scale,
        }

    def compare_to_oracle(
        self, x: np.ndarray, g: np.ndarray, y: Any, grad: Any, *, sample: int = 0
    ) -> SampleComparison:
        """Compare a framework's forward value ``y`` and input gradient ``grad`` at ``x``
        (cotangent ``g``) with the oracle, by the rules of the parity command. The oracle
        is the left side, the framework the right side."""
        orc = self.oracle()
        with np.errstate(all="ignore"):
            want = (orc.forward(x), orc.grad(x, g))
        return compare_sample(
            x, g, want, (np.asarray(y), np.asarray(grad)), sample=sample,
            **self.comparison_rules(),
        )  # fmt: skip


def variants(keys: Iterable[str] | None = None) -> list[Variant]:
    """Every parameter variant of every row of ``keys`` (default: all rows), table order.

    >>> [v.id for v in variants(["swishsign"])]
    ['swishsign-beta1', 'swishsign-beta5', 'swishsign-beta10']
    """
    return [Variant(spec, dict(p)) for spec in rows(keys) for p in spec.variants]
