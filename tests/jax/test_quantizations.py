"""bitorch_jax quantizers against the NumPy oracles of ``bitorch_common.oracles``.

One case table (``CASES``) drives the tests: every quantizer with the hyperparameters the
issue names. Each case is run eagerly and under ``jax.jit``, in float16, bfloat16,
float32 and float64 (the last inside a scoped ``jax.enable_x64``), on inputs that hold
exact 0, -0.0, +-1, the neighbours of +-1, values past every threshold, the smallest
normal and subnormal numbers, the largest finite numbers, +-inf and NaN. Gradients come
from ``jax.vjp`` with random non-unit cotangents.
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
from bitorch_common.oracles import oracle

# NaN and inf inputs make the NumPy oracles warn ("invalid value", "overflow"); expected.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

FLOAT_DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One quantizer configuration: registry key, hyperparameters, functional form."""

    key: str
    params: dict[str, Any]
    function: Callable[..., jax.Array]

    @property
    def id(self) -> str:
        return self.key + "".join(f"-{k}{v:g}" for k, v in self.params.items())

    def make(self) -> bq.Quantization:
        return bq.quantization_from_name(self.key)(**self.params)

    def apply(self, x: jax.Array) -> jax.Array:
        return self.function(x, **self.params)


CASES = [
    Case("sign", {}, bq.sign),
    Case("approxsign", {}, bq.approx_sign),
    *(Case("swishsign", {"beta": b}, bq.swish_sign) for b in (1.0, 5.0, 10.0)),
    Case("steheaviside", {}, bq.ste_heaviside),
    *(Case("inputdorefa", {"bits": b}, bq.input_dorefa) for b in (1, 2, 4, 8)),
    *(Case("weightdorefa", {"bits": b}, bq.weight_dorefa) for b in (1, 2, 4, 8)),
    Case("identity", {}, bq.identity),
]
CASE_IDS = [c.id for c in CASES]
CASE_BY_ID = {c.id: c for c in CASES}
BIT_WIDTH = {"sign": 1, "approxsign": 1, "swishsign": 1, "steheaviside": 1, "identity": 32}

# Gradient tolerances (|got - oracle| <= rtol * |oracle| + atol * beta * |g|), written once.
# Every gradient is exact except SwishSign's: it goes through tanh and cosh, whose XLA and
# NumPy implementations may differ by a few ulp of the float32/float64 compute dtype. Near
# the zero of ``2 - bx*tanh(bx/2)`` that error is absolute (cancellation), hence the
# ``atol`` relative to the gradient's scale ``beta*|g|``: 8 ulp of the compute dtype. The
# half dtypes are computed in float32 and rounded once, so one float32-level difference
# may move the result by 1 ulp of the half dtype: their ``rtol`` is that ulp.
SWISH_TOLERANCE = {  # dtype name -> (rtol, atol per beta*|g|)
    "float16": (2.0**-10, 8 * 2.0**-23),
    "bfloat16": (2.0**-7, 8 * 2.0**-23),
    "float32": (8 * 2.0**-23, 8 * 2.0**-23),
    "float64": (8 * 2.0**-52, 8 * 2.0**-52),
}


def special_values(dtype: np.dtype) -> list[float]:
    """Exact zeros, +-1 and its neighbours, past-threshold, tiny, huge and non-finite values."""
    fi = ml_dtypes.finfo(dtype)
    eps, epsneg = float(fi.eps), float(fi.epsneg)
    base = [
        0.0,
        1.0,
        1.0 + eps,  # just past |x| <= 1
        1.0 - epsneg,  # just inside
        0.5,  # inputdorefa bits=1 rounding boundary (half to even)
        0.3,
        1.5,
        2.0,
        3.0,
        100.0,
        float(fi.tiny),  # smallest normal
        float(fi.smallest_subnormal),  # XLA on CPU treats it as 0 in float comparisons
        float(fi.max),
        np.inf,
    ]
    return [v for b in base for v in (b, -b)] + [np.nan]


def make_inputs(dtype: np.dtype, seed: int = 0) -> dict[str, np.ndarray]:
    """Three (8, 8) inputs: with NaN, without NaN, and small values (max|tanh| < 1)."""
    rng = np.random.default_rng(seed)
    specials = np.array(special_values(dtype), dtype=np.float64)
    rest = 64 - specials.size
    with_nan = np.concatenate([specials, rng.normal(0.0, 1.5, rest)]).astype(dtype)
    without_nan = np.where(np.isnan(with_nan), 0.7, with_nan.astype(np.float64)).astype(dtype)
    small = np.concatenate([[0.0, -0.0, 0.25, -0.25], rng.normal(0.0, 0.3, 60)]).astype(dtype)
    return {
        k: v.reshape(8, 8)
        for k, v in (("nan", with_nan), ("finite", without_nan), ("small", small))
    }


