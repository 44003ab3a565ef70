"""bitorch_jax.optim: Bop, the binary labels, Bop with Adam, latent-weight clipping.

Bit equality with the torch reference is in ``parity_tests/test_optim_parity.py``; these
are the rules of the optax side on its own.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bitorch_jax.layers import linen as qlinen
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.optim import (
    BINARY,
    OTHER,
    BopState,
    binarize,
    binary_init,
    binary_labels,
    binary_mask,
    binary_optimizer,
    binary_paths,
    bop,
    clip_latent_weights,
    clip_params,
)
from bitorch_jax.quantizations import WeightDoReFa

# --------------------------------------------------------------------------- Bop


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"threshold": -1e-8}, ValueError),
        ({"threshold": float("nan")}, ValueError),
        ({"threshold": float("inf")}, ValueError),
        ({"threshold": True}, TypeError),
        ({"threshold": "1e-8"}, TypeError),
        ({"gamma": 0.0}, ValueError),
        ({"gamma": 1.5}, ValueError),
        ({"gamma": float("nan")}, ValueError),
        ({"gamma": None}, TypeError),
    ],
)
def test_bop_refuses_bad_hyperparameters(kwargs: dict, error: type) -> None:
    name = next(iter(kwargs))
    with pytest.raises(error, match=f"bop: {name}"):
        bop(**kwargs)


def test_bop_hyperparameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        bop(1e-8, 1e-4)  # type: ignore[misc]


def test_bop_accepts_numpy_scalars_and_the_extremes() -> None:
    bop(threshold=np.float32(0.0), gamma=np.float64(1.0))


def test_bop_needs_params() -> None:
    tx = bop()
    w = jnp.ones(3)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(jnp.ones(3), tx.init(w))


def test_bop_step_by_hand() -> None:
    """m = 0.5 * 0 + 0.5 * g; flip where |m| > 0.25 and the signs agree (strictly)."""
    tx = bop(threshold=0.25, gamma=0.5)
    w = jnp.array([1.0, 1.0, -1.0, -1.0, 1.0, -1.0])
    g = jnp.array([1.0, 0.5, -1.0, 1.0, -2.0, 0.0])
    updates, state = tx.update(g, tx.init(w), w)
    np.testing.assert_array_equal(state.momentum, [0.5, 0.25, -0.5, 0.5, -1.0, 0.0])
    # |m| = 0.25 is not > 0.25; m = 0 never flips; disagreeing signs never flip.
    np.testing.assert_array_equal(optax.apply_updates(w, updates), [-1, 1, 1, -1, 1, -1])
    np.testing.assert_array_equal(updates, [-2, 0, 2, 0, 0, 0])


def test_bop_keeps_weights_exactly_pm1_and_dtypes(x64: None) -> None:
    rng = np.random.default_rng(0)
    for dt in (jnp.float32, jnp.float64, jnp.bfloat16):
        tx = jax.jit(bop(threshold=1e-3, gamma=0.2).update)
        params = {"a": jnp.asarray(rng.choice([-1.0, 1.0], (5, 4)), dt), "b": jnp.ones(3, dt)}
        state = bop().init(params)
        for _ in range(10):
            grads = jax.tree.map(
                lambda p, dt=dt: jnp.asarray(rng.standard_normal(p.shape), dt), params
            )
            updates, state = tx(grads, state, params)
            params = optax.apply_updates(params, updates)
        for leaf, m in zip(jax.tree.leaves(params), jax.tree.leaves(state.momentum), strict=True):
            assert leaf.dtype == dt and m.dtype == dt
            assert bool(jnp.all(jnp.abs(leaf) == 1))


def test_bop_jit_equals_eager() -> None:
    rng = np.random.default_rng(1)
    tx = bop(threshold=1e-3, gamma=0.3)
    w = jnp.asarray(rng.choice([-1.0, 1.0], (64,)), jnp.float32)
    g = jnp.asarray(rng.standard_normal(64) * 0.01, jnp.float32)
    state = tx.init(w)
    eager = tx.update(g, state, w)
    jitted = jax.jit(tx.update)(g, state, w)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bop_momentum_follows_the_gradient_average() -> None:
    """A constant gradient: m_t = 1 - (1 - gamma)^t times it (geometric series)."""
    tx = bop(threshold=1e9, gamma=0.25)  # no flips
    w = jnp.ones(1)
    state = tx.init(w)
    for t in range(1, 6):
        _, state = tx.update(jnp.array([2.0]), state, w)
        np.testing.assert_allclose(state.momentum, [2.0 * (1 - 0.75**t)], rtol=1e-6)


def test_binarize_and_binary_init() -> None:
    np.testing.assert_array_equal(
        binarize(jnp.array([-2.0, -0.0, 0.0, 1e-30, 3.0])), [-1, 1, 1, 1, 1]
    )
    kernel = binary_init()(jax.random.key(0), (16, 8), jnp.float32)
    assert kernel.dtype == jnp.float32 and kernel.shape == (16, 8)
    values = set(np.unique(np.asarray(kernel)).tolist())
    assert values == {-1.0, 1.0}


# --------------------------------------------------------------------------- labels


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = qnnx.QConv(3, 4, (3, 3), padding=1, kernel_init=binary_init(), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.blocks = nnx.List(
            [
                qnnx.QLinear(64, 8, kernel_init=binary_init(), rngs=rngs),
                qnnx.QLinear(8, 8, weight_quantization="identity", rngs=rngs),
                qnnx.QLinear(8, 8, weight_quantization=WeightDoReFa(bits=2), rngs=rngs),
            ]
        )
        self.head = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x)).reshape(x.shape[0], -1)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = qlinen.QConv(4, (3, 3), padding=1, kernel_init=binary_init())(x)
        x = nn.BatchNorm(use_running_average=False)(x).reshape(x.shape[0], -1)
        x = qlinen.QDense(8, kernel_init=binary_init(), name="binary_dense")(x)
        x = qlinen.QDense(8, weight_quantization="identity")(x)
        return nn.Dense(2)(x)


X = jnp.ones((2, 4, 4, 3))


def test_binary_paths_nnx() -> None:
    """Only 1-bit weight quantizers: identity (32) and weightdorefa (2 bits) are not."""
    assert binary_paths(NNXNet(nnx.Rngs(0))) == {("conv", "kernel"), ("blocks", "0", "kernel")}


def test_binary_paths_linen() -> None:
    assert binary_paths(LinenNet(), X) == {("QConv_0", "kernel"), ("binary_dense", "kernel")}


def test_binary_paths_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError, match="needs example inputs"):
        binary_paths(LinenNet())
    with pytest.raises(TypeError, match="needs no example inputs"):
        binary_paths(NNXNet(nnx.Rngs(0)), X)
    with pytest.raises(TypeError, match="flax.nnx.Module or a flax.linen.Module"):
        binary_paths({"kernel": jnp.ones(2)})


def test_binary_labels_and_mask_on_nnx_state_and_linen_params() -> None:
    model = NNXNet(nnx.Rngs(0))
    labels = binary_labels(model)(nnx.as_pure(nnx.state(model, nnx.Param)))
    assert labels["conv"]["kernel"] == BINARY and labels["head"]["kernel"] == OTHER
    assert labels["blocks"][0]["kernel"] == BINARY and labels["blocks"][1]["kernel"] == OTHER
    params = LinenNet().init(jax.random.key(0), X)["params"]
    mask = binary_mask(LinenNet(), X)(params)
    assert mask["binary_dense"]["kernel"] is True and mask["binary_dense"]["bias"] is False
    assert mask["Dense_0"]["kernel"] is False


def test_binary_labels_refuse_params_without_the_binary_kernels() -> None:
    variables = LinenNet().init(jax.random.key(0), X)
    with pytest.raises(ValueError, match=r"variables\['params'\]"):
        binary_labels(LinenNet(), X)(variables)  # the whole variables, not ["params"]


def test_binary_optimizer_trains_nnx_binary_kernels_with_bop_and_the_rest_with_adam() -> None:
    model = NNXNet(nnx.Rngs(0))
    before = nnx.clone(model)
    optimizer = nnx.Optimizer(
        model,
        binary_optimizer(model, other=optax.adam(1e-2), bop=bop(threshold=0.0, gamma=0.5)),
        wrt=nnx.Param,
    )
    x = jax.random.normal(jax.random.key(1), X.shape)

    @nnx.jit
    def step(model: NNXNet, optimizer: nnx.Optimizer) -> None:
        grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
        optimizer.update(model, grads)

    for _ in range(3):
        step(model, optimizer)
    for kernel in (model.conv.kernel[...], model.blocks[0].kernel[...]):
        assert bool(jnp.all(jnp.abs(kernel) == 1))
    assert bool(jnp.any(model.conv.kernel[...] != before.conv.kernel[...])), "Bop flipped none"
    # Adam moved the full-precision weights off their initial values.
    assert not np.array_equal(model.head.kernel[...], before.head.kernel[...])
    assert not np.array_equal(model.blocks[1].kernel[...], before.blocks[1].kernel[...])
    states = jax.tree.leaves(
        nnx.as_pure(optimizer.opt_state), is_leaf=lambda s: isinstance(s, BopState)
    )
    (bop_state,) = [s for s in states if isinstance(s, BopState)]
    assert bop_state.momentum["conv"]["kernel"].shape == (3, 3, 3, 4)


def test_binary_optimizer_with_linen_params() -> None:
    module = LinenNet()
    variables = module.init(jax.random.key(0), X)
    params, batch_stats = variables["params"], variables["batch_stats"]
    tx = binary_optimizer(
        binary_labels(module, X), other=optax.adam(1e-2), bop=bop(threshold=0.0, gamma=0.5)
    )
    state = tx.init(params)
    x = jax.random.normal(jax.random.key(1), X.shape)

    def loss(params: dict) -> jax.Array:
        out, _ = module.apply(
            {"params": params, "batch_stats": batch_stats}, x, mutable=["batch_stats"]
        )
        return jnp.sum(out**2)

    new = params
    for _ in range(3):
        updates, state = tx.update(jax.grad(loss)(new), state, new)
        new = optax.apply_updates(new, updates)
    assert bool(jnp.all(jnp.abs(new["binary_dense"]["kernel"]) == 1))
    assert bool(jnp.any(new["binary_dense"]["kernel"] != params["binary_dense"]["kernel"]))
    assert not np.array_equal(new["Dense_0"]["kernel"], params["Dense_0"]["kernel"])


def test_binary_optimizer_refuses_bad_arguments() -> None:
    model = NNXNet(nnx.Rngs(0))
    with pytest.raises(TypeError, match="other must be an optax.GradientTransformation"):
        binary_optimizer(model, other=optax.adam)  # the factory, not a transformation
    with pytest.raises(TypeError, match="bop must be"):
        binary_optimizer(model, other=optax.adam(1e-3), bop="bop")
    with pytest.raises(TypeError, match="binary_labels\\(module, \\*example_inputs\\)"):
        binary_optimizer(LinenNet(), other=optax.adam(1e-3))
    with pytest.raises(TypeError):
        binary_optimizer(model, optax.adam(1e-3))  # type: ignore[misc]


# --------------------------------------------------------------------------- clipping


@pytest.mark.parametrize(
    "value, error",
    [(0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError), (True, TypeError)],
)
def test_clip_refuses_bad_clip_values(value: float, error: type) -> None:
    with pytest.raises(error, match="clip_value"):
        clip_latent_weights(clip_value=value)
    with pytest.raises(error, match="clip_value"):
        clip_params(jnp.ones(2), clip_value=value)


def test_clip_latent_weights_needs_params() -> None:
    tx = clip_latent_weights()
    with pytest.raises(ValueError, match="needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_clip_keeps_in_range_updates_bit_for_bit() -> None:
    tx = clip_latent_weights(clip_value=1.0)
    p = jnp.array([0.1, -0.3, 0.9, 0.5])
    u = jnp.array([0.123456789, -0.7, 0.0999999, jnp.nan])
    out, _ = tx.update(u, tx.init(p), p)
    np.testing.assert_array_equal(out[:3], u[:3])
    assert bool(jnp.isnan(out[3])), "a NaN update stays NaN (not clipped away)"


@pytest.mark.parametrize("clip_value", [1.0, 0.3, 2.5, 1e-3])
def test_clip_never_leaves_the_bound_and_is_exact_near_it(x64: None, clip_value: float) -> None:
    """Random far jumps: inside ``[-c, c]`` always; exactly ``±c`` when ``p`` was within a
    factor 2 of the bound (Sterbenz); within one ulp of the bound otherwise."""
    rng = np.random.default_rng(2)
    for dt in (np.float32, np.float64):
        c = dt(clip_value)
        p = (rng.uniform(-1, 1, 20000) * clip_value * 2).astype(dt)
        u = (rng.standard_normal(20000) * clip_value * 3).astype(dt)
        tx = jax.jit(clip_latent_weights(clip_value=clip_value).update)
        out, _ = tx(jnp.asarray(u), optax.EmptyState(), jnp.asarray(p))
        new = np.asarray(optax.apply_updates(jnp.asarray(p), out))
        assert new.dtype == dt and np.all(np.abs(new) <= c)
        exact = np.clip(p + u, -c, c)
        assert np.all(np.abs(new - exact) <= np.spacing(c))
        near = (np.abs(p) >= c / 2) & (np.abs(p) <= 2 * c) & (np.sign(p) == np.sign(exact))
        assert np.array_equal(new[near], exact[near])
        assert np.mean(new == exact) > 0.5


def test_clip_latent_weights_with_a_binary_mask() -> None:
    model = NNXNet(nnx.Rngs(0))
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    tx = optax.chain(optax.sgd(10.0), clip_latent_weights(clip_value=0.5, mask=binary_mask(model)))
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(new["conv"]["kernel"], -0.5)
    assert float(jnp.min(new["head"]["kernel"])) < -9, "the unmasked head must not be clipped"


def test_clip_params_is_jnp_clip_where_masked() -> None:
    rng = np.random.default_rng(3)
    params = {"k": jnp.asarray(rng.standard_normal(50) * 3), "b": jnp.asarray([5.0, -7.0])}
    out = clip_params(params, clip_value=1.5, mask=lambda p: {"k": True, "b": False})
    np.testing.assert_array_equal(out["k"], jnp.clip(params["k"], -1.5, 1.5))
    np.testing.assert_array_equal(out["b"], params["b"])
    np.testing.assert_array_equal(clip_params(params)["b"], [1.0, -1.0])
