"""Binary ResNet V1/V2 for NNX (twin of :mod:`bitorch.models.resnet`).

Same blocks, same module names (``_model.features.<i>...``, ``_model.output_layer``) and
the same quirks as bitorch 0.4.1's ResNet (see :mod:`bitorch.models.resnet`), so a torch
model converts with ``torch_to_nnx`` without a name map. ``input_shape`` is given in
torch's NCHW form; the model takes NHWC input. Basic blocks use binary ``QConv2d``
(sign inputs and weights), bottlenecks bitorch's ``QConv2d_NoAct`` (sign weights only:
``input_quantization="identity"``, no gradient cancellation).

>>> import jax.numpy as jnp
>>> block = BasicBlockV1(4, 8, -1, rngs=nnx.Rngs(0))  # channels change: stride 2
>>> block(jnp.zeros((1, 8, 8, 4))).shape
(1, 4, 4, 8)
>>> model = nnx.eval_shape(lambda: Resnet18V1((1, 3, 32, 32), 10, rngs=nnx.Rngs(0)))
>>> model._model.output_layer.kernel.shape  # (shapes only; build it without eval_shape)
(512, 10)
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
    BatchNorm,
    Flatten,
    Identity,
    Linear,
    QConv2d,
    ReLU,
    Sequential,
    get_initial_layers,
)

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


class BasicBlock(nnx.Module):
    """The shared part of the residual blocks: ``stride``, ``shall_downsample``,
    ``downsample`` (an :class:`Identity` placeholder when the channel count stays) and
    ``body``, built by the subclass's ``_build_downsampling``/``_build_body``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = block_stride(stride, in_channels, out_channels, type(self).__name__)
        self.shall_downsample = in_channels != out_channels
        self.downsample: Any = (
            self._build_downsampling(rngs, param_dtype) if self.shall_downsample else Identity()
        )
        self.body = self._build_body(rngs, param_dtype)

    def _qconv(
        self, cin: int, cout: int, kernel: int, stride: int, padding: int, binary_input: bool,
        rngs: nnx.Rngs, dt: Any,
    ) -> QConv2d:  # fmt: skip
        """bitorch's ``QConv2d`` (``binary_input``) or ``QConv2d_NoAct`` (the input is not
        quantized: ``identity``, no gradient cancellation)."""
        if binary_input:
            return QConv2d(cin, cout, kernel, stride=stride, padding=padding, param_dtype=dt,
                           rngs=rngs)  # fmt: skip
        return QConv2d(
            cin, cout, kernel, stride=stride, padding=padding, param_dtype=dt, rngs=rngs,
            input_quantization="identity", gradient_cancellation_threshold=0.0,
        )  # fmt: skip

    def _bottleneck_body(self, rngs: nnx.Rngs, dt: Any, v1: bool) -> Sequential:
        mid = self.out_channels // 4
        layers: list[nnx.Module] = [
            self._qconv(self.in_channels, mid, 1, self.stride, 0, False, rngs, dt),
            BatchNorm(mid, param_dtype=dt),
            ReLU(),
            self._qconv(mid, mid, 3, 1, 1, False, rngs, dt),
            BatchNorm(mid, param_dtype=dt),
            ReLU(),
            self._qconv(mid, self.out_channels, 1, 1, 0, False, rngs, dt),
        ]
        if v1:
            layers.append(BatchNorm(self.out_channels, param_dtype=dt))
        return Sequential(*layers)

    def _build_downsampling(self, rngs: nnx.Rngs, dt: Any) -> nnx.Module:
        raise NotImplementedError

    def _build_body(self, rngs: nnx.Rngs, dt: Any) -> Sequential:
        raise NotImplementedError


