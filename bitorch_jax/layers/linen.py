"""Flax linen layers of bitorch_jax. The math lives in the pure functions of
:mod:`bitorch_jax.layers`; these modules only hold hyperparameters and parameters."""

from __future__ import annotations

import flax.linen as nn
import jax

from bitorch_jax.layers.qactivation import check_threshold, q_activation, resolve_quantization
from bitorch_jax.quantizations import Quantization

__all__ = ["QActivation"]


class QActivation(nn.Module):
    """Quantize the input after gradient cancellation (linen).

    ``activation`` is a registry name or a quantizer object; the gradient is zeroed where
    ``|x| > gradient_cancellation_threshold`` (``0`` turns cancellation off).

    >>> import jax.numpy as jnp
    >>> act = QActivation("sign", gradient_cancellation_threshold=1.0)
    >>> act.apply({}, jnp.array([-2.0, 0.5]))
    Array([-1.,  1.], dtype=float32)
    """

    activation: str | Quantization = "sign"
    gradient_cancellation_threshold: float = 0.0

    def __post_init__(self) -> None:
        check_threshold(self.gradient_cancellation_threshold, "QActivation")
        resolve_quantization(self.activation, "QActivation")
        super().__post_init__()

    def __call__(self, x: jax.Array) -> jax.Array:
        quantization = resolve_quantization(self.activation, "QActivation")
        return q_activation(x, quantization, self.gradient_cancellation_threshold)
