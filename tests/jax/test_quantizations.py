"""bitorch_jax quantizers against the NumPy oracles of the quantizer table.

Every variant of the quantizer table (``bitorch_common.quantizers.variants()``) is run
eagerly and under ``jax.jit``, in float16, bfloat16, float32 and float64 (the last inside
a scoped ``jax.enable_x64``), on the parity command's inputs (random values with SPEC.md's
edge values planted: exact 0, -0.0, +-1 and its neighbours, values past every threshold,
the smallest normal and subnormal numbers, the largest finite numbers, +-inf and NaN),
plus an all-subnormal and an all-zero array, and for tensor-wide rows small values and
finite arrays whose largest magnitude is negative or positive. Gradients come from
``jax.vjp`` with random non-unit cotangents; both paths are compared with the oracle by
the parity command's engine (``Variant.compare_to_oracle``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import bitorch_jax.quantizations as bq
import bitorch_jax.quantizations.base as bq_base
from bitorch_common.comparison import SampleComparison
from bitorch_common.inputs import cotangents, make_samples, np_dtype
from bitorch_common.quantizers import Variant, row, variants

# NaN and inf inputs make the NumPy oracles warn ("invalid value", "overflow"); expected.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

FLOAT_DTYPES = {name: np_dtype(name) for name in ("float16", "bfloat16", "float32", "float64")}


@dataclasses.dataclass(frozen=True)
class JaxVariant(Variant):
    """A variant of the quantizer table plus how bitorch_jax builds it (all derived: the
    class registered under the row's key, and the functional form the row names)."""

    def make(self) -> bq.Quantization:
        return bq.quantization_from_name(self.key)(**self.params)

    @property
    def function(self) -> Callable[..., jax.Array]:
        """``bitorch_jax.quantizations.<spec.function>``."""
        return getattr(bq, self.spec.function)

    def apply(self, x: jax.Array) -> jax.Array:
        return self.function(x, **self.params)


VARIANTS = [JaxVariant(v.spec, dict(v.params)) for v in variants()]
VARIANT_IDS = [v.id for v in VARIANTS]
VARIANT_BY_ID = {v.id: v for v in VARIANTS}


# ----------------------------------------------------------------------------------------
# Inputs: the parity command's (bitorch_common.inputs.make_samples), whatever they are:
# random values with the edge values planted, an all-subnormal array (XLA on CPU treats
# subnormals as zero in comparisons), an all-zero array with -0.0 mixed in, and for a
# tensor-wide row the main array with one NaN and finite arrays whose largest magnitude
# is negative / positive (weightdorefa's m = max|tanh x|). test_inputs_reach_every_rule
# checks that they still hold all of that.


def make_inputs(variant: Variant, dtype: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """The (8, 8) inputs of ``variant``: every array of the parity command's
    :func:`~bitorch_common.inputs.make_samples` (``parity#0`` is the main one), and for a
    tensor-wide row also small values (``max|tanh| < 1``, 0 and -0.0 among them)."""
    dt = np_dtype(dtype)
    rng = np.random.default_rng(seed)
    tensor_wide = variant.spec.tensor_wide
    samples = make_samples(
        (8, 8), dt, rng, extra_edges=variant.extra_edges, tensor_wide=tensor_wide
    )
    result = {f"parity#{i}": x for i, x in enumerate(samples)}
    if tensor_wide:
        small = np.concatenate([[0.0, -0.0, 0.25, -0.25], rng.normal(0.0, 0.3, 60)])
        result["small"] = small.reshape(8, 8).astype(dt)
    return result


def cotangent(shape: tuple[int, ...], dtype: Any, seed: int = 1) -> np.ndarray:
    """Random non-unit cotangent, never 0 (:func:`bitorch_common.inputs.cotangents`)."""
    return cotangents(shape, dtype, np.random.default_rng(seed))


# ----------------------------------------------------------------------------------------
# Running and checking


def fwd_and_grad(variant: JaxVariant, x: jax.Array, g: jax.Array) -> tuple[jax.Array, ...]:
    """Plain forward (the primal custom_vjp path), forward of the VJP, input gradient."""
    plain = variant.make()(x)
    y, vjp = jax.vjp(variant.apply, x)
    return plain, y, vjp(g)[0]


def evaluate(jobs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], mode: str) -> dict:
    """Run every (variant id, input name) job eagerly or in ONE jitted function (compiling
    each job separately would dominate the suite's run time); return NumPy results."""

    def all_jobs(arrays: dict) -> dict:
        return {k: fwd_and_grad(VARIANT_BY_ID[k[0]], x, g) for k, (x, g) in arrays.items()}

    f = jax.jit(all_jobs) if mode == "jit" else all_jobs
    arrays = {k: (jnp.asarray(x), jnp.asarray(g)) for k, (x, g) in jobs.items()}
    out = f(arrays)
    results = {}
    for k, outs in out.items():
        x = jobs[k][0]
        for o in outs:
            assert o.dtype == x.dtype, f"{k}: dtype {o.dtype}, expected {x.dtype}"
            assert o.shape == x.shape, f"{k}: shape {o.shape}, expected {x.shape}"
        results[k] = tuple(np.asarray(o) for o in outs)
    return results


@functools.cache
def oracle_run(dtype_name: str, mode: str) -> dict:
    """Results of every variant on its (8, 8) inputs, for one dtype and mode (cached)."""
    dtype = FLOAT_DTYPES[dtype_name]
    g = cotangent((8, 8), dtype)
    jobs = {(v.id, name): (x, g) for v in VARIANTS for name, x in make_inputs(v, dtype).items()}
    return {"jobs": jobs, "results": evaluate(jobs, mode)}


@functools.cache
def small_run(dtype_name: str, mode: str) -> dict:
    """Results of every variant on 0-d inputs (the parity command's: the first edge values,
    NaN, a random one) and on empty arrays (cached)."""
    dtype = FLOAT_DTYPES[dtype_name]
    jobs = {}
    for v in VARIANTS:
        rng = np.random.default_rng(3)
        zero_d = make_samples((), dtype, rng, tensor_wide=v.spec.tensor_wide)
        for i, x in enumerate(zero_d):
            jobs[(v.id, f"0d#{i}={float(x)}")] = (x, cotangent((), dtype, seed=i))
        for shape in EMPTY_SHAPES:
            jobs[(v.id, f"empty{shape}")] = (np.zeros(shape, dtype), np.zeros(shape, dtype))
    return {"jobs": jobs, "results": evaluate(jobs, mode)}


def failure_message(variant: Variant, result: SampleComparison, what: str) -> str:
    """The comparison's problems and failing elements, oracle on the left."""
    lines = [f"{variant.label} {what}: {result.failures} failure(s) against the NumPy oracle"]
    lines += [f"  {p}" for p in result.problems]
    lines += [f"  {e.describe('oracle', 'jax')}" for e in result.failure_list]
    return "\n".join(lines)


def check_against_oracle(
    variant: Variant, x: np.ndarray, g: np.ndarray, y: Any, grad: Any, what: str = ""
) -> int:
    """``y`` and ``grad`` of ``variant`` at ``x`` against the oracle, by the parity
    command's rules (boundary flips allowed only where the row says); returns the flips."""
    result = variant.compare_to_oracle(x, g, np.asarray(y), np.asarray(grad))
    assert result.failures == 0 and not result.problems, failure_message(variant, result, what)
    return result.flips


def test_x64_is_off_outside_the_fixture() -> None:
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(np.float64(1.0)).dtype == jnp.float32


# jit in every dtype; eager (op by op, each primitive compiled on its own) in float32,
# enough to show both paths agree without compiling every primitive once per dtype.
RUNS = [("float16", "jit"), ("bfloat16", "jit"), ("float32", "jit"), ("float64", "jit")]
RUNS += [("float32", "eager")]
SMALL_RUNS = [("bfloat16", "jit"), ("float32", "jit")]
EMPTY_SHAPES = ((0,), (3, 0))


@pytest.fixture(params=RUNS, ids=[f"{d}-{m}" for d, m in RUNS])
def oracle_results(request: pytest.FixtureRequest) -> dict:
    if request.param[0] == "float64":
        request.getfixturevalue("x64")  # scoped: x64 is on for this test only
    return oracle_run(*request.param)


@pytest.fixture(params=SMALL_RUNS, ids=[f"{d}-{m}" for d, m in SMALL_RUNS])
def small_results(request: pytest.FixtureRequest) -> dict:
    if request.param[0] == "float64":
        request.getfixturevalue("x64")
    return small_run(*request.param)


def check_variant(variant: JaxVariant, run: dict) -> int:
    """Forward (both paths), NaN positions and gradient of ``variant``; returns flips."""
    flips, checked = 0, 0
    for (variant_id, name), (x, g) in run["jobs"].items():
        if variant_id != variant.id:
            continue
        plain, y, grad = run["results"][(variant_id, name)]
        flips += check_against_oracle(variant, x, g, plain, grad, f"{name} (object)")
        flips += check_against_oracle(variant, x, g, y, grad, f"{name} (function, vjp)")
        checked += 1
    assert checked >= 1
    return flips


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_against_oracle(variant: JaxVariant, oracle_results: dict) -> None:
    """Forward values, NaN positions, dtype and VJP input gradient match the oracle."""
    flips = check_variant(variant, oracle_results)
    if flips:
        print(f"{variant.id}: {flips} boundary flip(s)")


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_zero_dim_and_empty(variant: JaxVariant, small_results: dict) -> None:
    check_variant(variant, small_results)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_inputs_reach_every_rule(variant: JaxVariant) -> None:
    """The inputs really hold what the tests claim (guards against edits here and in
    bitorch_common.inputs): the edge values, NaN, an all-subnormal array with both signs,
    an all-zero array with both zeros, and for a tensor-wide row a NaN-free main array and
    finite arrays whose largest magnitude is negative / positive."""
    dt = np.dtype(np.float32)
    tiny = np.finfo(np.float32).tiny
    arrays = list(make_inputs(variant, dt).values())
    x = arrays[0].ravel()
    for v in (0.0, 1.0, -1.0, np.inf, -np.inf, 2.0, -2.0, 0.5, -0.5):
        assert (x == v).any(), v
    assert np.signbit(x[x == 0]).any() and (~np.signbit(x[x == 0])).any()  # 0 and -0.0
    assert (np.abs(x[np.isfinite(x)]) > 1).any() and x.size == 64
    assert ((x != 0) & (np.abs(x) < tiny)).any()  # a subnormal
    assert any(np.isnan(a).any() for a in arrays)
    assert np.isnan(x).any() != variant.spec.tensor_wide

    def is_subnormal(a: np.ndarray) -> bool:
        return bool(((a != 0) & (np.abs(a) < tiny)).all() and (a > 0).any() and (a < 0).any())

    def is_zeros(a: np.ndarray) -> bool:
        return bool((a == 0).all() and np.signbit(a).any() and (~np.signbit(a)).any())

    def peak_sign(a: np.ndarray) -> float:
        """The sign of the unique largest magnitude of a finite two-sided array, else 0."""
        a = a.astype(np.float64).ravel()
        if not (np.isfinite(a).all() and (a > 0).any() and (a < 0).any()):
            return 0.0
        if not 1 <= np.abs(a).max() < 2:  # far from 0 and from saturation
            return 0.0
        peak = a[np.argmax(np.abs(a))]
        return float(np.sign(peak)) if np.abs(peak) > (-np.sign(peak) * a).max() else 0.0

    assert any(is_subnormal(a) for a in arrays)
    assert any(is_zeros(a) for a in arrays)
    if variant.spec.tensor_wide:
        signs = {peak_sign(a) for a in arrays}
        assert {-1.0, 1.0} <= signs, signs


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_spec_half_precision_rule(mode: str) -> None:
    """SPEC: bf16 is computed in float32 and rounded once: inputdorefa(4) of 0.3 is 5/15."""
    x = jnp.asarray([0.3], dtype=jnp.bfloat16)
    f = jax.jit(bq.input_dorefa, static_argnums=1) if mode == "jit" else bq.input_dorefa
    y = f(x, 4)
    assert y.dtype == jnp.bfloat16
    assert float(y[0]) == float(jnp.asarray(5 / 15, jnp.bfloat16))
    assert float(y[0]) != float(jnp.asarray(4 / 15, jnp.bfloat16))


def test_weight_dorefa_special_cases() -> None:
    """All-zero input is quantized with t/(2m) taken as 0; a NaN makes the whole output NaN."""
    wd2 = jax.jit(bq.weight_dorefa, static_argnums=1)
    zeros = jnp.zeros((4,))
    got = np.asarray(wd2(zeros, 2))
    # pre-round value 0.5 * n = 1.5 rounds (half to even) to 2: level 2 * 2/3 - 1 = 1/3
    np.testing.assert_allclose(got, np.full(4, 1 / 3), rtol=1e-6)
    want = row("weightdorefa").oracle({"bits": 2}).forward(np.zeros(4, "f4"))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(np.asarray(wd2(jnp.asarray([0.5, np.nan, -2.0, 1.0]), 2))).all()


@pytest.mark.parametrize("sign", [-1.0, 1.0], ids=["negative-peak", "positive-peak"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weight_dorefa_scales_by_max_abs_of_tanh(sign: float, bits: int) -> None:
    """m = max|tanh x|: the absolute value matters when the largest magnitude is negative,
    and tanh comes before the maximum (max|x| is larger). Finite input, no saturation."""
    x = sign * np.array([1.75, 0.6, -0.8, 0.1, -0.35, 0.0, 0.45], np.float32)
    t = np.tanh(x.astype(np.float64))
    n = 2**bits - 1

    def levels(m: float) -> np.ndarray:
        return 2 * np.round((t / (2 * m) + 0.5) * n) / n - 1

    want = levels(np.abs(t).max())
    wrong = levels(t.max()) if sign < 0 else levels(np.abs(x).max())
    assert not np.array_equal(want, wrong), "the test input must tell the two apart"
    got = np.asarray(jax.jit(bq.weight_dorefa, static_argnums=1)(jnp.asarray(x), bits))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [4095, 4096, 65536])
def test_weight_dorefa_nan_poisons_large_arrays(size: int) -> None:
    """XLA on CPU drops NaN from max-reductions of >= 4096 elements; WeightDoReFa must not."""
    x = np.random.default_rng(0).normal(size=size).astype(np.float32)
    for pos in (0, size // 3, size - 1):
        xn = x.copy()
        xn[pos] = np.nan
        for f in (bq.weight_dorefa, jax.jit(bq.weight_dorefa, static_argnums=1)):
            assert np.isnan(np.asarray(f(jnp.asarray(xn), 2))).all(), (size, pos)
    variant = VARIANT_BY_ID["weightdorefa-bits2"]
    g = cotangent(x.shape, x.dtype)
    y, grad = jax.jit(lambda v, c: fwd_and_grad(variant, v, c)[1:])(jnp.asarray(x), g)
    check_against_oracle(variant, x, g, y, grad, f"size {size}")  # without NaN: the oracle


def test_subnormal_sign_is_exact_under_jit() -> None:
    """XLA on CPU treats subnormals as zero in float comparisons; the quantizers must not."""
    s = float(ml_dtypes.finfo(np.float32).smallest_subnormal)
    x = jnp.asarray([-s, s])
    for f in (bq.sign, bq.approx_sign, bq.ste_heaviside, lambda v: bq.swish_sign(v, 5.0)):
        for fn in (jax.jit(f), jax.jit(lambda v, f=f: f(v * 1.0) * 2.0 / 2.0)):
            np.testing.assert_array_equal(fn(x)[0], -1.0)
            np.testing.assert_array_equal(fn(x)[1], 1.0)


def test_dorefa_levels_are_exact_quotients() -> None:
    """Every DoReFa level is the IEEE quotient k/n (XLA's reciprocal rewrite is 1 ulp off)."""
    for bits in (2, 4, 8, 12):  # one shape for all: eager primitives compile once
        n = 2**bits - 1
        k = (np.arange(4096) % (n + 1)).astype(np.float32)
        x = k / np.float32(n)
        want = k / np.float32(n)
        for f in (bq.input_dorefa, jax.jit(bq.input_dorefa, static_argnums=1)):
            np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), bits)), want)


