"""BinaryDenseNet (bitorch 0.4.1's ``bitorch.models.densenet``).

The binary DenseNet of "BinaryDenseNet: Developing an Architecture for Binary Neural
Networks" (Bethge et al., ICCV workshops 2019): dense blocks of BatchNorm + binary 3x3
``QConv2d`` layers whose outputs are concatenated to their inputs, and full-precision
transitions (BatchNorm, 2x2 max pool, ReLU, 1x1 convolution) that reduce the channels.

Laid out as in 0.4.1, so the ``state_dict`` keys are 0.4.1's:
``_model.features.<stem index>``, ``_model.features.DenseBlock_<i>.DenseLayer_<j>.features.<k>``,
``_model.features.Transition_<i>.<k>``, ``_model.finalize.0`` (BatchNorm) and
``_model.output`` (Linear).

Known quirk kept from 0.4.1: with ``bn_size > 0`` (a 1x1 bottleneck) the second BatchNorm
of a dense layer is built for the layer's input channels, not the bottleneck's, so the
network only runs when they happen to be equal (the ``state_dict`` shapes are 0.4.1's).

>>> import torch
>>> DenseNet28((1, 3, 8, 8), num_classes=10)(torch.zeros(2, 3, 8, 8)).shape
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
from bitorch_common.validation import (
    check_densenet_hyperparameters,
    densenet_spec_entry,
    densenet_transition_channels,
    parse_densenet_transition,
)

__all__ = [
    "DenseLayer",
    "DenseBlock",
    "BaseNetDense",
    "basedensenet_constructor",
    "DOWNSAMPLE_STRUCT",
    "DenseNet",
    "DenseNetFlex",
    "DenseNet28",
    "DenseNet37",
    "DenseNet45",
]

# 0.4.1's transition: BatchNorm, 2x2 max pool, ReLU, full-precision 1x1 convolution
DOWNSAMPLE_STRUCT = "bn,max_pool,relu,fp_conv"


class DenseLayer(nn.Module):
    """One dense layer: ``features`` = BatchNorm, binary convolution (and ``nn.Dropout``
    when ``dropout``), twice with a bottleneck (``bn_size > 0``: a 1x1 convolution to
    ``bn_size * growth_rate`` channels, then a 3x3 one). Returns only the ``growth_rate``
    new channels; :class:`DenseBlock` concatenates them to the input."""

    def __init__(
        self, num_features: int, growth_rate: int, bn_size: int, dropout: float, dilation: int
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.num_features = num_features
        layers: list[nn.Module] = []

        def conv_block(conv: nn.Module) -> None:
            # as in 0.4.1, every BatchNorm of the layer has num_features channels
            layers.append(nn.BatchNorm2d(num_features))
            layers.append(conv)
            if dropout:
                layers.append(nn.Dropout(dropout))

        if bn_size == 0:
            conv_block(
                QConv2d(
                    num_features, growth_rate, kernel_size=3, padding=dilation, dilation=dilation
                )
            )
        else:
            conv_block(QConv2d(num_features, bn_size * growth_rate, kernel_size=1))
            conv_block(QConv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers ``DenseLayer_1``, ``DenseLayer_2``, ...; layer ``i``
    sees the input and the outputs of the layers before it (concatenated on channels),
    and the block returns all of them concatenated."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        dropout: float,
        dilation: int,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f"DenseLayer_{i + 1}",
                DenseLayer(
                    num_input_features + i * growth_rate,
                    growth_rate=growth_rate,
                    bn_size=bn_size,
                    dropout=dropout,
                    dilation=dilation,
                ),
            )

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class BaseNetDense(nn.Module):
    """The network of BinaryDenseNet and (in 0.4.1) MeliusNet.

    ``features``: the stem (:func:`get_initial_layers` for ``image_resolution``), then
    ``DenseBlock_<i>`` for each entry of ``block_config`` with ``Transition_<i>`` between
    them; ``finalize``: BatchNorm, ReLU, global average pool, flatten; ``output``: Linear.

    ``reduction``: one rate per transition (the channels become
    :func:`~bitorch_common.validation.densenet_transition_channels` of them);
    ``downsample``: the comma separated transition layers, from ``bn``, ``relu``,
    ``q_conv``, ``fp_conv[:groups]``, ``pool`` (2x2 average), ``max_pool``,
    ``cs[:groups]`` (channel shuffle, 16 groups by default); ``dilated``: dilation
    ``(1, 1, 2, 4)`` for the four stages, whose transitions then skip their pooling.
    """

    def __init__(
        self,
        num_init_features: int,
        growth_rate: int,
        block_config: Sequence[int],
        reduction: Sequence[float],
        bn_size: int,
        downsample: str,
        image_resolution: Any = None,
        dropout: float = 0,
        classes: int = 1000,
        image_channels: int = 3,
        dilated: bool = False,
    ) -> None:
        super().__init__()
        if len(block_config) > 4:
            raise ValueError(
                f"BaseNetDense: at most 4 dense blocks are supported, got {list(block_config)}"
            )
        if len(reduction) != len(block_config) - 1:
            raise ValueError(
                f"BaseNetDense: {len(block_config) - 1} reduction rates needed for "
                f"{len(block_config)} blocks, got {list(reduction)}"
            )
        self.num_blocks = len(block_config)
        self.dilation = (1, 1, 2, 4) if dilated else (1, 1, 1, 1)
        self.downsample_struct = downsample
        self.transition_layers = parse_densenet_transition(downsample, "BaseNetDense")
        self.bn_size = bn_size
        self.growth_rate = growth_rate
        self.dropout = dropout
        self.reduction_rates = reduction
        self.num_features = num_init_features

        self.features = nn.Sequential(
            *get_initial_layers(image_resolution, image_channels, num_init_features)
        )
        for stage, num_layers in enumerate(block_config):
            block = DenseBlock(
                num_layers,
                self.num_features,
                bn_size,
                growth_rate,
                dropout,
                self.dilation[stage],
            )
            self.features.add_module(f"DenseBlock_{stage + 1}", block)
            self.num_features += num_layers * growth_rate
            if stage != len(block_config) - 1:
                self._make_transition(stage)

        self.finalize = nn.Sequential(
            nn.BatchNorm2d(self.num_features), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.output = nn.Linear(self.num_features, classes)

    def _make_transition(self, index: int) -> None:
        dilation = self.dilation[index + 1]
        channels = self.num_features
        out = densenet_transition_channels(channels, self.reduction_rates[index])
        if out < 1:
            raise ValueError(
                f"BaseNetDense: transition {index + 1} would have {out} channels "
                f"({channels} // {self.reduction_rates[index]} rounded to a multiple of 32); "
                "use more features or a smaller reduction"
            )
        layers: list[nn.Module] = []
        for name, groups in self.transition_layers:
            if name == "bn":
                layers.append(nn.BatchNorm2d(channels))
            elif name == "relu":
                layers.append(nn.ReLU())
            elif name == "q_conv":
                layers.append(QConv2d(channels, out, kernel_size=1))
            elif name == "fp_conv":
                layers.append(nn.Conv2d(channels, out, 1, groups=groups or 1, bias=False))
            elif name == "pool" and dilation == 1:
                layers.append(nn.AvgPool2d(2, stride=2))
            elif name == "max_pool" and dilation == 1:
                layers.append(nn.MaxPool2d(2, stride=2))
            elif name == "cs":
                layers.append(nn.ChannelShuffle(groups or 16))
        self.features.add_module(f"Transition_{index + 1}", nn.Sequential(*layers))
        self.num_features = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.finalize(self.features(x)))


def basedensenet_constructor(
    spec: dict,
    model: type[BaseNetDense],
    num_layers: int | str | None,
    num_init_features: int,
    growth_rate: int,
    bn_size: int,
    dropout: float,
    dilated: bool,
    flex_block_config: Sequence[int] | None,
    classes: int = 1000,
    image_resolution: Any = None,
    image_channels: int = 3,
) -> nn.Module:
    """Build ``model`` for the entry ``num_layers`` of ``spec`` (``{num_layers:
    (block_config, reduction_factors, downsample)}``); with ``num_layers=None`` the
    blocks are ``flex_block_config``. ``ValueError`` for an unknown ``num_layers``, a
    block config that is not a list of positive ints, or a wrong number of reductions."""
    where = getattr(model, "__name__", "basedensenet_constructor").lstrip("_")
    check_densenet_hyperparameters(num_init_features, growth_rate, bn_size, dropout, where)
    block_config, reduction, downsampling = densenet_spec_entry(
        spec, num_layers, flex_block_config, where
    )
    return model(
        num_init_features,
        growth_rate,
        block_config,
        reduction,
        bn_size,
        downsampling,
        image_resolution,
        dropout,
        classes,
        image_channels,
        dilated,
    )


class DenseNet(Model):
    """BinaryDenseNet with ``num_layers`` 28, 37 or 45 (``None``: ``flex_block_config``
    dense blocks). The stem is the ImageNet one when ``input_shape[-2:]`` is the tuple
    ``(224, 224)``, otherwise one 3x3 convolution."""

    name = "DenseNet"

    # num_layers: (block_config, reduction factors, downsample structure)
    densenet_spec: dict[Any, tuple[Any, list[float], str]] = {
        None: (None, [1 / 2, 1 / 2, 1 / 2], DOWNSAMPLE_STRUCT),
        28: ([6, 6, 6, 5], [1 / 2.7, 1 / 2.7, 1 / 2.2], DOWNSAMPLE_STRUCT),
        37: ([6, 8, 12, 6], [1 / 3.3, 1 / 3.3, 1 / 4], DOWNSAMPLE_STRUCT),
        45: ([6, 12, 14, 8], [1 / 2.7, 1 / 3.3, 1 / 4], DOWNSAMPLE_STRUCT),
    }

    def __init__(
        self,
        num_layers: int | None,
        input_shape: Sequence[int],
        num_classes: int = 0,
        num_init_features: int = 64,
        growth_rate: int = 64,
        bn_size: int = 0,
        dropout: float = 0,
        dilated: bool = False,
        flex_block_config: Sequence[int] | None = None,
    ) -> None:
        super().__init__(input_shape, num_classes)
        self._model = basedensenet_constructor(
            self.densenet_spec,
            BaseNetDense,
            num_layers,
            num_init_features,
            growth_rate,
            bn_size,
            dropout,
            dilated,
            flex_block_config,
            self._num_classes,
            self._input_shape[-2:],
            self._input_shape[1],
        )
        logging.info(f"building DenseNet with {num_layers} layers...")

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        """``--num-layers`` (required) and 0.4.1's ``--reduction``, ``--growth-rate``,
        ``--init-features``, ``--downsample-structure``."""
        parser.add_argument(
            "--num-layers",
            type=int,
            choices=[None, 28, 37, 45],
            required=True,
            help="number of layers to be used inside densenet",
        )
        parser.add_argument(
            "--reduction",
            type=str,
            required=False,
            help='divide channels by this number in transition blocks (3 values, e.g. "2,2.5,3")',
        )
        parser.add_argument(
            "--growth-rate", type=int, required=False, help="add this many features each block"
        )
        parser.add_argument(
            "--init-features",
            type=int,
            required=False,
            help="start with this many filters in the first layer",
        )
        parser.add_argument(
            "--downsample-structure",
            type=str,
            required=False,
            help="layers in downsampling branch (available: bn,relu,conv,fp_conv,pool,max_pool)",
        )


class DenseNetFlex(DenseNet):
    """BinaryDenseNet with the dense blocks of ``flex_block_config`` (four entries),
    called ``(input_shape, num_classes=0, ..., flex_block_config=[...])``."""

    name = "DenseNetFlex"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        """:class:`DenseNet`'s arguments and ``--block-config``."""
        DenseNet.add_argparse_arguments(parser)
        parser.add_argument(
            "--block-config",
            type=str,
            required=True,
            help="how many blocks to use in a flex model",
        )


class DenseNet28(NoArgparseArgsMixin, DenseNet):
    """BinaryDenseNet-28, called ``(input_shape, num_classes=0, ...)``."""

    name = "DenseNet28"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(28, *args, **kwargs)


class DenseNet37(NoArgparseArgsMixin, DenseNet):
    """BinaryDenseNet-37, called ``(input_shape, num_classes=0, ...)``."""

    name = "DenseNet37"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(37, *args, **kwargs)


class DenseNet45(NoArgparseArgsMixin, DenseNet):
    """BinaryDenseNet-45, called ``(input_shape, num_classes=0, ...)``."""

    name = "DenseNet45"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(45, *args, **kwargs)
