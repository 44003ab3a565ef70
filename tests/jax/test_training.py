"""A small binarized MLP trains with optax, once in linen and once in NNX.

Data: a synthetic 10-class problem (noisy prototypes), made with NumPy. The hidden
activations are quantized by QActivation, so the first layer learns only through the
quantizer's surrogate gradient; the tests check that it does (its kernel moves) and that
the loss falls by a clear margin in a few full-batch Adam steps.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bitorch_jax.layers import linen as blinen
from bitorch_jax.layers import nnx as bnnx
from bitorch_jax.quantizations import InputDoReFa

STEPS = 20
HIDDEN = 32
LEARNING_RATE = 1e-2


@pytest.fixture(scope="module")
def data() -> tuple[jax.Array, jax.Array]:
    """256 noisy samples of 10 random prototype vectors in 64 dimensions (10 classes)."""
    rng = np.random.default_rng(0)
    prototypes = rng.normal(size=(10, 64))
    labels = rng.integers(0, 10, 256)
    x = prototypes[labels] + 0.8 * rng.normal(size=(256, 64))
    return jnp.asarray(x.astype(np.float32)), jnp.asarray(labels)


def initial_weights() -> dict[str, np.ndarray]:
    """LeCun-normal kernels and zero biases from NumPy (compiling JAX's RNG costs more
    than the training itself); the same start for both frameworks."""
    rng = np.random.default_rng(0)
    return {
        "k1": (rng.normal(size=(64, HIDDEN)) / 8.0).astype(np.float32),
        "k2": (rng.normal(size=(HIDDEN, 10)) / np.sqrt(HIDDEN)).astype(np.float32),
    }


def constant_init(value: np.ndarray):
    def init(key: jax.Array, shape: tuple, dtype: jnp.dtype = jnp.float32) -> jax.Array:
        assert tuple(shape) == value.shape
        return jnp.asarray(value, dtype)

    return init


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(HIDDEN)(x)
        x = blinen.QActivation("sign", gradient_cancellation_threshold=1.3)(x)
        return nn.Dense(10)(x)


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        w = initial_weights()
        self.hidden = nnx.Linear(64, HIDDEN, kernel_init=constant_init(w["k1"]), rngs=rngs)
        self.act = bnnx.QActivation(InputDoReFa(bits=2), gradient_cancellation_threshold=1.5)
        self.out = nnx.Linear(HIDDEN, 10, kernel_init=constant_init(w["k2"]), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.act(self.hidden(x)))


def check_training(losses: list[float], kernel_before: np.ndarray, kernel_after: np.ndarray):
    print(f"loss {losses[0]:.3f} at step 1 -> {losses[-1]:.3f} at step {len(losses)}")
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
    # the first layer sits before the quantizer: it moves only if the STE gradient flows
    moved = np.abs(kernel_after - kernel_before).max()
    assert moved > 10 * LEARNING_RATE, f"first-layer kernel moved by only {moved}"


def test_linen_mlp_trains(data: tuple[jax.Array, jax.Array]) -> None:
    x, y = data
    model = LinenMLP()
    w = initial_weights()
    params = {
        "Dense_0": {"kernel": jnp.asarray(w["k1"]), "bias": jnp.zeros(HIDDEN)},
        "Dense_1": {"kernel": jnp.asarray(w["k2"]), "bias": jnp.zeros(10)},
    }
    tx = optax.adam(LEARNING_RATE)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(model.apply({"params": p}, x), y))(
            params
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    kernel_before = np.asarray(params["Dense_0"]["kernel"])
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(params, opt_state, x, y)
        losses.append(float(loss))
    check_training(losses, kernel_before, np.asarray(params["Dense_0"]["kernel"]))


def test_nnx_mlp_trains(data: tuple[jax.Array, jax.Array]) -> None:
    x, y = data
    model = NNXMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)

    @nnx.jit
    def step(model: NNXMLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: cross_entropy(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    kernel_before = np.asarray(model.hidden.kernel[...])
    losses = [float(step(model, optimizer, x, y)) for _ in range(STEPS)]
    check_training(losses, kernel_before, np.asarray(model.hidden.kernel[...]))
