"""ResNet-E (bitorch 0.4.1's ``bitorch.models.resnet_e``).

The binary ResNet of "Back to Simplicity: How to Train Accurate BNNs from Scratch?"
(https://arxiv.org/abs/1906.08637): every basic block is one 3x3 ``QConv2d`` with
BatchNorm plus a shortcut; a block that changes the channel count uses stride 2 and a
full-precision shortcut (2x2 average pool, 1x1 convolution, BatchNorm). Each stage has
twice as many blocks as the ResNet stage it replaces. Laid out as in 0.4.1
(``_model.features.*``, ``_model.output_layer``), so its ``state_dict`` keys match.

>>> import torch
>>> ResnetE18((1, 3, 32, 32), num_classes=10)(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bitorch.layers import QConv2d
from bitorch.models.base import Model, NoArgparseArgsMixin
from bitorch.models.common_layers import get_initial_layers

__all__ = ["BasicBlock", "SpecificResnetE", "ResnetE", "ResnetE18", "ResnetE34"]


class BasicBlock(nn.Module):
    """ResNet-E block: ``body(x) + shortcut(x)``; ``stride=-1`` means 2 when the channel
    count changes, else 1. ``activation`` exists (as in 0.4.1) but is not applied."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = -1) -> None:
        super().__init__()
        if isinstance(stride, bool) or not isinstance(stride, int):
            raise TypeError(f"BasicBlock: stride must be an int, got {stride!r}")
        if stride != -1 and stride <= 0:
            raise ValueError(f"BasicBlock: stride must be -1 (automatic) or positive, got {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.shall_downsample = in_channels != out_channels
        if stride == -1:
            stride = 2 if self.shall_downsample else 1
        self.stride = stride
        self.downsample = self._build_downsampling() if self.shall_downsample else nn.Module()
        self.body = self._build_body()
        self.activation = nn.ReLU()

    def _build_downsampling(self) -> nn.Sequential:
        # full-precision shortcut
        return nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=self.stride),
            nn.Conv2d(self.in_channels, self.out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(self.out_channels, momentum=0.9),
        )

    def _build_body(self) -> nn.Sequential:
        return nn.Sequential(
            QConv2d(
                self.in_channels,
                self.out_channels,
                kernel_size=3,
                stride=self.stride,
                padding=1,
                bias=False,
            ),
            nn.BatchNorm2d(self.out_channels, momentum=0.9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x) if self.shall_downsample else x
        return self.body(x) + residual


class SpecificResnetE(nn.Module):
    """The network: ``features`` (stem, stages, ReLU, global average pool, flatten) and
    ``output_layer`` (a Linear).

    ``layers``: blocks per stage (each doubled, see the module docstring); ``channels``:
    one more entry than ``layers`` (stem width, then each stage's width);
    ``image_resolution``: the stem variant of
    :func:`bitorch.models.common_layers.get_initial_layers`.
    """

    def __init__(
        self,
        layers: Sequence[int],
        channels: Sequence[int],
        classes: int,
        image_resolution: Any = None,
        image_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(channels) != len(layers) + 1:
            raise ValueError(
                f"the len of channels ({len(channels)}) must be exactly the len of layers "
                f"({len(layers)}) + 1!"
            )
        features: list[nn.Module] = list(
            get_initial_layers(image_resolution, image_channels, channels[0])
        )
        features.append(nn.BatchNorm2d(channels[0], momentum=0.9))
        for idx, num_blocks in enumerate(layers):
            features.append(self.make_layer(num_blocks, channels[idx], channels[idx + 1]))
        features += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*features)
        self.output_layer = nn.Linear(channels[-1], classes)

    @staticmethod
    def make_layer(
        num_blocks: int, in_channels: int, out_channels: int, stride: int = -1
    ) -> nn.Sequential:
        """One stage: ``2 * num_blocks`` blocks, the first from ``in_channels``."""
        blocks = [BasicBlock(in_channels, out_channels, stride)]
        blocks += [BasicBlock(out_channels, out_channels, 1) for _ in range(2 * num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.features(x))


class ResnetE(Model):
    """ResNet-E with ``resnete_num_layers`` 18 or 34; the stem is the ImageNet one when
    ``input_shape[-2:]`` is the tuple ``(224, 224)``, otherwise one 3x3 convolution."""

    name = "ResnetE"

    resnet_spec = {
        18: ([2, 2, 2, 2], [64, 64, 128, 256, 512]),
        34: ([3, 4, 6, 3], [64, 64, 128, 256, 512]),
    }

    def __init__(
        self, resnete_num_layers: int, input_shape: Sequence[int], num_classes: int = 0
    ) -> None:
        super().__init__(input_shape, num_classes)
        self._model = self.create(resnete_num_layers)
        logging.info(f"building ResnetE with {resnete_num_layers} layers...")

    def create(self, num_layers: int) -> nn.Module:
        """The network for ``num_layers`` (a key of ``resnet_spec``; ``ValueError``
        otherwise)."""
        if num_layers not in self.resnet_spec:
            raise ValueError(
                f"No resnet spec for {num_layers} available! (choose from "
                f"{sorted(self.resnet_spec)})"
            )
        layers, channels = self.resnet_spec[num_layers]
        return SpecificResnetE(
            layers,
            channels,
            self._num_classes,
            image_resolution=self._input_shape[-2:],
            image_channels=self._input_shape[1],
        )

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        """``--num-layers`` (18 or 34, required)."""
        parser.add_argument(
            "--num-layers",
            type=int,
            choices=[18, 34],
            required=True,
            help="number of layers to be used inside resnetE",
        )


class ResnetE18(NoArgparseArgsMixin, ResnetE):
    """ResNet-E 18, called ``(input_shape, num_classes=0)``."""

    name = "ResnetE18"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(18, *args, **kwargs)


class ResnetE34(NoArgparseArgsMixin, ResnetE):
    """ResNet-E 34, called ``(input_shape, num_classes=0)``."""

    name = "ResnetE34"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(34, *args, **kwargs)
