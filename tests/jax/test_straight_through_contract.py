"""``straight_through`` checks its stated contract: ``forward`` returns an array of the
shape and dtype of its input, and a violation is named when the function is traced."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bitorch_jax.quantizations import straight_through

X16 = jnp.array([-1.5, 0.0, 0.25, 2.0], jnp.bfloat16)


@straight_through
def sign_in_float32(x: jax.Array) -> jax.Array:
    return jnp.sign(x).astype(jnp.float32)


@straight_through
def sign_as_column(x: jax.Array) -> jax.Array:
    return jnp.sign(x)[:, None]


@straight_through(static_argnums=(1,))
def summed_levels(x: jax.Array, levels: int) -> jax.Array:
    return jnp.round(x * levels).sum() / levels


MODES: dict[str, Callable[[Callable, jax.Array], object]] = {
    "eager": lambda f, x: f(x),
    "jit": lambda f, x: jax.jit(f)(x),
    "grad": lambda f, x: jax.grad(lambda v: f(v).astype(jnp.float32).sum())(x),
    "vjp": lambda f, x: jax.vjp(f, x),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_wrong_dtype_is_a_type_error(mode: str) -> None:
    with pytest.raises(TypeError) as info:
        MODES[mode](sign_in_float32, X16)
    message = str(info.value)
    assert message.startswith("straight_through: sign_in_float32 returned dtype float32")
    assert "input of dtype bfloat16" in message and ".astype(x.dtype)" in message


@pytest.mark.parametrize("mode", list(MODES))
def test_wrong_shape_is_a_value_error(mode: str) -> None:
    with pytest.raises(ValueError) as info:
        MODES[mode](sign_as_column, X16)
    message = str(info.value)
    assert message.startswith("straight_through: sign_as_column returned shape (4, 1)")
    assert "input of shape (4,)" in message


def test_wrong_shape_with_static_arguments() -> None:
    x = jnp.array([0.2, 0.7], jnp.float32)
    with pytest.raises(ValueError, match=r"summed_levels returned shape \(\) .* shape \(2,\)"):
        jax.jit(summed_levels, static_argnums=1)(x, 4)


def test_not_an_array_is_a_type_error() -> None:
    def pair(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return x, x

    with pytest.raises(TypeError, match="pair must return an array"):
        straight_through(pair)(X16)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_a_conforming_forward_is_unchanged(dtype: jnp.dtype) -> None:
    @straight_through
    def sign_q(x: jax.Array) -> jax.Array:
        return jnp.sign(x).astype(x.dtype)

    x = X16.astype(dtype)
    y, grad = jax.jit(jax.value_and_grad(lambda v: sign_q(v).astype(jnp.float32).sum()))(x)
    assert grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_array_equal(np.asarray(grad, np.float32), np.ones(4, np.float32))
    assert float(y) == float(np.sign(np.asarray(x, np.float32)).sum())
    assert straight_through(jnp.floor)(0.5) == 0.0  # a Python float input
