"""Layers of bitorch_jax: pure functions here, Flax classes in ``linen`` and ``nnx``."""

from bitorch_jax.layers import linen, nnx
from bitorch_jax.layers.bembedding import (
    b_embedding,
    b_embedding_bag,
    binary_weight_update,
    decode_binary_weight,
)
from bitorch_jax.layers.pact import q_pact
from bitorch_jax.layers.pad import pad_2d
from bitorch_jax.layers.qactivation import gradient_cancellation, q_activation
from bitorch_jax.layers.qconv import q_conv
from bitorch_jax.layers.qembedding import q_embedding, q_embedding_bag
from bitorch_jax.layers.qlinear import q_linear
from bitorch_jax.layers.react import rprelu, rsign

__all__ = [
    "gradient_cancellation",
    "q_activation",
    "q_conv",
    "q_linear",
    "pad_2d",
    "q_pact",
    "q_embedding",
    "q_embedding_bag",
    "decode_binary_weight",
    "b_embedding",
    "b_embedding_bag",
    "binary_weight_update",
    "rsign",
    "rprelu",
    "linen",
    "nnx",
]