def cotangent(shape: tuple[int, ...], dtype: np.dtype, seed: int = 1) -> np.ndarray:
    """Random non-unit cotangent: magnitudes in [0.5, 2] with random signs."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    return g.astype(dtype)


def fwd_and_grad(case: Case, x: jax.Array, g: jax.Array) -> tuple[jax.Array, ...]:
    """Plain forward (the primal custom_vjp path), forward of the VJP, input gradient."""
    plain = case.make()(x)
    y, vjp = jax.vjp(case.apply, x)
    return plain, y, vjp(g)[0]


def inputs_for(case: Case, dtype: np.dtype) -> dict[str, np.ndarray]:
    """All three inputs for WeightDoReFa (a NaN poisons its whole output); the NaN one
    for the elementwise quantizers, where it already holds every other value."""
    inputs = make_inputs(dtype)
    return inputs if case.key == "weightdorefa" else {"nan": inputs["nan"]}


def evaluate(jobs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], mode: str) -> dict:
    """Run every (case id, input name) job eagerly or in ONE jitted function (compiling
    each case separately would dominate the suite's run time); return NumPy results."""

    def all_jobs(arrays: dict) -> dict:
        return {k: fwd_and_grad(CASE_BY_ID[k[0]], x, g) for k, (x, g) in arrays.items()}

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
    """Results of every case on the (8, 8) inputs, for one dtype and mode (cached)."""
    dtype = FLOAT_DTYPES[dtype_name]
    g = cotangent((8, 8), dtype)
    jobs = {(c.id, n): (x, g) for c in CASES for n, x in inputs_for(c, dtype).items()}
    return {"jobs": jobs, "results": evaluate(jobs, mode)}


@functools.cache
def small_run(dtype_name: str, mode: str) -> dict:
    """Results of every case on 0-d inputs and empty arrays (cached)."""
    dtype = FLOAT_DTYPES[dtype_name]
    jobs = {}
    for c in CASES:
        for value in ZERO_DIM_VALUES:
            jobs[(c.id, f"0d={value}")] = (np.asarray(value, dtype), cotangent((), dtype))
        for shape in EMPTY_SHAPES:
            jobs[(c.id, f"empty{shape}")] = (np.zeros(shape, dtype), np.zeros(shape, dtype))
    return {"jobs": jobs, "results": evaluate(jobs, mode)}


def assert_same_nans(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got_nan, want_nan = np.isnan(got.astype(np.float64)), np.isnan(want.astype(np.float64))
    bad = np.argwhere(got_nan != want_nan)
    assert bad.size == 0, f"{what}: NaN positions differ at {bad[:5].tolist()}"


def assert_forward(case: Case, x: np.ndarray, got: np.ndarray) -> int:
    """Exact equality with the oracle; returns the number of tolerated boundary flips.

    Only WeightDoReFa can flip: its value before rounding goes through tanh, where XLA
    and NumPy may differ by a few ulp, so an element whose oracle pre-round value lies
    within 8 compute-dtype ulp (times n) of a ``k + 0.5`` boundary may land on either
    side. Every other element, and every other quantizer, must match exactly.
    """
    orc = oracle(case.key, **case.params)
    want = orc.forward(x)
    assert_same_nans(got, want, f"{case.id} forward")
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    differ = ~((g64 == w64) | np.isnan(w64))
    if not differ.any():
        return 0
    assert case.key == "weightdorefa", (
        f"{case.id}: forward differs from the oracle at x={x[differ][:5]}: "
        f"got {got[differ][:5]}, want {want[differ][:5]}"
    )
    n = 2 ** case.params["bits"] - 1
    pre = orc.pre_round(x).astype(np.float64)
    eps = float(np.finfo(pre.dtype).eps)
    near = np.abs(pre - np.floor(pre) - 0.5) <= 8 * eps * n
    levels = np.stack([2 * np.floor(pre) / n - 1, 2 * np.ceil(pre) / n - 1])
    neighbour = np.isclose(g64, levels.astype(x.dtype).astype(np.float64)).any(axis=0)
    bad = differ & ~(near & neighbour)
    assert not bad.any(), f"{case.id}: non-boundary flip at x={x[bad][:5]}"
    return int(differ.sum())


def assert_gradient(case: Case, x: np.ndarray, g: np.ndarray, got: np.ndarray) -> None:
    want = oracle(case.key, **case.params).grad(x, g)
    assert_same_nans(got, want, f"{case.id} gradient")
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    finite = ~np.isnan(w64)
    if case.key != "swishsign":
        assert np.array_equal(g64[finite], w64[finite]), (
            f"{case.id}: gradient differs at x={x[finite & (g64 != w64)][:5]}"
        )
        return
    rtol, atol = SWISH_TOLERANCE[np.dtype(x.dtype).name]
    scale = case.params["beta"] * np.abs(g.astype(np.float64))
    err = np.abs(g64 - w64)
    bad = finite & (err > rtol * np.abs(w64) + atol * scale)
    assert not bad.any(), f"{case.id}: gradient error {err[bad][:5]} at x={x[bad][:5]}"


def test_x64_is_off_outside_the_fixture() -> None:
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(np.float64(1.0)).dtype == jnp.float32


# jit in every dtype; eager (op by op, each primitive compiled on its own) in float32,
# enough to show both paths agree without compiling every primitive once per dtype.
RUNS = [("float16", "jit"), ("bfloat16", "jit"), ("float32", "jit"), ("float64", "jit")]
RUNS += [("float32", "eager")]
SMALL_RUNS = [("bfloat16", "jit"), ("float32", "jit")]
ZERO_DIM_VALUES = (-0.0, 0.3, np.nan)
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


def check_case(case: Case, run: dict) -> int:
    """Forward (both paths), NaN positions and gradient of ``case``; returns flips."""
    flips, checked = 0, 0
    for (case_id, name), (x, g) in run["jobs"].items():
        if case_id != case.id:
            continue
        plain, y, grad = run["results"][(case_id, name)]
        flips += assert_forward(case, x, plain)
        flips += assert_forward(case, x, y)
        assert_gradient(case, x, g, grad)
        checked += 1
    assert checked >= 1
    return flips


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_against_oracle(case: Case, oracle_results: dict) -> None:
    """Forward values, NaN positions, dtype and VJP input gradient match the oracle."""
    flips = check_case(case, oracle_results)
    if flips:
        print(f"{case.id}: {flips} WeightDoReFa boundary flip(s)")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_zero_dim_and_empty(case: Case, small_results: dict) -> None:
    check_case(case, small_results)


def test_inputs_hold_the_required_values() -> None:
    """The input table really holds what the tests claim (guards against edits)."""
    x = make_inputs(np.dtype(np.float32))["nan"].ravel()
    for v in (0.0, 1.0, -1.0, np.inf, -np.inf, 2.0, -2.0):
        assert (x == v).any(), v
    assert np.signbit(x[x == 0]).any() and (~np.signbit(x[x == 0])).any()  # 0 and -0.0
    assert np.isnan(x).any() and (np.abs(x[np.isfinite(x)]) > 1).any()
    assert ((x != 0) & (np.abs(x) < np.finfo(np.float32).tiny)).any()  # a subnormal
    assert x.size == 64 and not np.isnan(make_inputs(np.dtype(np.float32))["finite"]).any()


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
    np.testing.assert_array_equal(got, oracle("weightdorefa", bits=2).forward(np.zeros(4, "f4")))
    assert np.isnan(np.asarray(wd2(jnp.asarray([0.5, np.nan, -2.0, 1.0]), 2))).all()


@pytest.mark.parametrize("size", [4095, 4096, 65536])
def test_weight_dorefa_nan_poisons_large_arrays(size: int) -> None:
    """XLA on CPU drops NaN from max-reductions of >= 4096 elements; WeightDoReFa must not."""
    x = np.random.default_rng(0).normal(size=size).astype(np.float32)
    for pos in (0, size // 3, size - 1):
        xn = x.copy()
        xn[pos] = np.nan
        for f in (bq.weight_dorefa, jax.jit(bq.weight_dorefa, static_argnums=1)):
            assert np.isnan(np.asarray(f(jnp.asarray(xn), 2))).all(), (size, pos)
    got = np.asarray(jax.jit(bq.weight_dorefa, static_argnums=1)(jnp.asarray(x), 2))
    assert_forward(CASE_BY_ID["weightdorefa-bits2"], x, got)  # without NaN: the oracle


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
KEYS = sorted({c.key for c in CASES})


@pytest.mark.parametrize("dtype", list(BAD_ARRAYS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_non_float_array_is_type_error(case: Case, dtype: str) -> None:
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
    function = {c.key: c.function for c in CASES}[key]
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


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_objects_are_frozen_hashable_and_equal_by_value(case: Case) -> None:
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
    objects = [c.make() for c in CASES]
    assert len(set(objects)) == len(CASES)
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


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bit_width_and_deprecated_bitwidth(case: Case) -> None:
    q = case.make()
    want = case.params["bits"] if "bits" in case.params else BIT_WIDTH[case.key]
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


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_mode_raises(case: Case) -> None:
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
