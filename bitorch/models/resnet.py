"""Binary ResNet V1/V2 (bitorch 0.4.1's ``bitorch.models.resnet``).

Residual networks of "Deep Residual Learning for Image Recognition" (V1,
https://arxiv.org/abs/1512.03385) and "Identity Mappings in Deep Residual Networks" (V2,
https://arxiv.org/abs/1603.05027) with binary convolutions (``QConv2d`` in the basic
blocks, ``QConv2d_NoAct`` in the bottlenecks), laid out exactly as in bitorch 0.4.1 so
that a 0.4.1 ``state_dict`` loads with ``strict=True``:

* ``Resnet(resnet_version, resnet_num_layers, input_shape, num_classes=0)`` with
  ``resnet_spec`` 18/34 (basic blocks) and 50/101/152 (bottlenecks);
* ``Resnet18V1``, ``Resnet34V1``, ``Resnet50V1``, ``Resnet152V1`` and the ``V2`` ones,
  called ``(input_shape, num_classes=0)``.

0.4.1's quirks are kept on purpose: the first block of a stage uses stride 2 exactly
when its channel count changes (so the first bottleneck stage of ResNet-50 already
halves the resolution); ``BasicBlockV1`` adds the residual without a final ReLU; the
stem is the ImageNet one (7x7 conv, max pool) only when ``input_shape[-2:]`` equals the
tuple ``(224, 224)`` (see :func:`bitorch.models.common_layers.get_initial_layers`).

>>> import torch
>>> model = Resnet18V1((1, 3, 32, 32), num_classes=10)
>>> model(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import argparse
import logging
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from bitorch.layers import QConv2d, QConv2d_NoAct
from bitorch.models.base import Model, NoArgparseArgsMixin
from bitorch.models.common_layers import get_initial_layers

__all__ = [
    "BasicBlock",
    "BasicBlockV1",
    "BottleneckV1",
    "BasicBlockV2",
    "BottleneckV2",
    "SpecificResnet",
    "ResNetV1",
    "ResNetV2",
    "Resnet",
    "Resnet18V1",
    "Resnet34V1",
    "Resnet50V1",
    "Resnet152V1",
    "Resnet18V2",
    "Resnet34V2",
    "Resnet50V2",
    "Resnet152V2",
]


def block_stride(stride: int, in_channels: int, out_channels: int, where: str) -> int:
    """The stride of a block: ``-1`` means 2 when the channel count changes, else 1."""
    if isinstance(stride, bool) or not isinstance(stride, int):
        raise TypeError(f"{where}: stride must be an int, got {stride!r}")
    if stride == -1:
        return 2 if in_channels != out_channels else 1
    if stride > 0:
        return stride
    raise ValueError(f"{where}: stride must be -1 (automatic) or positive, got {stride}")


class BasicBlock(nn.Module, ABC):
    """The shared part of the residual blocks: ``downsample`` (built only when the
    channel count changes, otherwise an empty module) and ``body``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = block_stride(stride, in_channels, out_channels, type(self).__name__)
        self.shall_downsample = in_channels != out_channels
        self.downsample = self._build_downsampling() if self.shall_downsample else nn.Module()
        self.body = self._build_body()

    @abstractmethod
    def _build_downsampling(self) -> nn.Module:
        """The layers applied to the residual when the channel count changes."""

    @abstractmethod
    def _build_body(self) -> nn.Sequential:
        """The main path of the block."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""


class BasicBlockV1(BasicBlock):
    """ResNet V1 basic block: ``body(x) + residual`` (two 3x3 ``QConv2d`` with
    BatchNorm; ``activation`` exists, as in 0.4.1, but is not applied)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.activation = nn.ReLU()

    def _build_downsampling(self) -> nn.Sequential:
        return nn.Sequential(
            QConv2d(self.in_channels, self.out_channels, kernel_size=1, stride=self.stride),
            nn.BatchNorm2d(self.out_channels),
        )

    def _build_body(self) -> nn.Sequential:
        channels = self.out_channels
        return nn.Sequential(
            QConv2d(self.in_channels, channels, kernel_size=3, stride=self.stride, padding=1),
            nn.BatchNorm2d(channels),
            QConv2d(channels, channels, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x) if self.shall_downsample else x
        return self.body(x) + residual


def _bottleneck_body(in_channels: int, out_channels: int, stride: int, v1: bool) -> nn.Sequential:
    """1x1, 3x3, 1x1 ``QConv2d_NoAct`` with BatchNorm and ReLU between them (V1 ends with
    a BatchNorm, V2 with the last convolution)."""
    mid = out_channels // 4
    layers: list[nn.Module] = [
        QConv2d_NoAct(in_channels, mid, kernel_size=1, stride=stride),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        QConv2d_NoAct(mid, mid, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        QConv2d_NoAct(mid, out_channels, kernel_size=1, stride=1),
    ]
    if v1:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


class BottleneckV1(BasicBlock):
    """ResNet V1 bottleneck: ``relu(body(x) + residual)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.activation = nn.ReLU()

    def _build_downsampling(self) -> nn.Sequential:
        return nn.Sequential(
            QConv2d_NoAct(self.in_channels, self.out_channels, kernel_size=1, stride=self.stride),
            nn.BatchNorm2d(self.out_channels),
        )

    def _build_body(self) -> nn.Sequential:
        return _bottleneck_body(self.in_channels, self.out_channels, self.stride, v1=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x) if self.shall_downsample else x
        return self.activation(self.body(x) + residual)


class BasicBlockV2(BasicBlock):
    """ResNet V2 basic block (pre-activation): ``b = bn(x)``,
    ``body(b) + (downsample(b) if the channels change else x)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm2d(self.in_channels)

    def _build_downsampling(self) -> nn.Module:
        return QConv2d(self.in_channels, self.out_channels, kernel_size=1, stride=self.stride)

    def _build_body(self) -> nn.Sequential:
        channels = self.out_channels
        return nn.Sequential(
            QConv2d(self.in_channels, channels, kernel_size=3, stride=self.stride, padding=1),
            nn.BatchNorm2d(channels),
            QConv2d(channels, channels, kernel_size=3, stride=1, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.bn(x)
        residual = self.downsample(normed) if self.shall_downsample else x
        return self.body(normed) + residual


class BottleneckV2(BasicBlock):
    """ResNet V2 bottleneck (pre-activation): ``a = relu(bn(x))``,
    ``body(a) + (downsample(a) if the channels change else x)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm2d(self.in_channels)
        self.activation = nn.ReLU()

    def _build_downsampling(self) -> nn.Module:
        return QConv2d_NoAct(self.in_channels, self.out_channels, kernel_size=1, stride=self.stride)

    def _build_body(self) -> nn.Sequential:
        return _bottleneck_body(self.in_channels, self.out_channels, self.stride, v1=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.activation(self.bn(x))
        residual = self.downsample(activated) if self.shall_downsample else x
        return self.body(activated) + residual


class SpecificResnet(nn.Module):
    """The shared part of :class:`ResNetV1` and :class:`ResNetV2`: ``features`` (set by
    the subclass) followed by the linear ``output_layer``."""

    def __init__(self, classes: int, channels: list[int]) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.output_layer = nn.Linear(channels[-1], classes)

    def make_layer(
        self,
        block: type[nn.Module],
        layers: int,
        in_channels: int,
        out_channels: int,
        stride: int = -1,
    ) -> nn.Sequential:
        """``layers`` blocks: the first maps ``in_channels`` to ``out_channels`` with
        ``stride``, the others keep ``out_channels`` with stride 1."""
        stage = [block(in_channels, out_channels, stride)]
        stage.extend(block(out_channels, out_channels, 1) for _ in range(layers - 1))
        return nn.Sequential(*stage)

    def make_feature_layers(
        self, block: type[nn.Module], layers: list[int], channels: list[int], stride: int = -1
    ) -> list[nn.Module]:
        """One stage per entry of ``layers``, stage ``i`` from ``channels[i]`` to
        ``channels[i + 1]``."""
        return [
            self.make_layer(block, count, channels[i], channels[i + 1], stride)
            for i, count in enumerate(layers)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.features(x))


def _check_spec(layers: list[int], channels: list[int], where: str) -> None:
    if len(channels) != len(layers) + 1:
        raise ValueError(
            f"{where}: channels must have exactly one entry more than layers, got "
            f"{len(channels)} channels for {len(layers)} layers"
        )


class ResNetV1(SpecificResnet):
    """ResNet V1: input BatchNorm, stem, BatchNorm, the stages, ReLU, global average
    pooling and flatten in ``features``; then ``output_layer``."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: list[int],
        channels: list[int],
        classes: int,
        image_resolution: Any = None,
        image_channels: int = 3,
    ) -> None:
        super().__init__(classes, channels)
        _check_spec(layers, channels, "ResNetV1")
        features: list[nn.Module] = [nn.BatchNorm2d(image_channels)]
        features.extend(get_initial_layers(image_resolution, image_channels, channels[0]))
        features.append(nn.BatchNorm2d(channels[0]))
        features.extend(self.make_feature_layers(block, layers, channels))
        features.extend([nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()])
        self.features = nn.Sequential(*features)


class ResNetV2(SpecificResnet):
    """ResNet V2: input BatchNorm, stem, the stages, BatchNorm, ReLU, global average
    pooling and flatten in ``features``; then ``output_layer``."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: list[int],
        channels: list[int],
        classes: int = 1000,
        image_resolution: Any = None,
        image_channels: int = 3,
    ) -> None:
        super().__init__(classes, channels)
        _check_spec(layers, channels, "ResNetV2")
        features: list[nn.Module] = [nn.BatchNorm2d(image_channels)]
        features.extend(get_initial_layers(image_resolution, image_channels, channels[0]))
        features.extend(self.make_feature_layers(block, layers, channels))
        features.extend(
            [nn.BatchNorm2d(channels[-1]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        )
        self.features = nn.Sequential(*features)


class Resnet(Model):
    """Binary ResNet of ``resnet_version`` 1 or 2 with ``resnet_num_layers`` layers
    (a key of ``resnet_spec``: 18, 34, 50, 101 or 152)."""

    name = "Resnet"

    resnet_spec = {
        18: ("basic_block", [2, 2, 2, 2], [64, 64, 128, 256, 512]),
        34: ("basic_block", [3, 4, 6, 3], [64, 64, 128, 256, 512]),
        50: ("bottle_neck", [3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
        101: ("bottle_neck", [3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
        152: ("bottle_neck", [3, 8, 36, 3], [64, 256, 512, 1024, 2048]),
    }
    resnet_net_versions = [ResNetV1, ResNetV2]
    resnet_block_versions = [
        {"basic_block": BasicBlockV1, "bottle_neck": BottleneckV1},
        {"basic_block": BasicBlockV2, "bottle_neck": BottleneckV2},
    ]

    def __init__(
        self,
        resnet_version: int,
        resnet_num_layers: int,
        input_shape: list[int],
        num_classes: int = 0,
    ) -> None:
        super().__init__(input_shape, num_classes)
        self._model = self.create_resnet(resnet_version, resnet_num_layers)
        logging.info(f"building Resnetv{resnet_version} with {resnet_num_layers} layers...")

    def create_resnet(self, version: int, num_layers: int) -> nn.Module:
        """The network of ``version`` (1 or 2) with ``num_layers`` layers."""
        if num_layers not in self.resnet_spec:
            raise ValueError(
                f"Resnet: no resnet spec for {num_layers} layers, choose one of "
                f"{sorted(self.resnet_spec)}"
            )
        if version not in (1, 2):
            raise ValueError(f"Resnet: invalid resnet version {version}, only 1 or 2 allowed")
        block_type, layers, channels = self.resnet_spec[num_layers]
        network = self.resnet_net_versions[version - 1]
        block = self.resnet_block_versions[version - 1][block_type]
        return network(
            block,
            layers,
            channels,
            self._num_classes,
            self._input_shape[-2:],
            self._input_shape[1],
        )

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--version", type=int, choices=[1, 2], required=True,
            help="version of resnet to be used",
        )  # fmt: skip
        parser.add_argument(
            "--num-layers", type=int, choices=[18, 34, 50, 152], required=True,
            help="number of layers to be used inside resnet",
        )  # fmt: skip


class Resnet18V1(NoArgparseArgsMixin, Resnet):
    """ResNet-18 V1, ``(input_shape, num_classes=0)``."""

    name = "Resnet18V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 18, *args, **kwargs)


class Resnet34V1(NoArgparseArgsMixin, Resnet):
    """ResNet-34 V1, ``(input_shape, num_classes=0)``."""

    name = "Resnet34V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 34, *args, **kwargs)


class Resnet50V1(NoArgparseArgsMixin, Resnet):
    """ResNet-50 V1 (bottlenecks), ``(input_shape, num_classes=0)``."""

    name = "Resnet50V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 50, *args, **kwargs)


class Resnet152V1(NoArgparseArgsMixin, Resnet):
    """ResNet-152 V1 (bottlenecks), ``(input_shape, num_classes=0)``."""

    name = "Resnet152V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 152, *args, **kwargs)


class Resnet18V2(NoArgparseArgsMixin, Resnet):
    """ResNet-18 V2 (pre-activation), ``(input_shape, num_classes=0)``."""

    name = "Resnet18V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 18, *args, **kwargs)


class Resnet34V2(NoArgparseArgsMixin, Resnet):
    """ResNet-34 V2 (pre-activation), ``(input_shape, num_classes=0)``."""

    name = "Resnet34V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 34, *args, **kwargs)


class Resnet50V2(NoArgparseArgsMixin, Resnet):
    """ResNet-50 V2 (pre-activation bottlenecks), ``(input_shape, num_classes=0)``."""

    name = "Resnet50V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 50, *args, **kwargs)


class Resnet152V2(NoArgparseArgsMixin, Resnet):
    """ResNet-152 V2 (pre-activation bottlenecks), ``(input_shape, num_classes=0)``."""

    name = "Resnet152V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 152, *args, **kwargs)