# ----------------------------------------------------------------------------------------
# Bad input: the same exception types as bitorch (torch)

BAD_ARRAYS = {
    "int32": np.array([1, -2], dtype=np.int32),
    "bool": np.array([True, False]),
    "complex64": np.array([1 + 1j, -1j], dtype=np.complex64),
}

BAD_HYPERPARAMETERS = [  # (key, params, exception)
    ("inputdorefa", {"bits": True}, TypeError),
    ("inputdorefa", {"bits": 2.0}, TypeError),
    ("weightdorefa", {"bits": "2"}, TypeError),
    ("inputdorefa", {"bits": 0}, ValueError),
    ("weightdorefa", {"bits": 25}, ValueError),
    ("weightdorefa", {"bits": -1}, ValueError),
    ("swishsign", {"beta": 0.0}, ValueError),
    ("swishsign", {"beta": -1.0}, ValueError),
    ("swishsign", {"beta": float("nan")}, ValueError),
    ("swishsign", {"beta": float("inf")}, ValueError),
    ("swishsign", {"beta": "5"}, TypeError),
]
BAD_IDS = [f"{k}-{p}" for k, p, _ in BAD_HYPERPARAMETERS]
KEYS = sorted({v.key for v in VARIANTS})


@pytest.mark.parametrize("dtype", list(BAD_ARRAYS))
@pytest.mark.parametrize("case", VARIANTS, ids=VARIANT_IDS)
def test_non_float_array_is_type_error(case: JaxVariant, dtype: str) -> None:
    x = jnp.asarray(BAD_ARRAYS[dtype])
    with pytest.raises(TypeError, match=case.key):
        case.make()(x)
    with pytest.raises(TypeError, match=case.key):
        case.apply(x)
    with pytest.raises(TypeError, match=case.key):
        jax.jit(case.apply)(x)


