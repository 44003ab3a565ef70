"""ReActNet's RSign and RPReLU in JAX (no torch): the pure functions against a NumPy
oracle of the formulas in :mod:`bitorch_jax.layers.react` (outputs and every gradient,
float32 and float64), the linen and NNX classes against the pure functions, parameter
names/shapes/initial values, the summary's parameter counts, and the errors."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bitorch_jax
from bitorch_jax.layers import linen as ql
from bitorch_jax.layers import nnx as qn
from bitorch_jax.layers import rprelu, rsign

# (id, input shape (channels last), threshold); the shifts are dyadic so that the planted
# z = x + shift values (0, +-threshold, just past it) are exact.
CASES = [
    ("4d-threshold1", (2, 3, 2, 4), 1.0),
    ("2d-threshold0.5", (6, 5), 0.5),
    ("3d-threshold0", (2, 4, 3), 0.0),
]
IDS = [c[0] for c in CASES]
DTYPES = ["float32", "float64"]


def make(shape: tuple[int, ...], threshold: float, dtype: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    c = shape[-1]
    shift = np.resize(np.array([0.5, -0.25, 0.0, -1.0, 0.75], np_dtype), c)
    x = rng.normal(scale=1.5, size=shape).astype(np_dtype)
    t = np_dtype.type(threshold)
    # just past t; for t = 0 the smallest normal number (XLA on CPU flushes subnormal sums
    # to 0, see bitorch_jax.layers.react)
    past = max(np.nextafter(t, np_dtype.type(np.inf)), np.finfo(np_dtype).tiny)
    zs = np.array([t, -t, 0.0, past, -3.0], np_dtype)
    rows = x.reshape(-1, c)
    rows[-len(zs) :] = zs[:, None] - shift  # every channel sees every planted z
    return {
        "x": x,
        "shift": shift,
        "slope": rng.uniform(-0.5, 1.0, size=c).astype(np_dtype),
        "bias_out": rng.normal(size=c).astype(np_dtype),
        "g": rng.normal(size=shape).astype(np_dtype),
    }


def oracle_rsign(x: np.ndarray, b: np.ndarray, g: np.ndarray, t: float) -> tuple:
    """y, dL/dx, dL/db of sign(x + b) with the straight-through gradient, cancelled
    where |x + b| > t (t = 0: never)."""
    z = x + b
    y = np.where(z < 0, -1.0, 1.0).astype(x.dtype)
    passes = np.ones(z.shape, bool) if t == 0 else np.abs(z) <= t
    dx = np.where(passes, g, 0).astype(x.dtype)
    return y, dx, dx.reshape(-1, x.shape[-1]).sum(0)


def oracle_rprelu(x: np.ndarray, b0: np.ndarray, w: np.ndarray, b1: np.ndarray, g: np.ndarray):
    """y and the gradients (x, bias_in, slope, bias_out) of prelu(x + b0; w) + b1."""
    z = x + b0
    y = np.where(z > 0, z, w * z) + b1
    dx = np.where(z > 0, g, w * g)
    c = x.shape[-1]
    dw = np.where(z > 0, 0, g * z).reshape(-1, c).sum(0)
    return y, dx, dx.reshape(-1, c).sum(0), dw, g.reshape(-1, c).sum(0)


def tolerance(dtype: str) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}


def run(dtype: str, request: pytest.FixtureRequest) -> None:
    if dtype == "float64":
        request.getfixturevalue("x64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rsign_matches_the_formulas(case: tuple, dtype: str, request: Any) -> None:
    run(dtype, request)
    _, shape, t = case
    a = make(shape, t, dtype)
    y, vjp = jax.vjp(
        lambda x, b: rsign(x, b, gradient_cancellation_threshold=t), a["x"], a["shift"]
    )
    dx, db = vjp(jnp.asarray(a["g"]))
    want_y, want_dx, want_db = oracle_rsign(a["x"], a["shift"], a["g"], t)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(y), want_y)
    np.testing.assert_array_equal(np.asarray(dx), want_dx)  # elementwise: exact
    np.testing.assert_allclose(np.asarray(db), want_db, **tolerance(dtype))
    if t > 0:  # the planted z = -3 is cancelled, z = +-t passes
        assert np.any(want_dx == 0) and np.any(want_dx != 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rprelu_matches_the_formulas(case: tuple, dtype: str, request: Any) -> None:
    run(dtype, request)
    _, shape, t = case
    a = make(shape, t, dtype)
    params = (a["shift"], a["slope"], a["bias_out"])
    y, vjp = jax.vjp(rprelu, a["x"], *params)
    grads = vjp(jnp.asarray(a["g"]))
    want = oracle_rprelu(a["x"], *params, a["g"])
    np.testing.assert_array_equal(np.asarray(y), want[0])  # elementwise, no FMA: exact
    np.testing.assert_array_equal(np.asarray(grads[0]), want[1])
    for got, expected in zip(grads[1:], want[2:], strict=True):
        np.testing.assert_allclose(np.asarray(got), expected, **tolerance(dtype))


def test_rprelu_is_exact_under_jit_too() -> None:
    """Under jit XLA may fuse ``slope * z + bias_out``; the result must still be rounded
    twice, as torch does."""
    a = make((64, 8), 0.5, "float32", seed=3)
    params = (a["shift"], a["slope"], a["bias_out"])
    np.testing.assert_array_equal(
        np.asarray(jax.jit(rprelu)(a["x"], *params)), oracle_rprelu(a["x"], *params, a["g"])[0]
    )


def test_approxsign_gradient_is_used_when_asked() -> None:
    x, b = jnp.array([[0.25, -0.5]]), jnp.array([0.0, 0.0])
    dx = jax.grad(lambda x: rsign(x, b, quantization="approxsign").sum())(x)
    np.testing.assert_allclose(np.asarray(dx), [[1.5, 1.0]])  # 2 - 2|z|


def test_linen_and_nnx_call_the_pure_functions() -> None:
    a = make((6, 4), 1.0, "float32")
    x = jnp.asarray(a["x"])
    variables = {"params": {"bias": jnp.asarray(a["shift"])}}
    want = rsign(x, a["shift"], gradient_cancellation_threshold=0.5)
    got_linen = ql.RSign(gradient_cancellation_threshold=0.5).apply(variables, x)
    layer = qn.RSign(4, gradient_cancellation_threshold=0.5)
    layer.bias[...] = jnp.asarray(a["shift"])
    for got in (got_linen, layer(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    names = ("bias_in", "slope", "bias_out")
    params = dict(zip(names, (a["shift"], a["slope"], a["bias_out"]), strict=True))
    want = rprelu(x, *params.values())
    got_linen = ql.RPReLU().apply({"params": params}, x)
    layer = qn.RPReLU(4)
    for name, value in params.items():
        getattr(layer, name)[...] = jnp.asarray(value)
    for got in (got_linen, layer(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_parameters_names_shapes_and_initial_values(x64: None) -> None:
    x = jnp.zeros((2, 3, 3, 5), jnp.float64)
    linen_rsign = ql.RSign(param_dtype=jnp.float64).init(jax.random.key(0), x)["params"]
    nnx_rsign = nnx.to_pure_dict(nnx.state(qn.RSign(5, param_dtype=jnp.float64), nnx.Param))
    for params in (linen_rsign, nnx_rsign):
        assert set(params) == {"bias"}
        assert params["bias"].dtype == jnp.float64
        np.testing.assert_array_equal(params["bias"], np.zeros(5))
    linen_rprelu = ql.RPReLU(param_dtype=jnp.float64).init(jax.random.key(0), x)["params"]
    nnx_rprelu = nnx.to_pure_dict(nnx.state(qn.RPReLU(5, param_dtype=jnp.float64), nnx.Param))
    for params in (linen_rprelu, nnx_rprelu):
        assert set(params) == {"bias_in", "slope", "bias_out"}
        np.testing.assert_array_equal(params["slope"], np.full(5, 0.25))
        np.testing.assert_array_equal(params["bias_in"], np.zeros(5))
        np.testing.assert_array_equal(params["bias_out"], np.zeros(5))
    random = qn.RSign(3, bias_init=nnx.initializers.normal(1.0), rngs=nnx.Rngs(1))
    assert np.any(np.asarray(random.bias[...]) != 0)


class _Block(nnx.Module):
    def __init__(self) -> None:
        self.sign = qn.RSign(4)
        self.conv = qn.QConv(4, 4, (3, 3), padding=1, rngs=nnx.Rngs(0))
        self.act = qn.RPReLU(4)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.act(self.conv(self.sign(x)))


def test_summary_counts_them_as_full_precision() -> None:
    info = bitorch_jax.summary(_Block(), jnp.zeros((1, 5, 5, 4)))
    rows = {layer.name: layer for layer in info.layers}
    assert [rows[n].type for n in ("sign", "conv", "act")] == ["RSign", "QConv", "RPReLU"]
    assert info.params_by_bits == {1: 4 * 4 * 9, 32: 4 + 3 * 4}
    assert rows["sign"].output_shape == (1, 5, 5, 4) and rows["act"].output_shape == (1, 5, 5, 4)
    linen = nn.Sequential([ql.RSign(), ql.QConv(4, (3, 3), padding=1), ql.RPReLU()])
    info = bitorch_jax.summary(linen, jnp.zeros((1, 5, 5, 4)))
    assert [layer.type for layer in info.layers] == ["RSign", "QConv", "RPReLU"]
    assert info.params_by_bits == {1: 4 * 4 * 9, 32: 4 + 3 * 4}


@pytest.mark.parametrize(
    "call, error, text",
    [
        (lambda: rsign(jnp.ones((2, 3)), jnp.zeros(2)), ValueError, "bias must have shape (3,)"),
        (lambda: rsign(jnp.ones(()), jnp.zeros(1)), ValueError, "channel axis"),
        (lambda: rsign(jnp.ones((2, 3), jnp.int32), jnp.zeros(3)), TypeError, "floating"),
        (lambda: rsign(jnp.ones((1, 3)), jnp.zeros(3), gradient_cancellation_threshold=-1.0),
         ValueError, "threshold"),
        (lambda: rsign(jnp.ones((1, 3)), jnp.zeros(3), quantization="nope"), ValueError, "nope"),
        (lambda: rprelu(jnp.ones((2, 3)), jnp.zeros(3), jnp.zeros((3, 1)), jnp.zeros(3)),
         ValueError, "slope must have shape (3,)"),
        (lambda: rprelu(jnp.ones((2, 3)), jnp.zeros(3), jnp.zeros(3), jnp.zeros(4)),
         ValueError, "bias_out must have shape (3,)"),
        (lambda: qn.RSign(0), ValueError, "num_features"),
        (lambda: qn.RPReLU(2.5), TypeError, "num_features"),
        (lambda: qn.RSign(2, gradient_cancellation_threshold=-1), ValueError, "threshold"),
        (lambda: ql.RSign(activation="nope"), ValueError, "nope"),
        (lambda: qn.RSign(3)(jnp.ones((2, 4))), ValueError, "bias must have shape (4,)"),
    ],
)  # fmt: skip
def test_bad_arguments_are_named(call: Any, error: type, text: str) -> None:
    with pytest.raises(error, match=None) as info:
        call()
    assert text in str(info.value), str(info.value)