class BasicBlockV1(BasicBlock):
    """ResNet V1 basic block: ``body(x) + residual`` (no final ReLU, as in 0.4.1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.activation = ReLU()

    def _build_downsampling(self, rngs: nnx.Rngs, dt: Any) -> nnx.Module:
        return Sequential(
            self._qconv(self.in_channels, self.out_channels, 1, self.stride, 0, True, rngs, dt),
            BatchNorm(self.out_channels, param_dtype=dt),
        )

    def _build_body(self, rngs: nnx.Rngs, dt: Any) -> Sequential:
        cin, cout = self.in_channels, self.out_channels
        return Sequential(
            self._qconv(cin, cout, 3, self.stride, 1, True, rngs, dt),
            BatchNorm(cout, param_dtype=dt),
            self._qconv(cout, cout, 3, 1, 1, True, rngs, dt),
            BatchNorm(cout, param_dtype=dt),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        residual = self.downsample(x) if self.shall_downsample else x
        return self.body(x) + residual


class BottleneckV1(BasicBlock):
    """ResNet V1 bottleneck: ``relu(body(x) + residual)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.activation = ReLU()

    def _build_downsampling(self, rngs: nnx.Rngs, dt: Any) -> nnx.Module:
        return Sequential(
            self._qconv(self.in_channels, self.out_channels, 1, self.stride, 0, False, rngs, dt),
            BatchNorm(self.out_channels, param_dtype=dt),
        )

    def _build_body(self, rngs: nnx.Rngs, dt: Any) -> Sequential:
        return self._bottleneck_body(rngs, dt, v1=True)

    def __call__(self, x: jax.Array) -> jax.Array:
        residual = self.downsample(x) if self.shall_downsample else x
        return self.activation(self.body(x) + residual)


class BasicBlockV2(BasicBlock):
    """ResNet V2 basic block: ``b = bn(x)``,
    ``body(b) + (downsample(b) if the channels change else x)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, rngs=rngs, param_dtype=param_dtype)
        self.bn = BatchNorm(in_channels, param_dtype=param_dtype)

    def _build_downsampling(self, rngs: nnx.Rngs, dt: Any) -> nnx.Module:
        return self._qconv(self.in_channels, self.out_channels, 1, self.stride, 0, True, rngs, dt)

    def _build_body(self, rngs: nnx.Rngs, dt: Any) -> Sequential:
        cin, cout = self.in_channels, self.out_channels
        return Sequential(
            self._qconv(cin, cout, 3, self.stride, 1, True, rngs, dt),
            BatchNorm(cout, param_dtype=dt),
            self._qconv(cout, cout, 3, 1, 1, True, rngs, dt),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        normed = self.bn(x)
        residual = self.downsample(normed) if self.shall_downsample else x
        return self.body(normed) + residual


class BottleneckV2(BasicBlock):
    """ResNet V2 bottleneck: ``a = relu(bn(x))``,
    ``body(a) + (downsample(a) if the channels change else x)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, rngs=rngs, param_dtype=param_dtype)
        self.bn = BatchNorm(in_channels, param_dtype=param_dtype)
        self.activation = ReLU()

    def _build_downsampling(self, rngs: nnx.Rngs, dt: Any) -> nnx.Module:
        return self._qconv(self.in_channels, self.out_channels, 1, self.stride, 0, False, rngs, dt)

    def _build_body(self, rngs: nnx.Rngs, dt: Any) -> Sequential:
        return self._bottleneck_body(rngs, dt, v1=False)

    def __call__(self, x: jax.Array) -> jax.Array:
        activated = self.activation(self.bn(x))
        residual = self.downsample(activated) if self.shall_downsample else x
        return self.body(activated) + residual


def _stages(
    block: type[BasicBlock],
    layers: Sequence[int],
    channels: Sequence[int],
    rngs: nnx.Rngs,
    dt: Any,
) -> list[nnx.Module]:
    """One ``Sequential`` stage per entry of ``layers`` (0.4.1's ``make_feature_layers``):
    the first block of stage ``i`` maps ``channels[i]`` to ``channels[i + 1]`` with stride
    -1 (automatic), the others keep the channels with stride 1."""
    stages: list[nnx.Module] = []
    for i, count in enumerate(layers):
        cin, cout = channels[i], channels[i + 1]
        blocks = [block(cin, cout, -1, rngs=rngs, param_dtype=dt)]
        blocks += [block(cout, cout, 1, rngs=rngs, param_dtype=dt) for _ in range(count - 1)]
        stages.append(Sequential(*blocks))
    return stages


