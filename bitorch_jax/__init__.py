"""bitorch_jax: binary and low-bit quantizers for JAX and Flax, matching bitorch (PyTorch)."""

from bitorch_jax import quantizations

__all__ = ["quantizations"]
__version__ = "0.1.0"
