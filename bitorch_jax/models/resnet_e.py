"""ResNet-E for NNX (twin of :mod:`bitorch.models.resnet_e`).

Same blocks, same module names (``_model.features.<i>...``, ``_model.output_layer``) as
bitorch 0.4.1's ResNet-E, so a torch model converts with ``torch_to_nnx`` without a name
map. Input NHWC.

>>> import jax.numpy as jnp
>>> # abstractly (shapes only, fast); drop nnx.eval_shape for real weights
>>> model = nnx.eval_shape(lambda: ResnetE18((1, 3, 32, 32), num_classes=10, rngs=nnx.Rngs(0)))
>>> nnx.eval_shape(lambda m, x: m(x), model, jnp.zeros((2, 32, 32, 3))).shape
(2, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_jax.models.base import Model
from bitorch_jax.models.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    Identity,
    Linear,
    QConv2d,
    ReLU,
    Sequential,
    get_initial_layers,
)

__all__ = ["BasicBlock", "SpecificResnetE", "ResnetE", "ResnetE18", "ResnetE34"]


class BasicBlock(nnx.Module):
    """ResNet-E block: ``body(x) + shortcut(x)``; ``stride=-1`` means 2 when the channel
    count changes, else 1 (see :class:`bitorch.models.resnet_e.BasicBlock`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = -1,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
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
        dt = param_dtype
        self.downsample: Any = (
            Sequential(
                AvgPool2d(2, stride),
                Conv2d(in_channels, out_channels, 1, bias=False, param_dtype=dt, rngs=rngs),
                BatchNorm(out_channels, momentum=0.9, param_dtype=dt),
            )
            if self.shall_downsample
            else Identity()
        )
        self.body = Sequential(
            QConv2d(
                in_channels,
                out_channels,
                3,
                stride=stride,
                padding=1,
                bias=False,
                param_dtype=dt,
                rngs=rngs,
            ),
            BatchNorm(out_channels, momentum=0.9, param_dtype=dt),
        )
        self.activation = ReLU()

    def __call__(self, x: jax.Array) -> jax.Array:
        residual = self.downsample(x) if self.shall_downsample else x
        return self.body(x) + residual


class SpecificResnetE(nnx.Module):
    """The network: ``features`` (stem, stages, ReLU, global average pool, flatten) and
    ``output_layer`` (see :class:`bitorch.models.resnet_e.SpecificResnetE`)."""

    def __init__(
        self,
        layers: Sequence[int],
        channels: Sequence[int],
        classes: int,
        image_resolution: Any = None,
        image_channels: int = 3,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        if len(channels) != len(layers) + 1:
            raise ValueError(
                f"the len of channels ({len(channels)}) must be exactly the len of layers "
                f"({len(layers)}) + 1!"
            )
        dt = param_dtype
        features: list[nnx.Module] = get_initial_layers(
            image_resolution, image_channels, channels[0], rngs=rngs, param_dtype=dt
        )
        features.append(BatchNorm(channels[0], momentum=0.9, param_dtype=dt))
        for idx, num_blocks in enumerate(layers):
            first = BasicBlock(channels[idx], channels[idx + 1], rngs=rngs, param_dtype=dt)
            rest = [
                BasicBlock(channels[idx + 1], channels[idx + 1], 1, rngs=rngs, param_dtype=dt)
                for _ in range(2 * num_blocks - 1)
            ]
            features.append(Sequential(first, *rest))
        features += [ReLU(), AdaptiveAvgPool2d(1), Flatten()]
        self.features = Sequential(*features)
        self.output_layer = Linear(channels[-1], classes, param_dtype=dt, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.output_layer(self.features(x))


class ResnetE(Model):
    """ResNet-E with ``resnete_num_layers`` 18 or 34, called as the torch model
    (``input_shape`` in NCHW form); input NHWC."""

    name = "ResnetE"

    resnet_spec = {
        18: ([2, 2, 2, 2], [64, 64, 128, 256, 512]),
        34: ([3, 4, 6, 3], [64, 64, 128, 256, 512]),
    }

    def __init__(
        self,
        resnete_num_layers: int,
        input_shape: Sequence[int],
        num_classes: int = 0,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
        if resnete_num_layers not in self.resnet_spec:
            raise ValueError(
                f"No resnet spec for {resnete_num_layers} available! (choose from "
                f"{sorted(self.resnet_spec)})"
            )
        layers, channels = self.resnet_spec[resnete_num_layers]
        self._model = SpecificResnetE(
            layers,
            channels,
            self._num_classes,
            image_resolution=self._input_shape[-2:],  # as given: only a tuple picks ImageNet
            image_channels=self._input_shape[1],
            rngs=rngs,
            param_dtype=param_dtype,
        )


class ResnetE18(ResnetE):
    """ResNet-E 18, called ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "ResnetE18"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(18, *args, **kwargs)


class ResnetE34(ResnetE):
    """ResNet-E 34, called ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "ResnetE34"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(34, *args, **kwargs)
