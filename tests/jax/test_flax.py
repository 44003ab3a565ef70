"""The quantizers and QActivation inside Flax: linen, NNX, both Sequentials, and the JAX
and NNX transforms (jit, grad, value_and_grad, vmap). Expected values come from the NumPy
oracles of ``bitorch_common.oracles``, not from the code under test."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from flax import nnx

import bitorch_jax.quantizations as bq
from bitorch_common.oracles import oracle
from bitorch_jax.layers import linen as blinen
from bitorch_jax.layers import nnx as bnnx

# NaN and inf inputs make the NumPy oracles warn ("invalid value", "overflow"); expected.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

# (registry key, params): one configuration of every quantizer
QUANTIZERS = [
    ("sign", {}),
    ("approxsign", {}),
    ("swishsign", {"beta": 5.0}),
    ("steheaviside", {}),
    ("inputdorefa", {"bits": 2}),
    ("weightdorefa", {"bits": 2}),
    ("identity", {}),
]
Q_IDS = [k for k, _ in QUANTIZERS]

# finite values: 0, -0.0, +-1, past +-1, rounding boundaries of inputdorefa(2) (1/6, 1/2)
X = np.array([0.0, -0.0, 1.0, -1.0, 1.5, -2.5, 0.3, -0.3, 0.5, 0.75, -0.9, 3.0], np.float32)
G = np.array([0.7, -1.3, 0.9, 1.6, -0.6, 1.1, -1.8, 0.55, 1.25, -0.8, 1.4, -1.05], np.float32)


def rel_close(got: Any, want: np.ndarray, key: str) -> None:
    """Exact for every quantizer but SwishSign (tanh/cosh: float32 libm differences)."""
    got = np.asarray(got)
    if key == "swishsign":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


# Each test below puts ALL quantizers into one module (or one jitted function) and checks
# each against its own oracle: one compilation per transform instead of one per quantizer.
OBJECTS = [bq.quantization_from_name(k)(**p) for k, p in QUANTIZERS]
ORACLES = [oracle(k, **p) for k, p in QUANTIZERS]


class BankLinen(nn.Module):
    """Row i is ``q_i(xs[i]) * w_i``: d/dw_i is q_i(x), d/dxs[i] is q_i's VJP of w_i."""

    quantizers: tuple[bq.Quantization, ...]

    @nn.compact
    def __call__(self, xs: jax.Array) -> jax.Array:
        w = self.param("w", lambda _key, shape: jnp.tile(jnp.asarray(G), (shape[0], 1)), xs.shape)
        return jnp.stack([q(x) for q, x in zip(self.quantizers, xs, strict=True)]) * w


class BankNNX(nnx.Module):
    """NNX twin of :class:`BankLinen`; the quantizers are static attributes."""

    def __init__(self, quantizers: tuple[bq.Quantization, ...]) -> None:
        self.quantizers = quantizers
        self.w = nnx.Param(jnp.tile(jnp.asarray(G), (len(quantizers), 1)))

    def __call__(self, xs: jax.Array) -> jax.Array:
        ys = [q(x) for q, x in zip(self.quantizers, xs, strict=True)]
        return jnp.stack(ys) * self.w[...]


XS = np.tile(X, (len(OBJECTS), 1))  # one row per quantizer: each gets its own gradient


def check_bank(y: Any, g_w: Any, g_x: Any, value: Any = None) -> None:
    for i, ((key, _), orc) in enumerate(zip(QUANTIZERS, ORACLES, strict=True)):
        np.testing.assert_array_equal(np.asarray(y)[i], orc.forward(X) * G, err_msg=key)
        np.testing.assert_array_equal(np.asarray(g_w)[i], orc.forward(X), err_msg=key)
        rel_close(np.asarray(g_x)[i], orc.grad(X, G), key)
    if value is not None:
        want = sum((orc.forward(X) * G).sum() for orc in ORACLES)
        np.testing.assert_allclose(value, want, rtol=1e-5)


def test_linen_module_under_jit_grad_value_and_grad() -> None:
    model = BankLinen(tuple(OBJECTS))
    variables = jax.jit(model.init)(jax.random.key(0), XS)
    assert variables["params"]["w"].shape == XS.shape

    def loss(variables: Any, xs: jax.Array) -> jax.Array:
        return model.apply(variables, xs).sum()

    y = jax.jit(model.apply)(variables, XS)
    value, (g_v, g_x) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(variables, XS)
    check_bank(y, g_v["params"]["w"], g_x, value)
    g_v, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, XS)
    check_bank(y, g_v["params"]["w"], g_x)


