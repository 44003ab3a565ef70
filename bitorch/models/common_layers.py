"""Stems shared by the models of the zoo (bitorch 0.4.1's ``bitorch.models.common_layers``).

>>> [type(m).__name__ for m in get_initial_layers("imagenet", 3, 64)]
['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d']
>>> [type(m).__name__ for m in get_initial_layers((32, 32), 3, 64)]
['Conv2d']
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bitorch.layers import PadModule

__all__ = ["IMAGENET_INPUT_SHAPE", "IMAGENET_CLASSES", "get_initial_layers"]

IMAGENET_INPUT_SHAPE = (1, 3, 224, 224)
IMAGENET_CLASSES = 1000


def _bn(channels: int) -> nn.BatchNorm2d:
    # 0.4.1's stems use momentum=0.9 (in torch's convention: 90 % of the batch statistic)
    return nn.BatchNorm2d(channels, momentum=0.9)


def get_initial_layers(variant: Any, input_channels: int, output_channels: int) -> list[nn.Module]:
    """The first layers of a model for ``variant``.

    * ``(224, 224)`` (a tuple, as ``input_shape[-2:]`` gives) or ``"imagenet"``: 7x7 stride-2
      convolution, BatchNorm, ReLU, 3x3 stride-2 max pool;
    * ``"quicknet_stem"``: QuickNet's stem (``output_channels`` divisible by 4);
    * ``"grouped_stem"``: three 3x3 convolutions (the 2nd with 4, the 3rd with 8 groups),
      then BatchNorm, ReLU and max pool as for ImageNet;
    * anything else: one 3x3 convolution with padding 1.

    All convolutions have no bias; the BatchNorms use ``momentum=0.9``.
    """
    layers: list[nn.Module] = []
    imagenet = variant == (224, 224) or variant == "imagenet"
    if imagenet:
        layers.append(
            nn.Conv2d(
                input_channels, output_channels, kernel_size=7, stride=2, padding=3, bias=False
            )
        )
    elif variant == "quicknet_stem":
        if output_channels % 4 != 0:
            raise ValueError(
                f"quicknet_stem: output_channels must be divisible by 4, got {output_channels}"
            )
        stem = output_channels // 4
        layers += [
            PadModule(0, 1, 0, 1),
            nn.Conv2d(input_channels, stem, kernel_size=3, stride=2, bias=False),
            _bn(stem),
            nn.ReLU(),
            PadModule(0, 1, 0, 1),
            nn.Conv2d(stem, stem, kernel_size=3, groups=stem, stride=2, bias=False),
            _bn(stem),
            nn.Conv2d(stem, output_channels, kernel_size=1, bias=False),
            _bn(output_channels),
        ]
    elif variant == "grouped_stem":
        width = output_channels // 2
        layers += [
            nn.Conv2d(input_channels, width, kernel_size=3, stride=2, padding=1, bias=False),
            _bn(width),
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, groups=4, bias=False),
            _bn(width),
            nn.ReLU(),
            nn.Conv2d(
                width, output_channels, kernel_size=3, stride=1, padding=1, groups=8, bias=False
            ),
        ]
    else:
        layers.append(
            nn.Conv2d(input_channels, output_channels, kernel_size=3, padding=1, bias=False)
        )
    if imagenet or variant == "grouped_stem":
        layers += [
            _bn(output_channels),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]
    return layers
