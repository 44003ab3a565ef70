"""Flax NNX layers of bitorch_jax. The math lives in the pure functions of
:mod:`bitorch_jax.layers`; these modules only hold hyperparameters and parameters."""

from __future__ import annotations

import jax
from flax import nnx

from bitorch_jax.layers.qactivation import check_threshold, q_activation, resolve_quantization
from bitorch_jax.quantizations import Quantization

__all__ = ["QActivation"]


class QActivation(nnx.Module):
    """Quantize the input after gradient cancellation (NNX).

    ``activation`` is a registry name or a quantizer object; the gradient is zeroed where
    ``|x| > gradient_cancellation_threshold`` (``0`` turns cancellation off).

    >>> import jax.numpy as jnp
    >>> QActivation("sign", gradient_cancellation_threshold=1.0)(jnp.array([-2.0, 0.5]))
    Array([-1.,  1.], dtype=float32)
    """

    def __init__(
        self,
        activation: str | Quantization = "sign",
        *,
        gradient_cancellation_threshold: float = 0.0,
    ) -> None:
        self.activation = resolve_quantization(activation, "QActivation")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QActivation"
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_activation(x, self.activation, self.gradient_cancellation_threshold)