@pytest.mark.parametrize(("key", "params", "exc"), BAD_HYPERPARAMETERS, ids=BAD_IDS)
def test_bad_hyperparameter(key: str, params: dict, exc: type[Exception]) -> None:
    name = next(iter(params))
    with pytest.raises(exc, match=f"{key}: {name}"):
        bq.quantization_from_name(key)(**params)
    function = getattr(bq, row(key).function)
    with pytest.raises(exc, match=f"{key}: {name}"):
        function(jnp.ones(3), **params)


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown quantization 'nosuch'.*approxsign.*weightdorefa"):
        bq.quantization_from_name("nosuch")
    with pytest.raises(TypeError, match="must be a str"):
        bq.quantization_from_name(1)  # type: ignore[arg-type]
    assert bq.quantization_from_name("SIGN") is bq.Sign


def test_same_exception_types_as_torch() -> None:
    """Each bad input above raises the same exception type in bitorch (torch)."""
    torch = pytest.importorskip("torch", reason="torch is needed to compare exception types")
    import bitorch.quantizations as tq

    assert tq.quantization_names() == bq.quantization_names() == KEYS

    def raised(f: Callable[..., Any], *args: Any, **kwargs: Any) -> type[Exception] | None:
        try:
            f(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the type is what is compared
            return type(e)
        return None

    checked = 0
    for key in KEYS:
        for arr in BAD_ARRAYS.values():
            jx = raised(bq.quantization_from_name(key)(), jnp.asarray(arr))
            tx = raised(tq.quantization_from_name(key)(), torch.from_numpy(arr))
            assert jx is tx is TypeError, (key, arr.dtype, jx, tx)
            checked += 1
    for key, params, exc in BAD_HYPERPARAMETERS:
        jx = raised(bq.quantization_from_name(key), **params)
        tx = raised(tq.quantization_from_name(key), **params)
        assert jx is tx is exc, (key, params, jx, tx)
        checked += 1
    for bad in ("nosuch", 1):
        jx = raised(bq.quantization_from_name, bad)
        tx = raised(tq.quantization_from_name, bad)
        assert jx is tx is not None, (bad, jx, tx)
        checked += 1
    assert checked == len(KEYS) * len(BAD_ARRAYS) + len(BAD_HYPERPARAMETERS) + 2


# ----------------------------------------------------------------------------------------
# The quantizer objects


@pytest.mark.parametrize("case", VARIANTS, ids=VARIANT_IDS)
def test_objects_are_frozen_hashable_and_equal_by_value(case: JaxVariant) -> None:
    q = case.make()
    assert q.name == case.key
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.beta = 3.0  # type: ignore[misc]
    for field in dataclasses.fields(q):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(q, field.name, getattr(q, field.name))
    twin = case.make()
    assert twin == q and hash(twin) == hash(q) and twin is not q
    assert len({q, twin}) == 1


def test_distinct_configurations_are_unequal() -> None:
    objects = [v.make() for v in VARIANTS]
    assert len(set(objects)) == len(VARIANTS)
    assert bq.InputDoReFa(bits=2) != bq.WeightDoReFa(bits=2)
    assert bq.SwishSign(beta=5.0) == bq.SwishSign()  # None means config.beta (5.0)


def test_objects_as_static_jit_arguments() -> None:
    apply = jax.jit(lambda q, x: q(x), static_argnums=0)
    x = jnp.asarray([-0.7, 0.2, 0.9])
    np.testing.assert_array_equal(apply(bq.Sign(), x), [-1, 1, 1])
    np.testing.assert_array_equal(apply(bq.InputDoReFa(bits=2), x), np.float32([0, 1, 3]) / 3)
    np.testing.assert_array_equal(apply(bq.InputDoReFa(bits=1), x), [0, 0, 1])
    before = apply._cache_size()
    apply(bq.InputDoReFa(bits=2), x)  # equal by value: a cache hit, no retrace
    assert apply._cache_size() == before == 3
    grad = jax.jit(jax.grad(lambda x, q: q(x).sum()), static_argnums=1)
    np.testing.assert_allclose(grad(x, bq.ApproxSign()), [0.6, 1.6, 0.2], rtol=1e-6)


@pytest.mark.parametrize("cls", [bq.SwishSign, bq.InputDoReFa, bq.WeightDoReFa])
def test_hyperparameters_are_keyword_only(cls: type) -> None:
    with pytest.raises(TypeError):
        cls(2)


@pytest.mark.parametrize("case", VARIANTS, ids=VARIANT_IDS)
def test_bit_width_and_deprecated_bitwidth(case: JaxVariant) -> None:
    q = case.make()
    want = case.bit_width  # from the quantizer table
    assert q.bit_width == want
    with pytest.warns(DeprecationWarning, match="bit_width"):
        assert q.bitwidth == want


def test_config_defaults(restore_config: bq.QuantizationConfig) -> None:
    cfg = restore_config
    assert (cfg.dorefa_bits, cfg.beta) == (1, 5.0)
    assert bq.InputDoReFa().bits == bq.WeightDoReFa().bits == 1
    assert bq.SwishSign().beta == 5.0
    x = jnp.asarray([0.2, 0.4, 0.9])
    np.testing.assert_array_equal(bq.input_dorefa(x), [0, 0, 1])
    cfg.dorefa_bits = 2
    cfg.beta = 2.0
    assert bq.InputDoReFa().bits == 2 and bq.SwishSign().beta == 2.0
    np.testing.assert_array_equal(bq.input_dorefa(x), np.float32([1, 1, 3]) / 3)
    g = jax.grad(lambda v: bq.swish_sign(v).sum())(jnp.zeros(1))
    np.testing.assert_allclose(g, [2.0])
    assert bq.InputDoReFa(bits=4).bits == 4  # explicit values win over the config
    with pytest.raises(ValueError, match="dorefa_bits"):
        cfg.dorefa_bits = 0
    with pytest.raises(ValueError, match="beta"):
        cfg.beta = 0.0
    with pytest.raises(AttributeError, match="no option"):
        cfg.bits = 3  # type: ignore[attr-defined]
    assert (cfg.dorefa_bits, cfg.beta) == (2, 2.0)  # a rejected value leaves the old one


# ----------------------------------------------------------------------------------------
# Forward mode: not supported, by design (custom_vjp)

JVP_MESSAGE = r"can't apply forward-mode autodiff \(jvp\) to a custom_vjp function"


@pytest.mark.parametrize("case", VARIANTS, ids=VARIANT_IDS)
def test_forward_mode_raises(case: JaxVariant) -> None:
    x = jnp.asarray([-0.5, 0.25, 2.0])
    with pytest.raises(TypeError, match=JVP_MESSAGE):
        jax.jvp(case.make(), (x,), (jnp.ones_like(x),))


def test_other_forward_mode_transforms_and_the_documented_choice() -> None:
    x = jnp.asarray([-0.5, 0.25, 2.0])
    with pytest.raises(TypeError, match=JVP_MESSAGE):
        jax.jacfwd(bq.approx_sign)(x)
    _, linear = jax.linearize(bq.sign, x)  # builds, but applying it is forward mode
    with pytest.raises(TypeError, match=JVP_MESSAGE):
        linear(jnp.ones_like(x))
    # Reverse mode works, and forward-over-reverse differentiates the backward rule:
    # d/dx of ApproxSign's gradient 2 - 2|x| is -2 sign(x) inside |x| <= 1, else 0.
    np.testing.assert_allclose(jnp.diag(jax.jit(jax.jacrev(bq.approx_sign))(x)), [1.0, 1.5, 0.0])
    hess = jax.jit(jax.hessian(lambda v: bq.approx_sign(v).sum()))(x)
    np.testing.assert_array_equal(jnp.diag(hess), [2.0, -2.0, 0.0])
    doc = " ".join((bq_base.__doc__ or "").split())
    assert "forward-mode autodiff" in doc and "custom_vjp" in doc and "TypeError" in doc
    assert "jax.jvp" in " ".join((bq.straight_through.__doc__ or "").split())
