"""``straight_through``, the JAX counterpart of torch's ``STE``: a new quantizer in a few
lines, with and without static arguments, registered and then used by name."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bitorch_jax.quantizations as bq
from bitorch_jax.layers import linen as blinen
from bitorch_jax.layers import nnx as bnnx
from bitorch_jax.quantizations import Quantization, straight_through

X = np.array([-2.0, -0.9, -0.5, -0.0, 0.0, 0.2, 0.5, 0.6, 1.7, np.inf, np.nan], np.float32)
G = np.linspace(-1.7, 2.3, X.size).astype(np.float32)  # non-unit cotangent


def test_readme_example(clean_registry: dict) -> None:
    """The README's example, line for line (keep the two in sync)."""
    # --- README begins
    import dataclasses
    from typing import ClassVar

    import jax
    import jax.numpy as jnp

    from bitorch_jax.layers import nnx as bnnx
    from bitorch_jax.quantizations import (
        Quantization,
        quantization_from_name,
        register_custom_quantization,
        straight_through,
    )

    @straight_through(static_argnums=(1,))
    def ternary(x, threshold):
        """-1, 0 or +1; the gradient passes straight through (dq/dx = 1)."""
        one = jnp.ones((), x.dtype)
        return jnp.where(x > threshold, one, jnp.where(x < -threshold, -one, 0 * one))

    @register_custom_quantization
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Ternary(Quantization):
        name: ClassVar[str] = "ternary"
        bit_width: ClassVar[int] = 2
        threshold: float = 0.5

        def quantize(self, x):
            return ternary(x, self.threshold)

    x = jnp.array([-0.9, -0.1, 0.2, 0.6])
    q = quantization_from_name("ternary")(threshold=0.3)
    print(q(x))  # [-1.  0.  0.  1.]
    print(jax.grad(lambda x: (q(x) * jnp.arange(1.0, 5.0)).sum())(x))  # [1. 2. 3. 4.]
    act = bnnx.QActivation("ternary", gradient_cancellation_threshold=1.0)
    print(act(jnp.array([-2.0, 0.7])))  # [-1.  1.]
    # --- README ends

    np.testing.assert_array_equal(q(x), [-1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(
        jax.grad(lambda x: (q(x) * jnp.arange(1.0, 5.0)).sum())(x), [1.0, 2.0, 3.0, 4.0]
    )
    np.testing.assert_array_equal(act(jnp.array([-2.0, 0.7])), [-1.0, 1.0])
    assert "ternary" in bq.quantization_names() and bq.quantization_from_name("ternary") is Ternary


def test_registry_is_clean_again() -> None:
    """The clean_registry fixture removed what the README example registered."""
    assert "ternary" not in bq.quantization_names() and "floor" not in bq.quantization_names()


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_without_static_arguments(mode: str) -> None:
    @straight_through
    def floor_q(x: jax.Array) -> jax.Array:
        return jnp.floor(x)

    def run(x: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        y, vjp = jax.vjp(floor_q, x)
        return y, vjp(g)[0]

    y, gx = (jax.jit(run) if mode == "jit" else run)(jnp.asarray(X), jnp.asarray(G))
    np.testing.assert_array_equal(y, np.floor(X))  # NaN stays NaN
    np.testing.assert_array_equal(gx, G)  # the cotangent, unchanged, even at inf and NaN
    assert floor_q.__name__ == "floor_q"  # functools.wraps keeps the name


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_with_static_arguments(mode: str) -> None:
    @straight_through(static_argnums=(1,))
    def uniform(x: jax.Array, levels: int) -> jax.Array:
        return jnp.round(jnp.clip(x, -1, 1) * levels) / levels

    def run(x: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        y, vjp = jax.vjp(lambda v: uniform(v, 4), x)
        return y, vjp(g)[0]

    y, gx = (jax.jit(run) if mode == "jit" else run)(jnp.asarray(X), jnp.asarray(G))
    want = np.round(np.clip(X, -1, 1) * 4) / 4
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(gx, G)
    # the static argument is a Python value; a jitted caller passes it with static_argnums
    f = jax.jit(uniform, static_argnums=1)
    np.testing.assert_array_equal(f(jnp.asarray(X), 2), np.round(np.clip(X, -1, 1) * 2) / 2)


def test_traced_extra_arguments_get_no_gradient() -> None:
    @straight_through
    def scaled_round(x: jax.Array, scale: jax.Array) -> jax.Array:
        return jnp.round(x / scale) * scale

    x, scale = jnp.asarray([0.26, -0.74, 1.1]), jnp.float32(0.5)
    g_x, g_scale = jax.jit(jax.grad(lambda x, s: scaled_round(x, s).sum(), argnums=(0, 1)))(
        x, scale
    )
    np.testing.assert_array_equal(g_x, [1.0, 1.0, 1.0])
    assert g_scale == 0.0 and g_scale.dtype == jnp.float32


def test_input_cannot_be_static() -> None:
    with pytest.raises(ValueError, match="argument 0"):
        straight_through(lambda x: x, static_argnums=(0,))


def test_registry_rules(clean_registry: dict) -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Floor(Quantization):
        name: ClassVar[str] = "floor"
        bit_width: ClassVar[int] = 8

        def quantize(self, x: jax.Array) -> jax.Array:
            return straight_through(jnp.floor)(x)

    assert bq.register_custom_quantization(Floor) is Floor
    assert bq.register_custom_quantization(Floor) is Floor  # same class again: fine
    assert bq.quantization_from_name("FLOOR") is Floor

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class OtherFloor(Floor):
        pass

    with pytest.raises(ValueError, match="already registered"):
        bq.register_custom_quantization(OtherFloor)
    with pytest.raises(ValueError, match="already registered"):
        bq.register_custom_quantization(type("NewSign", (Floor,), {"name": "sign"}))
    with pytest.raises(ValueError, match="lower case"):
        bq.register_custom_quantization(type("Upper", (Floor,), {"name": "Upper"}))
    with pytest.raises(ValueError, match="needs a class attribute `name`"):
        bq.register_custom_quantization(type("Nameless", (Quantization,), {}))
    with pytest.raises(TypeError, match="Quantization subclass"):
        bq.register_custom_quantization(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Quantization subclass"):
        bq.register_custom_quantization(Floor())  # type: ignore[arg-type]
    assert bq.quantization_from_name("sign") is bq.Sign  # built-ins untouched

    # used by name in both QActivation layers
    x = jnp.asarray([-1.5, 0.7, 2.5])
    y_linen = blinen.QActivation("floor").apply({}, x)
    y_nnx = nnx.jit(lambda m, v: m(v))(bnnx.QActivation("floor"), x)
    np.testing.assert_array_equal(y_linen, [-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(y_nnx, [-2.0, 0.0, 2.0])