def test_nnx_module_under_nnx_jit_and_nnx_grad() -> None:
    model = BankNNX(tuple(OBJECTS))

    def loss(model: BankNNX, xs: jax.Array) -> jax.Array:
        return model(xs).sum()

    y = nnx.jit(lambda m, xs: m(xs))(model, XS)
    grads, g_x = nnx.jit(nnx.grad(loss, argnums=(0, 1)))(model, XS)
    check_bank(y, grads.w[...], g_x)
    value, grads = nnx.jit(nnx.value_and_grad(loss))(model, XS)
    check_bank(y, grads.w[...], g_x, value)


def test_vmap_is_per_example() -> None:
    """Under vmap each example is quantized on its own (WeightDoReFa: per-example max)."""
    batch = np.stack([X, X * 0.5, -X * 0.25]).astype(np.float32)
    cot = np.stack([G, -G, G * 2]).astype(np.float32)

    @jax.jit
    def batched(x: jax.Array, g: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
        out = []
        for q in OBJECTS:
            y, vjp = jax.vjp(jax.vmap(q), x)
            out.append((y, vjp(g)[0]))
        return out

    for (key, _), orc, (y, gx) in zip(QUANTIZERS, ORACLES, batched(batch, cot), strict=True):
        for i in range(batch.shape[0]):
            np.testing.assert_array_equal(y[i], orc.forward(batch[i]), err_msg=key)
            rel_close(gx[i], orc.grad(batch[i], cot[i]), key)


def sequential_expectation(orc: Any, x: np.ndarray, k1: Any, b1: Any, k2: Any) -> tuple:
    """Forward and d(sum)/d(kernel1) of Dense -> q -> Dense, by hand with the oracle."""
    k1, b1, k2 = np.asarray(k1), np.asarray(b1), np.asarray(k2)
    h = (x @ k1 + b1).astype(np.float32)
    y = orc.forward(h) @ k2
    g_h = orc.grad(h, np.ones((x.shape[0], k2.shape[1]), np.float32) @ k2.T)
    return y, x.T @ g_h


SEQ_X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)


def test_linen_sequential() -> None:
    models = [nn.Sequential([nn.Dense(6), q, nn.Dense(2, use_bias=False)]) for q in OBJECTS]
    variables = jax.jit(lambda k, x: [m.init(k, x) for m in models])(jax.random.key(1), SEQ_X)

    @jax.jit
    def run(variables: list, x: jax.Array) -> list:
        return [
            (m.apply(v, x), jax.grad(lambda v, m=m: m.apply(v, x).sum())(v))
            for m, v in zip(models, variables, strict=True)
        ]

    for (key, _), orc, v, (y, grads) in zip(
        QUANTIZERS, ORACLES, variables, run(variables, SEQ_X), strict=True
    ):
        p = v["params"]
        want_y, want_gk1 = sequential_expectation(
            orc, SEQ_X, p["layers_0"]["kernel"], p["layers_0"]["bias"], p["layers_2"]["kernel"]
        )
        np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5, err_msg=key)
        got_gk1 = grads["params"]["layers_0"]["kernel"]
        np.testing.assert_allclose(got_gk1, want_gk1, rtol=1e-4, atol=1e-5, err_msg=key)


def test_nnx_sequential() -> None:
    models = nnx.List(
        [
            nnx.Sequential(
                nnx.Linear(3, 6, rngs=nnx.Rngs(0)),
                q,
                nnx.Linear(6, 2, use_bias=False, rngs=nnx.Rngs(1)),
            )
            for q in OBJECTS
        ]
    )

    @nnx.jit
    def run(models: nnx.List, x: jax.Array) -> list:
        return [(m(x), nnx.grad(lambda m: m(x).sum())(m)) for m in models]

    for (key, _), orc, m, (y, grads) in zip(
        QUANTIZERS, ORACLES, models, run(models, SEQ_X), strict=True
    ):
        lin1, lin2 = m.layers[0], m.layers[2]
        want_y, want_gk1 = sequential_expectation(
            orc, SEQ_X, lin1.kernel[...], lin1.bias[...], lin2.kernel[...]
        )
        np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5, err_msg=key)
        got_gk1 = grads.layers[0].kernel[...]
        np.testing.assert_allclose(got_gk1, want_gk1, rtol=1e-4, atol=1e-5, err_msg=key)


# ----------------------------------------------------------------------------------------
# QActivation: the quantizer after gradient cancellation, linen and NNX

