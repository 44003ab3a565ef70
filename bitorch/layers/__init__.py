"""Quantized layers of bitorch (PyTorch reference), with bitorch 0.4.1's public API.

The names and module paths of bitorch 0.4.1's ``bitorch.layers``: ``QActivation``,
``QLinear``/``QLinearBase``, ``QConv1d/2d/3d`` with their ``Base`` and ``_NoAct``
variants (modules ``qconv1d``, ``qconv2d``, ``qconv3d``; the implementation is
:mod:`bitorch.layers.qconv`), ``QEmbedding``, ``QEmbeddingBag``, ``Pact``, ``PadModule``
and the debug layers; ``BEmbedding``/``BEmbeddingBag`` (module ``bembedding``) are
exported here too. Defaults come from :mod:`bitorch.layers.config` (``None`` means the
config value). 0.4.1's runtime-mode machinery (layer registries, layer implementations,
``convert``, ``CustomImplementationMixin``) is not part of this package.
"""

from bitorch.layers import config  # noqa: F401  (0.4.1's bitorch.layers.config)
from bitorch.layers.bembedding import BEmbedding, BEmbeddingBag
from bitorch.layers.debug_layers import (
    InputGraphicalDebug,
    InputPrintDebug,
    ShapePrintDebug,
    WeightGraphicalDebug,
    WeightPrintDebug,
)
from bitorch.layers.pact import Pact
from bitorch.layers.pad import PadModule
from bitorch.layers.qactivation import GradientCancellation, QActivation, gradient_cancellation
from bitorch.layers.qconv import (
    QConv1d,
    QConv1d_NoAct,
    QConv1dBase,
    QConv2d,
    QConv2d_NoAct,
    QConv2dBase,
    QConv3d,
    QConv3d_NoAct,
    QConv3dBase,
)
from bitorch.layers.qembedding import QEmbedding, QEmbeddingBag
from bitorch.layers.qlinear import QLinear, QLinearBase
from bitorch.layers.react import RPReLU, RSign  # ReActNet (not in bitorch 0.4.1)

# bitorch 0.4.1's submodule paths (bitorch.layers.qconv2d, ...)
from bitorch.layers import qconv1d, qconv2d, qconv3d  # noqa: E402,F401,I001  isort: skip

__all__ = [
    "InputGraphicalDebug",
    "InputPrintDebug",
    "WeightGraphicalDebug",
    "WeightPrintDebug",
    "ShapePrintDebug",
    "QActivation",
    "QConv1d",
    "QConv2d",
    "QConv3d",
    "QConv1dBase",
    "QConv2dBase",
    "QConv3dBase",
    "QConv1d_NoAct",
    "QConv2d_NoAct",
    "QConv3d_NoAct",
    "QLinear",
    "QLinearBase",
    "QEmbedding",
    "QEmbeddingBag",
    "Pact",
    "PadModule",
    "BEmbedding",
    "BEmbeddingBag",
    "GradientCancellation",
    "gradient_cancellation",
    # ReActNet's activations (not in bitorch 0.4.1)
    "RSign",
    "RPReLU",
]
