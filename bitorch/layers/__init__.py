"""Quantized layers of bitorch (PyTorch reference)."""

from bitorch.layers.qactivation import GradientCancellation, QActivation, gradient_cancellation

__all__ = ["GradientCancellation", "QActivation", "gradient_cancellation"]