QACT_X = np.array(
    [0.0, -0.0, 0.5, -0.5, 0.49, 1.0, -1.0, 1.3, -1.3, 1.31, 2.0, -5.0, np.nan, np.inf, -np.inf],
    np.float32,
)
QACT_G = np.linspace(0.6, 1.9, QACT_X.size).astype(np.float32) * np.where(
    np.arange(QACT_X.size) % 3 == 0, -1, 1
).astype(np.float32)
ACTIVATIONS = [  # (activation argument, oracle key, oracle params)
    ("sign", "sign", {}),
    ("approxsign", "approxsign", {}),
    ("steheaviside", "steheaviside", {}),
    (bq.SwishSign(beta=2.0), "swishsign", {"beta": 2.0}),
    (bq.InputDoReFa(bits=2), "inputdorefa", {"bits": 2}),
]
THRESHOLDS = [0.0, 0.5, 1.0, 1.3]  # each one is an input value: the test is strict, |x| > t


COMBOS = [(a, k, p, t) for a, k, p in ACTIVATIONS for t in THRESHOLDS]


class QActBank(nnx.Module):
    """Every (activation, threshold) combination as NNX QActivation layers."""

    def __init__(self) -> None:
        self.layers = nnx.List(
            [bnnx.QActivation(a, gradient_cancellation_threshold=t) for a, _, _, t in COMBOS]
        )

    def __call__(self, xs: jax.Array) -> jax.Array:
        return jnp.stack([layer(x) for layer, x in zip(self.layers, xs, strict=True)])


def qactivation_bank(framework: str) -> Callable[[jax.Array], jax.Array]:
    """xs (one row per combination) -> QActivation outputs, linen or NNX, jitted."""
    if framework == "linen":
        modules = [
            blinen.QActivation(a, gradient_cancellation_threshold=t) for a, _, _, t in COMBOS
        ]
        return jax.jit(
            lambda xs: jnp.stack([m.apply({}, x) for m, x in zip(modules, xs, strict=True)])
        )
    bank = QActBank()
    run = nnx.jit(lambda m, xs: m(xs))
    return lambda xs: run(bank, xs)


def expected_qactivation(key: str, params: dict, t: float, x: np.ndarray, g: np.ndarray):
    orc = oracle(key, **params)
    grad = orc.grad(x, g)
    if t > 0:
        with np.errstate(invalid="ignore"):
            grad = np.where(np.abs(x) > t, np.zeros_like(grad), grad)
    return orc.forward(x), grad


def assert_equal_with_nan(got: Any, want: np.ndarray, msg: str = "") -> None:
    got64, want64 = np.asarray(got).astype(np.float64), np.asarray(want).astype(np.float64)
    np.testing.assert_array_equal(got64, want64, err_msg=msg)  # NaN == NaN here


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_qactivation(framework: str) -> None:
    """Quantizer after gradient cancellation: the gradient is zeroed where |x| > t
    (strict: |x| == t passes), t = 0 turns it off; a NaN passes cancellation and then
    follows the quantizer's NaN rule."""
    f = qactivation_bank(framework)
    xs = jnp.tile(jnp.asarray(QACT_X), (len(COMBOS), 1))
    y, vjp = jax.vjp(f, xs)
    (gx,) = vjp(jnp.tile(jnp.asarray(QACT_G), (len(COMBOS), 1)))
    for i, (_, key, params, t) in enumerate(COMBOS):
        want_y, want_g = expected_qactivation(key, params, t, QACT_X, QACT_G)
        msg = f"{key} threshold={t}"
        assert_equal_with_nan(y[i], want_y, msg)
        if key == "swishsign":
            np.testing.assert_allclose(gx[i], want_g, rtol=1e-5, atol=1e-6, err_msg=msg)
        else:
            assert_equal_with_nan(gx[i], want_g, msg)
    # the inputs exercise both sides of every threshold
    for t in THRESHOLDS[1:]:
        assert (np.abs(QACT_X) == t).any() and (np.abs(QACT_X) > t).any()


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_qactivation_threshold_zero_is_off_and_kept(framework: str) -> None:
    """An explicit 0 stays 0 (cancellation off), it is not replaced by a default."""
    if framework == "linen":
        module = blinen.QActivation("sign", gradient_cancellation_threshold=0)
        assert module.gradient_cancellation_threshold == 0
        f = lambda x: module.apply({}, x)  # noqa: E731
    else:
        f = bnnx.QActivation("sign", gradient_cancellation_threshold=0)
        assert f.gradient_cancellation_threshold == 0.0
    g = jax.grad(lambda x: (f(x) * jnp.asarray([2.0, 3.0])).sum())(jnp.asarray([5.0, -100.0]))
    np.testing.assert_array_equal(g, [2.0, 3.0])  # plain STE: nothing cancelled


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_qactivation_keeps_bfloat16(framework: str) -> None:
    if framework == "linen":
        module = blinen.QActivation("approxsign", gradient_cancellation_threshold=0.75)
        f = jax.jit(lambda x: module.apply({}, x))
    else:
        layer = bnnx.QActivation("approxsign", gradient_cancellation_threshold=0.75)
        f = nnx.jit(lambda x: layer(x))
    x = jnp.asarray(QACT_X, jnp.bfloat16)
    y, vjp = jax.vjp(f, x)
    (gx,) = vjp(jnp.asarray(QACT_G, jnp.bfloat16))
    assert y.dtype == gx.dtype == jnp.bfloat16
    xb = np.asarray(x)
    want_y, want_g = expected_qactivation(
        "approxsign", {}, 0.75, xb, QACT_G.astype(ml_dtypes.bfloat16)
    )
    assert_equal_with_nan(y, want_y)
    assert_equal_with_nan(gx, want_g)


