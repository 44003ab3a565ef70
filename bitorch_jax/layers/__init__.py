"""Layers of bitorch_jax: pure functions here, Flax classes in ``linen`` and ``nnx``."""

from bitorch_jax.layers import linen, nnx
from bitorch_jax.layers.qactivation import gradient_cancellation, q_activation

__all__ = ["gradient_cancellation", "q_activation", "linen", "nnx"]
