"""MeliusNet (bitorch 0.4.1's ``bitorch.models.meliusnet``).

The networks of "MeliusNet: Can Binary Neural Networks Achieve MobileNet-level
Accuracy?" (https://arxiv.org/abs/2001.05936), as bitorch 0.4.1 builds them.

Faithful to 0.4.1, including its quirk: 0.4.1's ``_MeliusNet`` defines the hook that
would insert an :class:`ImprovementBlock` after every dense layer, but nothing calls it,
so a 0.4.1 MeliusNet is a :class:`~bitorch.models.densenet.BaseNetDense` with MeliusNet's
block configurations, reductions and transitions (grouped 1x1 convolutions after a
channel shuffle for 23, A, B and C). Its ``state_dict`` keys and logits are therefore
those of that network, and so are this module's. :class:`ImprovementBlock` is provided
on its own. ``MeliusNet29`` exists in the module but, as in 0.4.1, is not registered.

>>> import torch
>>> MeliusNet22((1, 3, 8, 8), num_classes=10)(torch.zeros(2, 3, 8, 8)).shape
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
from bitorch.models.densenet import DOWNSAMPLE_STRUCT, BaseNetDense, basedensenet_constructor
from bitorch_common.validation import check_positive_int

__all__ = [
    "ImprovementBlock",
    "MeliusNet",
    "MeliusNetFlex",
    "MeliusNet22",
    "MeliusNet23",
    "MeliusNet29",
    "MeliusNet42",
    "MeliusNet59",
    "MeliusNetA",
    "MeliusNetB",
    "MeliusNetC",
]


class ImprovementBlock(nn.Module):
    """Improves the last ``channels`` of ``in_channels`` channels: ``body`` (BatchNorm,
    binary 3x3 convolution to ``channels``) is added to them, the first channels pass
    unchanged (all channels when ``channels == in_channels``). Not used by 0.4.1's
    MeliusNet models (see the module docstring)."""

    def __init__(self, channels: int, in_channels: int, dilation: int = 1) -> None:
        super().__init__()
        where = "ImprovementBlock"
        channels = check_positive_int(channels, "channels", where)
        in_channels = check_positive_int(in_channels, "in_channels", where)
        if channels > in_channels:
            raise ValueError(
                f"{where}: channels ({channels}) must be at most in_channels ({in_channels})"
            )
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            QConv2d(
                in_channels,
                channels,
                kernel_size=3,
                stride=1,
                padding=dilation,
                dilation=dilation,
            ),
        )
        self.use_sliced_addition = channels != in_channels
        self.kept_channels = in_channels - channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        improvement = self.body(x)
        if not self.use_sliced_addition:
            return improvement + x
        kept, improved = torch.split(x, [self.kept_channels, x.shape[1] - self.kept_channels], 1)
        return torch.cat([kept, improved + improvement], dim=1)


class _MeliusNet(BaseNetDense):
    """0.4.1's MeliusNet network: :class:`BaseNetDense` as it is (see the module
    docstring)."""


class MeliusNet(Model):
    """MeliusNet with ``num_layers`` one of ``"22"``, ``"23"``, ``"29"``, ``"42"``,
    ``"59"``, ``"a"``, ``"b"``, ``"c"`` (``None``: ``flex_block_config`` dense blocks).
    The stem is the ImageNet one when ``input_shape[-2:]`` is the tuple ``(224, 224)``,
    otherwise one 3x3 convolution."""

    name = "MeliusNet"

    # num_layers: (block_config, reduction factors, downsample structure)
    meliusnet_spec: dict[Any, tuple[Any, list[float], str]] = {
        None: (None, [1 / 2, 1 / 2, 1 / 2], DOWNSAMPLE_STRUCT),
        "23": (
            [2, 4, 6, 6],
            [128 / 192, 192 / 384, 288 / 576],
            DOWNSAMPLE_STRUCT.replace("fp_conv", "cs,fp_conv:8"),
        ),
        "22": ([4, 5, 4, 4], [160 / 320, 224 / 480, 256 / 480], DOWNSAMPLE_STRUCT),
        "29": ([4, 6, 8, 6], [128 / 320, 192 / 512, 256 / 704], DOWNSAMPLE_STRUCT),
        "42": ([5, 8, 14, 10], [160 / 384, 256 / 672, 416 / 1152], DOWNSAMPLE_STRUCT),
        "59": ([6, 12, 24, 12], [192 / 448, 320 / 960, 544 / 1856], DOWNSAMPLE_STRUCT),
        "a": (
            [4, 5, 5, 6],
            [160 / 320, 256 / 480, 288 / 576],
            DOWNSAMPLE_STRUCT.replace("fp_conv", "cs,fp_conv:4"),
        ),
        "b": (
            [4, 6, 8, 6],
            [160 / 320, 224 / 544, 320 / 736],
            DOWNSAMPLE_STRUCT.replace("fp_conv", "cs,fp_conv:2"),
        ),
        "c": (
            [3, 5, 10, 6],
            [128 / 256, 192 / 448, 288 / 832],
            DOWNSAMPLE_STRUCT.replace("fp_conv", "cs,fp_conv:4"),
        ),
    }

    def __init__(
        self,
        num_layers: str | None,
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
            self.meliusnet_spec,
            _MeliusNet,
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
        logging.info(f"building MeliusNet with {num_layers} layers...")

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        """``--num-layers`` (required) and 0.4.1's ``--reduction``, ``--growth-rate``,
        ``--init-features``, ``--downsample-structure``."""
        parser.add_argument(
            "--num-layers",
            type=str,
            choices=[None, "22", "23", "29", "42", "59", "a", "b", "c"],
            required=True,
            help="number of layers to be used inside meliusnet",
        )
        parser.add_argument(
            "--reduction",
            type=str,
            required=False,
            help="divide channels by this number in transition blocks",
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


class MeliusNetFlex(MeliusNet):
    """MeliusNet with the dense blocks of ``flex_block_config`` (four entries)."""

    name = "MeliusNetFlex"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)

    @staticmethod
    def add_argparse_arguments(parser: argparse.ArgumentParser) -> None:
        """:class:`MeliusNet`'s arguments and ``--block-config``."""
        MeliusNet.add_argparse_arguments(parser)
        parser.add_argument(
            "--block-config",
            type=str,
            required=True,
            help="how many blocks to use in a flex model",
        )


class MeliusNet22(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-22, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNet22"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("22", *args, **kwargs)


class MeliusNet23(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-23, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNet23"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("23", *args, **kwargs)


class MeliusNet29(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-29, called ``(input_shape, num_classes=0, ...)`` (not registered, as in
    0.4.1)."""

    name = "MeliusNet29"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("29", *args, **kwargs)


class MeliusNet42(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-42, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNet42"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("42", *args, **kwargs)


class MeliusNet59(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-59, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNet59"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("59", *args, **kwargs)


class MeliusNetA(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-A, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNetA"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("a", *args, **kwargs)


class MeliusNetB(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-B, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNetB"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("b", *args, **kwargs)


class MeliusNetC(NoArgparseArgsMixin, MeliusNet):
    """MeliusNet-C, called ``(input_shape, num_classes=0, ...)``."""

    name = "MeliusNetC"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("c", *args, **kwargs)
