"""Layers of bitorch_jax: pure functions here, Flax classes in ``linen`` and ``nnx``."""

from bitorch_jax.layers import linen, nnx
from bitorch_jax.layers.qactivation import gradient_cancellation, q_activation
from bitorch_jax.layers.qconv import q_conv
from bitorch_jax.layers.qlinear import q_linear

__all__ = ["gradient_cancellation", "q_activation", "q_conv", "q_linear", "linen", "nnx"]
