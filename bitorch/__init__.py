"""bitorch: the PyTorch reference quantizers of bitorch-jax (``bitorch.quantizations``)."""

from bitorch import quantizations

__all__ = ["quantizations"]
__version__ = "0.1.0"
