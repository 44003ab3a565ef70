"""The quantizer table (``bitorch_common.quantizers``) is the one source of truth per
quantizer.

* A throwaway quantizer pair (a torch ``STE`` subclass and a JAX ``straight_through``
  function, each wrapped in its ``Quantization`` and registered) plus ONE table row gets
  parity cases, unit-test variants and benchmark cases without touching anything else;
  the parity run passes, and a deliberately wrong JAX twin fails it.
* Every registered key has a row, every row is registered in both frameworks, and each
  row's functional form exists in both packages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the parity run compares torch with JAX")

import bitorch.quantizations as bt  # noqa: E402
import bitorch_jax.quantizations as bj  # noqa: E402
from benchmarks.cases import all_cases, select_cases  # noqa: E402
from bitorch_common import oracles  # noqa: E402
from bitorch_common.inputs import cotangents, edge_values, make_samples, np_dtype  # noqa: E402
from bitorch_common.quantizers import (  # noqa: E402
    Benchmark,
    QuantizerSpec,
    register_row,
    row,
    rows,
    unregister_row,
    variants,
)
from parity_tests.api import run_cases  # noqa: E402
from parity_tests.cases import registry_cases, torch_quantizer  # noqa: E402

# A 2-level step at 0.25: q(x) = +1 where x >= 0.25, else -1 (NaN kept); the gradient
# passes straight through. ``x - 0.25`` is its pre-round value: computed exactly (the
# sign of an IEEE difference is always right), so no boundary flip is allowed.
KEY = "test_stepquarter"
THRESHOLD = 0.25


class _StepQuarterFunction(bt.STE):
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        one = torch.ones((), dtype=x.dtype)
        y = torch.where(x >= THRESHOLD, one, -one)
        return torch.where(torch.isnan(x), x, y)


class TorchStepQuarter(bt.Quantization):
    name = KEY
    bit_width = 1

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return _StepQuarterFunction.apply(x)


@bj.straight_through
def _step_quarter(x: jax.Array) -> jax.Array:
    one = jnp.ones((), x.dtype)
    return jnp.where(jnp.isnan(x), x, jnp.where(x >= THRESHOLD, one, -one))


@bj.straight_through
def _step_quarter_wrong(x: jax.Array) -> jax.Array:
    """The threshold one step up: ``x > 0.25`` (so ``x = 0.25`` gives -1)."""
    one = jnp.ones((), x.dtype)
    return jnp.where(jnp.isnan(x), x, jnp.where(x > THRESHOLD, one, -one))


@dataclasses.dataclass(frozen=True, kw_only=True)
class JaxStepQuarter(bj.Quantization):
    name: ClassVar[str] = KEY
    bit_width: ClassVar[int] = 1

    def quantize(self, x: jax.Array) -> jax.Array:
        return _step_quarter(x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WrongJaxStepQuarter(bj.Quantization):
    name: ClassVar[str] = KEY
    bit_width: ClassVar[int] = 1

    def quantize(self, x: jax.Array) -> jax.Array:
        return _step_quarter_wrong(x)


def _oracle_forward(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        out = np.where(x >= THRESHOLD, 1.0, -1.0)
    return np.where(np.isnan(x), np.nan, out).astype(x.dtype)


def _pre_round(x: np.ndarray) -> np.ndarray:
    xc = oracles.as_compute(x)
    return xc - xc.dtype.type(THRESHOLD)


SPEC = QuantizerSpec(
    key=KEY,
    function="step_quarter",
    bit_width=1,
    forward=_oracle_forward,
    grad=oracles.pass_through,
    pre_round=_pre_round,
    boundaries="zero",
    benchmark=Benchmark(
        reads_arrays=2,
        writes_arrays=2,
        why="a pass-through: forward reads x and writes y, backward reads g and writes dx",
    ),
    doc="a throwaway test quantizer",
)


def _unregister_all() -> None:
    """Remove the throwaway from both registries and the table, whatever is there."""
    for registry in (bt._REGISTRY, bj._REGISTRY):
        if KEY in registry.snapshot():
            registry.unregister(KEY)
    if any(r.key == KEY for r in rows()):
        unregister_row(KEY)


@pytest.fixture
def throwaway() -> Iterator[QuantizerSpec]:
    """The throwaway pair registered in both frameworks and its row in the table."""
    assert KEY not in bt.quantization_names() and KEY not in bj.quantization_names()
    torch_before, jax_before = bt.quantization_names(), bj.quantization_names()
    rows_before = [r.key for r in rows()]
    try:
        bt.register_custom_quantization(TorchStepQuarter)
        bj.register_custom_quantization(JaxStepQuarter)
        yield register_row(SPEC)
    finally:
        _unregister_all()
    assert bt.quantization_names() == torch_before and bj.quantization_names() == jax_before
    assert [r.key for r in rows()] == rows_before


def test_a_new_row_gets_parity_cases_that_pass(throwaway: QuantizerSpec) -> None:
    cases = registry_cases([KEY])
    assert len(cases) == 1
    case = cases[0]
    assert case.name == KEY and dict(case.params) == {}
    assert isinstance(case.torch_fn, TorchStepQuarter)
    assert isinstance(case.jax_fn, JaxStepQuarter)
    assert case.boundaries == "zero" and case.pre_round_exact and case.grad_exact
    assert KEY in [c.name for c in registry_cases()]  # the default run includes it too
    report = run_cases(cases, dtypes=["float32", "float64"], devices=["cpu"], shape=(64,))
    assert report.ok, report.details()
    assert sorted(r.dtype for r in report.results) == ["float32", "float64"]


def test_a_wrong_jax_twin_fails_the_parity_run(throwaway: QuantizerSpec) -> None:
    bj._REGISTRY.unregister(KEY)
    bj.register_custom_quantization(WrongJaxStepQuarter)
    (case,) = registry_cases([KEY])
    assert isinstance(case.jax_fn, WrongJaxStepQuarter)
    report = run_cases([case], dtypes=["float32", "float64"], devices=["cpu"], shape=(64,))
    assert not report.ok
    assert len(report.failed) == 2  # both dtypes
    for result in report.failed:
        assert result.failures >= 1
        # the edge value 0.25 itself: the pre-round value is exact, so no flip excuses it
        bad = [e for e in result.failure_list if e.kind == "forward"]
        assert bad and all(e.input == THRESHOLD for e in bad), result.details()
        assert all((e.left, e.right) == (1.0, -1.0) for e in bad)
        assert "computed exactly" in (bad[0].reason or "")


def _torch_run(x: np.ndarray, g: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    tdtype = getattr(torch, dtype)
    xt = torch.from_numpy(x.astype(np.float32) if dtype == "bfloat16" else x).to(tdtype)
    xt.requires_grad_(True)
    q = bt.quantization_from_name(KEY)()
    y = q(xt)
    y.backward(torch.from_numpy(g.astype(np.float32) if dtype == "bfloat16" else g).to(tdtype))

    def back(t: torch.Tensor) -> np.ndarray:
        t = t.detach()
        return (t.float().numpy() if dtype == "bfloat16" else t.numpy()).astype(x.dtype)

    return back(y), back(xt.grad)


def _jax_run(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = bj.quantization_from_name(KEY)()
    y, vjp = jax.jit(lambda v, c: (q(v), jax.vjp(q, v)[1](c)[0]))(jnp.asarray(x), jnp.asarray(g))
    return np.asarray(y), np.asarray(vjp)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_a_new_row_gets_unit_variants_that_pass(throwaway: QuantizerSpec, dtype: str) -> None:
    (variant,) = variants([KEY])
    assert variant.id == KEY and variant.bit_width == 1 and variant.spec is throwaway
    assert bt.quantization_from_name(KEY)().bit_width == variant.bit_width
    assert bj.quantization_from_name(KEY)().bit_width == variant.bit_width
    dt = np_dtype(dtype)
    rng = np.random.default_rng(0)
    samples = [edge_values(dt, variant.extra_edges)]
    samples += make_samples((5, 7), dt, rng, extra_edges=variant.extra_edges)
    samples += make_samples((), dt, rng)
    with jax.enable_x64(dtype == "float64"):
        for i, x in enumerate(samples):
            g = cotangents(x.shape, dt, rng)
            for framework, (y, grad) in (
                ("torch", _torch_run(x, g, dtype)),
                ("jax", _jax_run(x, g)),
            ):
                result = variant.compare_to_oracle(x, g, y, grad, sample=i)
                lines = [*result.problems]
                lines += [e.describe("oracle", framework) for e in result.failure_list]
                assert result.failures == 0 and not result.problems, "\n".join(lines)
    # the oracle comparison catches the wrong twin's threshold (x = 0.25 is an edge value)
    x = samples[0]
    g = cotangents(x.shape, dt, rng)
    with jax.enable_x64(dtype == "float64"):
        y, pullback = jax.vjp(WrongJaxStepQuarter(), jnp.asarray(x))
        grad = pullback(jnp.asarray(g))[0]
    result = variant.compare_to_oracle(x, g, np.asarray(y), np.asarray(grad))
    assert result.failures == 1 and result.failure_list[0].input == THRESHOLD


def test_a_new_row_gets_a_benchmark_case(throwaway: QuantizerSpec) -> None:
    (case,) = select_cases([KEY])
    assert case.key == KEY and case.params == {}
    assert KEY in [c.key for c in all_cases()]
    bench = throwaway.benchmark
    assert (case.reads_arrays, case.writes_arrays, case.extra_bytes, case.why) == (
        bench.reads_arrays,
        bench.writes_arrays,
        bench.extra_bytes,
        bench.why,
    )
    assert case.traffic(4) == (8, 8) and case.traffic(2) == (4, 4)
    assert isinstance(case.build(bt.quantization_from_name), TorchStepQuarter)
    assert isinstance(case.build(bj.quantization_from_name), JaxStepQuarter)


def test_the_throwaway_is_gone_afterwards() -> None:
    assert KEY not in bt.quantization_names() and KEY not in bj.quantization_names()
    assert KEY not in [r.key for r in rows()]
    assert KEY not in [c.key for c in all_cases()]
    with pytest.raises(KeyError):
        row(KEY)


def test_every_registered_key_has_a_row_and_every_row_is_registered() -> None:
    table = sorted(r.key for r in rows())
    assert sorted(bt.quantization_names()) == table
    assert sorted(bj.quantization_names()) == table
    for spec in rows():
        for package in (bt, bj):
            cls = package.quantization_from_name(spec.key)
            assert cls.name == spec.key, (package.__name__, spec.key)
            function = getattr(package, spec.function, None)
            assert callable(function), f"{package.__name__} has no {spec.function}"
        for params in spec.variants:
            for package in (bt, bj):
                if package is bt:
                    q = torch_quantizer(spec.key, **params)
                else:
                    q = package.quantization_from_name(spec.key)(**params)
                assert q.bit_width == spec.bit_width_of(params), (package.__name__, spec.key)
