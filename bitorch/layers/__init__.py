"""Quantized layers of bitorch (PyTorch reference)."""

from bitorch.layers.qactivation import GradientCancellation, QActivation, gradient_cancellation
from bitorch.layers.qconv import QConv1d, QConv2d, QConv3d
from bitorch.layers.qlinear import QLinear

__all__ = [
    "GradientCancellation",
    "QActivation",
    "QConv1d",
    "QConv2d",
    "QConv3d",
    "QLinear",
    "gradient_cancellation",
]