def test_qactivation_in_both_sequentials() -> None:
    x = jnp.asarray([[-2.0, 0.5, 1.5]])
    lin = nn.Sequential([blinen.QActivation("sign", gradient_cancellation_threshold=1.0)])
    nx = nnx.Sequential(bnnx.QActivation("sign", gradient_cancellation_threshold=1.0))
    for f in (lambda v: lin.apply({}, v), nx):
        np.testing.assert_array_equal(f(x), [[-1.0, 1.0, 1.0]])
        np.testing.assert_array_equal(jax.grad(lambda v, f=f: f(v).sum())(x), [[0.0, 1.0, 0.0]])


BAD_THRESHOLDS = [
    (-1.0, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    ("1", TypeError),
    (True, TypeError),
    (None, TypeError),
]
BAD_ACTIVATIONS = [("nosuch", ValueError), (3, TypeError), (bq.Sign, TypeError)]


@pytest.mark.parametrize("framework", ["linen", "nnx"])
@pytest.mark.parametrize(
    ("threshold", "exc"), BAD_THRESHOLDS, ids=[repr(t) for t, _ in BAD_THRESHOLDS]
)
def test_qactivation_bad_threshold(framework: str, threshold: Any, exc: type) -> None:
    cls = blinen.QActivation if framework == "linen" else bnnx.QActivation
    with pytest.raises(exc, match="gradient_cancellation_threshold"):
        cls("sign", gradient_cancellation_threshold=threshold)


@pytest.mark.parametrize("framework", ["linen", "nnx"])
@pytest.mark.parametrize(("activation", "exc"), BAD_ACTIVATIONS, ids=["nosuch", "int", "class"])
def test_qactivation_bad_activation(framework: str, activation: Any, exc: type) -> None:
    cls = blinen.QActivation if framework == "linen" else bnnx.QActivation
    with pytest.raises(exc, match="nosuch|QActivation"):
        cls(activation)


def test_qactivation_error_types_match_torch() -> None:
    pytest.importorskip("torch", reason="torch is needed to compare exception types")
    import bitorch.quantizations as tq
    from bitorch.layers.qactivation import QActivation as TorchQActivation

    for threshold, exc in BAD_THRESHOLDS:
        if threshold is None:  # bitorch (as 0.4.1): None reads the layer config's default
            assert TorchQActivation("sign", gradient_cancellation_threshold=None)
            continue
        with pytest.raises(exc, match="gradient_cancellation_threshold"):
            TorchQActivation("sign", gradient_cancellation_threshold=threshold)
    for activation, exc in BAD_ACTIVATIONS:
        if activation is bq.Sign:
            activation = tq.Sign  # the torch twin: a class where an instance is expected
        with pytest.raises(exc):
            TorchQActivation(activation)


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_qactivation_float64(framework: str, x64: None) -> None:
    if framework == "linen":
        module = blinen.QActivation("steheaviside", gradient_cancellation_threshold=0.5)
        f = jax.jit(lambda x: module.apply({}, x))
    else:
        f = nnx.jit(bnnx.QActivation("steheaviside", gradient_cancellation_threshold=0.5))
    x64_x, x64_g = QACT_X.astype(np.float64), QACT_G.astype(np.float64)
    y, vjp = jax.vjp(f, jnp.asarray(x64_x))
    (gx,) = vjp(jnp.asarray(x64_g))
    assert y.dtype == gx.dtype == jnp.float64
    want_y, want_g = expected_qactivation("steheaviside", {}, 0.5, x64_x, x64_g)
    assert_equal_with_nan(y, want_y)
    assert_equal_with_nan(gx, want_g)