class SpecificResnet(nnx.Module):
    """``features`` then ``output_layer`` (Linear); ``version`` 1 or 2 decides the layout
    of ``features`` (see :class:`bitorch.models.resnet.ResNetV1`/``ResNetV2``)."""

    def __init__(
        self,
        version: int,
        block: type[BasicBlock],
        layers: Sequence[int],
        channels: Sequence[int],
        classes: int,
        image_resolution: Any = None,
        image_channels: int = 3,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        where = f"ResNetV{version}"
        if len(channels) != len(layers) + 1:
            raise ValueError(
                f"{where}: channels must have exactly one entry more than layers, got "
                f"{len(channels)} channels for {len(layers)} layers"
            )
        dt = param_dtype
        features: list[nnx.Module] = [BatchNorm(image_channels, param_dtype=dt)]
        features += get_initial_layers(
            image_resolution, image_channels, channels[0], rngs=rngs, param_dtype=dt
        )
        if version == 1:
            features.append(BatchNorm(channels[0], param_dtype=dt))
        features += _stages(block, layers, channels, rngs, dt)
        if version == 2:
            features.append(BatchNorm(channels[-1], param_dtype=dt))
        features += [ReLU(), AdaptiveAvgPool2d(1), Flatten()]
        self.features = Sequential(*features)
        self.output_layer = Linear(channels[-1], classes, param_dtype=dt, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.output_layer(self.features(x))


class ResNetV1(SpecificResnet):
    """ResNet V1: input BatchNorm, stem, BatchNorm, stages, ReLU, pool, flatten."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, *args, **kwargs)


class ResNetV2(SpecificResnet):
    """ResNet V2: input BatchNorm, stem, stages, BatchNorm, ReLU, pool, flatten."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, *args, **kwargs)


class Resnet(Model):
    """Binary ResNet of ``resnet_version`` 1 or 2 with ``resnet_num_layers`` layers (18,
    34, 50, 101 or 152), called as the torch model plus ``rngs``/``param_dtype``."""

    name = "Resnet"

    resnet_spec = {
        18: ("basic_block", [2, 2, 2, 2], [64, 64, 128, 256, 512]),
        34: ("basic_block", [3, 4, 6, 3], [64, 64, 128, 256, 512]),
        50: ("bottle_neck", [3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
        101: ("bottle_neck", [3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
        152: ("bottle_neck", [3, 8, 36, 3], [64, 256, 512, 1024, 2048]),
    }
    resnet_net_versions = (ResNetV1, ResNetV2)
    resnet_block_versions = (
        {"basic_block": BasicBlockV1, "bottle_neck": BottleneckV1},
        {"basic_block": BasicBlockV2, "bottle_neck": BottleneckV2},
    )

    def __init__(
        self,
        resnet_version: int,
        resnet_num_layers: int,
        input_shape: Sequence[int],
        num_classes: int = 0,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
        if resnet_num_layers not in self.resnet_spec:
            raise ValueError(
                f"Resnet: no resnet spec for {resnet_num_layers} layers, choose one of "
                f"{sorted(self.resnet_spec)}"
            )
        if resnet_version not in (1, 2):
            raise ValueError(
                f"Resnet: invalid resnet version {resnet_version}, only 1 or 2 allowed"
            )
        block_type, layers, channels = self.resnet_spec[resnet_num_layers]
        network = self.resnet_net_versions[resnet_version - 1]
        block = self.resnet_block_versions[resnet_version - 1][block_type]
        # input_shape[-2:] as given (as in torch: only a tuple (224, 224) picks the
        # ImageNet stem)
        self._model = network(
            block,
            layers,
            channels,
            self._num_classes,
            input_shape[-2:],
            self._input_shape[1],
            rngs=rngs,
            param_dtype=param_dtype,
        )


class Resnet18V1(Resnet):
    """ResNet-18 V1, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet18V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 18, *args, **kwargs)


class Resnet34V1(Resnet):
    """ResNet-34 V1, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet34V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 34, *args, **kwargs)


class Resnet50V1(Resnet):
    """ResNet-50 V1, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet50V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 50, *args, **kwargs)


class Resnet152V1(Resnet):
    """ResNet-152 V1, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet152V1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(1, 152, *args, **kwargs)


class Resnet18V2(Resnet):
    """ResNet-18 V2, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet18V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 18, *args, **kwargs)


class Resnet34V2(Resnet):
    """ResNet-34 V2, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet34V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 34, *args, **kwargs)


class Resnet50V2(Resnet):
    """ResNet-50 V2, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet50V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 50, *args, **kwargs)


class Resnet152V2(Resnet):
    """ResNet-152 V2, ``(input_shape, num_classes=0, *, rngs, param_dtype)``."""

    name = "Resnet152V2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(2, 152, *args, **kwargs)
