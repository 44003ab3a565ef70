"""LeNet with binary layers (bitorch 0.4.1's ``bitorch.models.lenet``).

``lenet_version`` chooses the quantizers (input quantization of the ``QConv2d``, its
weight quantization, the ``QActivation`` before the ``QLinear`` and the ``QLinear``'s
weight quantization):

* 0: sign everywhere;
* 1: weightdorefa everywhere;
* 2: convolution weights sign, its inputs weightdorefa; linear weights sign, inputs
  weightdorefa;
* 3: weights sign, inputs weightdorefa (as 2);
* any other value: the full-precision LeNet (no ``ShapePrintDebug``, different layout).

The quantized layout is kept index for index (``_model.4`` is the ``QConv2d``,
``_model.7`` a parameter-free ``ShapePrintDebug``), so 0.4.1 ``state_dict`` keys match.

>>> import torch
>>> LeNet((1, 1, 28, 28), num_classes=10)(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from torch import nn

from bitorch.layers import QActivation, QConv2d, QLinear
from bitorch.layers.debug_layers import ShapePrintDebug
from bitorch.models.base import Model

__all__ = ["LeNet"]

# lenet_version -> (conv weight, conv input, linear weight, linear input) quantization
_VERSIONS = {
    0: ("sign", "sign", "sign", "sign"),
    1: ("weightdorefa", "weightdorefa", "weightdorefa", "weightdorefa"),
    2: ("sign", "weightdorefa", "sign", "weightdorefa"),
    3: ("sign", "weightdorefa", "sign", "weightdorefa"),
}


class LeNet(Model):
    """LeNet for ``input_shape`` (N, C, 28, 28): quantized (``lenet_version`` 0 to 3) or
    full precision (any other version)."""

    num_channels_conv = 64
    activation_function = nn.Tanh
    num_fc = 1000
    name = "LeNet"

    def __init__(
        self, input_shape: Sequence[int], num_classes: int = 0, lenet_version: int = 0
    ) -> None:
        super().__init__(input_shape, num_classes)
        self.input_channels = self._input_shape[1]
        self.num_output = self._num_classes
        if lenet_version in _VERSIONS:
            self._model = self.generate_quant_model(*_VERSIONS[lenet_version])
        else:
            self._model = self._full_precision_model()

    def generate_quant_model(
        self,
        weight_quant: str,
        input_quant: str,
        weight_quant_2: str | None = None,
        input_quant_2: str | None = None,
    ) -> nn.Sequential:
        """The quantized LeNet; ``weight_quant_2``/``input_quant_2`` (default: the first
        ones) are for the linear layer."""
        weight_quant_2 = weight_quant_2 or weight_quant
        input_quant_2 = input_quant_2 or input_quant
        channels, act = self.num_channels_conv, self.activation_function
        return nn.Sequential(
            nn.Conv2d(self.input_channels, channels, kernel_size=5),
            act(),
            nn.MaxPool2d(2, 2),
            nn.BatchNorm2d(channels),
            QConv2d(
                channels,
                channels,
                kernel_size=5,
                input_quantization=input_quant,
                weight_quantization=weight_quant,
            ),
            nn.BatchNorm2d(channels),
            nn.MaxPool2d(2, 2),
            ShapePrintDebug(),
            nn.Flatten(),
            QActivation(activation=input_quant_2),
            QLinear(channels * 4 * 4, self.num_fc, weight_quantization=weight_quant_2),
            nn.BatchNorm1d(self.num_fc),
            act(),
            nn.Linear(self.num_fc, self.num_output),
        )

    def _full_precision_model(self) -> nn.Sequential:
        channels, act = self.num_channels_conv, self.activation_function
        return nn.Sequential(
            nn.Conv2d(self.input_channels, channels, kernel_size=5),
            nn.BatchNorm2d(channels),
            act(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(channels, channels, kernel_size=5),
            nn.BatchNorm2d(channels),
            act(),
            nn.MaxPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(channels * 4 * 4, self.num_fc),
            nn.BatchNorm1d(self.num_fc),
            act(),
            nn.Linear(self.num_fc, self.num_output),
        )

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        """``--version`` (the ``lenet_version``, default 0)."""
        parser.add_argument("--version", type=int, default=0, help="choose a version of lenet")
