"""QuickNet (bitorch 0.4.1's ``bitorch.models.quicknet``).

The binary network of "Larq Compute Engine: Design, Benchmark, and Deploy
State-of-the-Art Binarized Neural Networks" (https://arxiv.org/abs/2011.09398), laid out
exactly as in bitorch 0.4.1 so that a 0.4.1 ``state_dict`` loads with ``strict=True``:
``_model`` is a ``Sequential`` of ``stem`` (the ``"quicknet_stem"`` of
:func:`bitorch.models.common_layers.get_initial_layers`), ``body`` (``ResidualBlocks_i``
of :class:`ResidualBlock`, with a :class:`TransitionBlock` ``Transition_i`` between
sections) and ``top`` (ReLU, global average pooling, flatten, linear).

* ``QuickNet(input_shape, section_filters=None, section_blocks=None, num_classes=0)``
  (defaults ``[64, 128, 256, 512]`` and ``[4, 4, 4, 4]``);
* ``QuickNetSmall`` (filters ``[32, 64, 256, 512]``) and ``QuickNetLarge`` (blocks
  ``[6, 8, 12, 6]``), called ``(input_shape, num_classes=...)`` (``num_classes`` by
  keyword, as in 0.4.1).

As in 0.4.1, the BatchNorms use torch ``momentum=0.9`` (a running statistic keeps 10 %
of its old value per step), the depthwise convolution of a transition block is a fixed
blur filter (``requires_grad`` off) and ``clip_weights``/``on_train_batch_end`` clip the
binary kernels of the residual blocks to ``[-1.25, 1.25]``.

>>> import torch
>>> model = QuickNetSmall((1, 3, 32, 32), num_classes=10)
>>> model(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from bitorch.layers import PadModule, QConv2d
from bitorch.models.base import Model, NoArgparseArgsMixin
from bitorch.models.common_layers import get_initial_layers

__all__ = [
    "ResidualBlock",
    "TransitionBlock",
    "QuickNet",
    "QuickNetSmall",
    "QuickNetLarge",
    "blur_kernel",
]


def blur_kernel(kernel_size: int) -> torch.Tensor:
    """The normalised 2-d binomial low-pass filter (``kernel_size`` 2, 3 or 5) of
    "Making Convolutional Networks Shift-Invariant Again"."""
    rows = {2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}
    if kernel_size not in rows:
        raise ValueError(f"QuickNet: blur filter size should be 2, 3 or 5, got {kernel_size}")
    row = torch.tensor(rows[kernel_size], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return kernel / kernel.sum()


class ResidualBlock(nn.Sequential):
    """``bnorm(relu(qconv(x))) + x`` with a 3x3 ``QConv2d`` padded ("same") with +1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.add_module(
            "qconv",
            QConv2d(in_channels, out_channels, kernel_size=3, pad_value=1, padding="same"),
        )
        self.add_module("relu", nn.ReLU())
        self.add_module("bnorm", nn.BatchNorm2d(out_channels, momentum=0.9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + x


class TransitionBlock(nn.Sequential):
    """ReLU, 2x2 max pool (stride 1), zero padding 1, a fixed depthwise 3x3 blur with
    stride ``strides``, a 1x1 convolution to ``out_channels``, ReLU, BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, strides: int) -> None:
        super().__init__()
        self.add_module("relu", nn.ReLU())
        self.add_module("pool", nn.MaxPool2d(strides, stride=1))
        self.add_module("pad", PadModule(1, 1, 1, 1))
        depth_conv = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, groups=in_channels, stride=strides, bias=False
        )
        self.add_module("depth_conv", depth_conv.requires_grad_(False))
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False))
        self.add_module("relu2", nn.ReLU())
        self.add_module("norm", nn.BatchNorm2d(out_channels, momentum=0.9))


class QuickNet(Model):
    """QuickNet with ``section_filters`` channels and ``section_blocks`` residual blocks
    per section."""

    name = "QuickNet"

    def __init__(
        self,
        input_shape: list[int],
        section_filters: list[int] | None = None,
        section_blocks: list[int] | None = None,
        num_classes: int = 0,
    ) -> None:
        super().__init__(input_shape, num_classes)
        section_filters = [64, 128, 256, 512] if section_filters is None else section_filters
        section_blocks = [4, 4, 4, 4] if section_blocks is None else section_blocks
        if len(section_filters) != len(section_blocks):
            raise ValueError(
                f"QuickNet: section_filters and section_blocks must have the same length, got "
                f"{len(section_filters)} and {len(section_blocks)}"
            )
        self.image_channels = self._input_shape[1]
        self.num_classes = num_classes
        self.section_filters = list(section_filters)
        self.section_blocks = list(section_blocks)
        self._model = self._build_model()
        logging.info("building Quicknet")
        self._model.stem.apply(self._initialize_stem)
        self._model.body.apply(self._initialize_body_top)
        self._model.top.apply(self._initialize_body_top)

    def _blurpool_init(self, weight: torch.Tensor) -> None:
        """Set a depthwise kernel ``(C, 1, k, k)`` to the blur filter of size ``k``."""
        kernel = blur_kernel(weight.shape[2]).to(weight.dtype)
        with torch.no_grad():
            weight.copy_(kernel.expand(weight.shape[0], 1, -1, -1))

    def _initialize_stem(self, layer: nn.Module) -> None:
        if isinstance(layer, nn.Conv2d):
            if layer.groups == 1:
                nn.init.kaiming_normal_(layer.weight)
            else:
                nn.init.xavier_uniform_(layer.weight)

    def _initialize_body_top(self, layer: nn.Module) -> None:
        if isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1):
            nn.init.xavier_normal_(layer.weight)
        elif isinstance(layer, nn.Conv2d):
            self._blurpool_init(layer.weight)

    def _build_model(self) -> nn.Sequential:
        filters = self.section_filters
        model = nn.Sequential()
        stem = get_initial_layers("quicknet_stem", self.image_channels, filters[0])
        model.add_module("stem", nn.Sequential(*stem))
        body = nn.Sequential()
        last = len(self.section_blocks) - 1
        for index, (blocks, channels) in enumerate(zip(self.section_blocks, filters, strict=True)):
            residuals = [ResidualBlock(channels, channels) for _ in range(blocks)]
            body.add_module(f"ResidualBlocks_{index + 1}", nn.Sequential(*residuals))
            if index != last:
                transition = TransitionBlock(channels, filters[index + 1], 2)
                body.add_module(f"Transition_{index + 1}", transition)
        model.add_module("body", body)
        top = nn.Sequential(
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(filters[-1], self.num_classes),
        )
        model.add_module("top", top)
        return model

    def clip_weights(self, layer: nn.Module, clip_value: float = 1.25) -> None:
        """Clip the binary kernel of ``layer`` to ``[-clip_value, clip_value]`` when it is
        a :class:`ResidualBlock`."""
        if isinstance(layer, ResidualBlock):
            with torch.no_grad():
                layer.qconv.weight.clamp_(-clip_value, clip_value)

    def on_train_batch_end(self, layer: nn.Module) -> None:
        self.clip_weights(layer)


class QuickNetSmall(NoArgparseArgsMixin, QuickNet):
    """QuickNet with ``section_filters`` ``[32, 64, 256, 512]``."""

    name = "QuickNetSmall"
    section_filters = [32, 64, 256, 512]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, section_filters=list(type(self).section_filters), **kwargs)


class QuickNetLarge(NoArgparseArgsMixin, QuickNet):
    """QuickNet with ``section_blocks`` ``[6, 8, 12, 6]``."""

    name = "QuickNetLarge"
    section_blocks = [6, 8, 12, 6]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, section_blocks=list(type(self).section_blocks), **kwargs)
