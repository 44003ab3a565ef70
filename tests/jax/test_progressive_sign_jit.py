"""An annealed ProgressiveSign scale compiles once under jit (bitorch_jax).

The scale of ``progressive_sign`` is an ordinary array argument, not a static one: a
jitted training step whose scale changes every call is traced and compiled once. Shown
with ``jax.jit`` + optax (functional form, the scale an argument of the step) and with
``nnx.jit`` (object form, the scale held in an ``nnx.Variable`` of the model). Each test
counts traces with a Python counter incremented inside the traced function (it runs only
while tracing) and reads the jit cache size, and checks that the outputs do change with
the scale. Also: ``training`` is static, a traced scale agrees with the concrete one
within a few ulps, and the scheduler's traced factor compiles once as well.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import bitorch_jax.quantizations as bq

STEPS = 10
SCALES = [float(s) for s in np.linspace(0.0, 0.9, STEPS)]  # 10 different scales


def data() -> tuple[jax.Array, jax.Array, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = np.sign(rng.normal(size=(32, 4))).astype(np.float32)
    w = (0.05 * rng.normal(size=(8, 4))).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y), w


def test_jax_jit_training_loop_with_a_changing_scale_compiles_once():
    x, y, w0 = data()
    optimizer = optax.sgd(0.05)
    traces = []

    @jax.jit
    def train_step(w, opt_state, scale):
        traces.append(scale)  # runs only while tracing

        def loss_fn(w):
            out = bq.progressive_sign(x @ w, scale, training=True, alpha=2.0, beta=3.0)
            return jnp.mean((out - y) ** 2), out

        (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(w)
        updates, opt_state = optimizer.update(grads, opt_state, w)
        return optax.apply_updates(w, updates), opt_state, loss, out

    w, opt_state = jnp.asarray(w0), optimizer.init(jnp.asarray(w0))
    outputs, weights = [], []
    for scale in SCALES:
        w, opt_state, loss, out = train_step(w, opt_state, scale)
        outputs.append(np.asarray(out))
        weights.append(np.asarray(w))
        assert np.isfinite(float(loss))

    assert len(traces) == 1, f"traced {len(traces)} times for {STEPS} scales"
    assert train_step._cache_size() == 1
    assert isinstance(traces[0], jax.core.Tracer)  # the scale was traced, not baked in
    # The outputs change every step, and the weights train (straight-through gradient).
    for a, b in zip(outputs, outputs[1:], strict=False):
        assert not np.array_equal(a, b)
    assert not np.array_equal(weights[0], weights[-1])

    # With the weights held fixed, the scale alone changes the output, which sharpens.
    probe = jax.jit(lambda s: bq.progressive_sign(x @ jnp.asarray(w0), s, alpha=2.0, beta=3.0))
    sharpness = [float(jnp.mean(jnp.abs(probe(s)))) for s in SCALES]
    assert probe._cache_size() == 1
    assert all(a < b for a, b in zip(sharpness, sharpness[1:], strict=False)), sharpness


class Annealed(nnx.Module):
    """A linear layer quantized by ProgressiveSign whose scale is model state."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.linear = nnx.Linear(8, 4, rngs=rngs)
        self.quantize = bq.ProgressiveSign(
            use_global_scaling=False, initial_scale=0.0, alpha=2.0, beta=3.0
        )
        self.scale = nnx.Variable(jnp.asarray(0.0))  # state: traced by nnx.jit

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.quantize(self.linear(x), scale=self.scale[...])


def test_nnx_jit_training_loop_with_the_scale_in_a_variable_compiles_once():
    x, y, _ = data()
    model = Annealed(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.05), wrt=nnx.Param)
    traces = []

    @nnx.jit
    def train_step(model: Annealed, optimizer: nnx.Optimizer, x, y):
        traces.append(1)
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    outputs = []
    for scale in SCALES:
        model.scale[...] = jnp.asarray(scale)
        train_step(model, optimizer, x, y)
        outputs.append(np.asarray(nnx.jit(lambda m: m(x))(model)))

    assert len(traces) == 1, f"traced {len(traces)} times for {STEPS} scales"
    for a, b in zip(outputs, outputs[1:], strict=False):
        assert not np.array_equal(a, b)
    assert float(model.scale[...]) == np.float32(SCALES[-1])


def test_training_is_static_and_the_object_form_accepts_a_traced_scale():
    x = jnp.linspace(-0.05, 0.05, 11)
    with pytest.raises(TypeError, match="training must be a Python bool"):
        jax.jit(lambda x, t: bq.progressive_sign(x, 0.5, training=t))(x, True)
    both = jax.jit(bq.progressive_sign, static_argnames="training")
    np.testing.assert_array_equal(both(x, 0.5, training=False), bq.sign(x))
    assert not np.array_equal(both(x, 0.5, training=True), bq.sign(x))
    q = bq.ProgressiveSign(use_global_scaling=False, initial_scale=0.0, alpha=2.0, beta=3.0)
    f = jax.jit(lambda x, s: q(x, scale=s))
    values = {float(f(x, s)[6]) for s in SCALES}
    assert len(values) == STEPS and f._cache_size() == 1


def test_traced_scale_agrees_with_the_concrete_one_within_a_few_ulps():
    # Concrete: Python float64 temperature, rounded once (bit-equal to torch). Traced:
    # alpha**(-beta*s) in float32 on the device, where the rounding of the exponent is
    # magnified by |beta*s*ln(alpha)| (measured: at most 6 ulps for alpha=3, beta=7).
    x = jnp.asarray(np.random.default_rng(1).uniform(-0.02, 0.02, 4096).astype(np.float32))
    traced = jax.jit(lambda x, s: bq.progressive_sign(x, s, alpha=3.0, beta=7.0))
    for s in (*SCALES, 1.0):
        concrete = np.asarray(bq.progressive_sign(x, s, alpha=3.0, beta=7.0))
        bound = int(np.ceil(7.0 * s * np.log(3.0))) + 2
        np.testing.assert_array_max_ulp(np.asarray(traced(x, s)), concrete, maxulp=bound)
    assert traced._cache_size() == 1
    # A traced custom transform works too (called with the traced scale).
    custom = jax.jit(lambda x, s: bq.progressive_sign(x, s, custom_transform=lambda t: 0.5 * t))
    np.testing.assert_array_max_ulp(
        np.asarray(custom(x, 0.6)), np.asarray(x / np.float32(0.7)).clip(-1, 1), maxulp=2
    )


def test_traced_scheduling_factor_compiles_once():
    x = jnp.linspace(-1.5, 1.5, 13)
    qs = (bq.Identity(), bq.InputDoReFa(bits=2), bq.Sign())
    for fn in (bq.mix_linear_scheduling, bq.step_scheduling):
        step = jax.jit(lambda x, f, fn=fn: fn(x, qs, f))
        outputs = [np.asarray(step(x, f)) for f in np.linspace(0.0, 1.0, 9)]
        assert step._cache_size() == 1
        assert len({o.tobytes() for o in outputs}) > 2
        for f, out in zip(np.linspace(0.0, 1.0, 9), outputs, strict=True):
            np.testing.assert_allclose(out, fn(x, qs, float(f)), rtol=0, atol=1e-6)
    factor = jax.jit(lambda k: bq.schedule_factor(k, 4))
    assert [float(factor(k)) for k in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
