"""BinaryDenseNet for NNX (twin of :mod:`bitorch.models.densenet`).

Same layers and module names as bitorch 0.4.1's DenseNet (``_model.features.0``,
``_model.features.DenseBlock_<i>.DenseLayer_<j>.features.<k>``,
``_model.features.Transition_<i>.<k>``, ``_model.finalize.0``, ``_model.output``), so a
torch model converts with ``torch_to_nnx`` without a name map. Input NHWC; the dense
blocks concatenate on the last (channel) axis in torch's channel order.

>>> import jax.numpy as jnp
>>> model = DenseNetFlex((1, 3, 8, 8), 10, num_init_features=32, growth_rate=16,
...                      flex_block_config=[1, 1, 1, 1], rngs=nnx.Rngs(0))
>>> model(jnp.zeros((2, 8, 8, 3))).shape
(2, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_common.validation import (
    check_densenet_hyperparameters,
    check_positive_int,
    densenet_spec_entry,
    densenet_transition_channels,
    parse_densenet_transition,
)
from bitorch_jax.models.base import Model
from bitorch_jax.models.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    QConv2d,
    ReLU,
    Sequential,
    get_initial_layers,
)

__all__ = [
    "ChannelShuffle",
    "NamedSequential",
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

DOWNSAMPLE_STRUCT = "bn,max_pool,relu,fp_conv"


class ChannelShuffle(nnx.Module):
    """torch's ``nn.ChannelShuffle(groups)`` on channels-last input: the channels, seen
    as ``(groups, C // groups)``, are transposed, so output channel ``j * groups + g`` is
    input channel ``g * (C // groups) + j``.

    >>> import jax.numpy as jnp
    >>> ChannelShuffle(2)(jnp.arange(4.0).reshape(1, 4))
    Array([[0., 2., 1., 3.]], dtype=float32)
    """

    def __init__(self, groups: int) -> None:
        self.groups = check_positive_int(groups, "groups", "ChannelShuffle")

    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        if channels % self.groups:
            raise ValueError(
                f"ChannelShuffle: {channels} channels are not divisible by {self.groups} groups"
            )
        shuffled = x.reshape(*x.shape[:-1], self.groups, channels // self.groups)
        return jnp.swapaxes(shuffled, -1, -2).reshape(x.shape)


class NamedSequential(nnx.Module):
    """torch's ``nn.Sequential`` with named children (``add_module``) for NNX: the layers
    are attributes called in the order they were added, so their state paths are the
    torch ``state_dict`` prefixes (``"0"``, ``"DenseBlock_1"``, ...).

    >>> import jax.numpy as jnp
    >>> seq = NamedSequential(("0", ReLU()))
    >>> seq.add_module("shuffle", ChannelShuffle(2))
    >>> seq(jnp.array([[-1.0, 2.0, 3.0, -4.0]]))
    Array([[0., 3., 2., 0.]], dtype=float32)
    """

    def __init__(self, *named_layers: tuple[str, Any]) -> None:
        self._names: tuple[str, ...] = ()
        for name, layer in named_layers:
            self.add_module(name, layer)

    def add_module(self, name: str, layer: Any) -> None:
        """Append ``layer`` under the attribute ``name``."""
        if not isinstance(name, str) or not name or "." in name or name in self._names:
            raise ValueError(f"NamedSequential: bad or repeated layer name {name!r}")
        setattr(self, name, layer)
        self._names = (*self._names, name)

    def __call__(self, x: jax.Array) -> jax.Array:
        for name in self._names:
            x = getattr(self, name)(x)
        return x


class DenseLayer(nnx.Module):
    """One dense layer (see :class:`bitorch.models.densenet.DenseLayer`): ``features`` =
    BatchNorm, binary convolution (and Dropout when ``dropout``), twice with a
    bottleneck; returns the ``growth_rate`` new channels."""

    def __init__(
        self,
        num_features: int,
        growth_rate: int,
        bn_size: int,
        dropout: float,
        dilation: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        self.dropout = dropout
        self.num_features = num_features
        layers: list[nnx.Module] = []

        def conv_block(conv: nnx.Module) -> None:
            # as in 0.4.1, every BatchNorm of the layer has num_features channels
            layers.append(BatchNorm(num_features, param_dtype=param_dtype))
            layers.append(conv)
            if dropout:
                layers.append(Dropout(dropout, rngs=rngs))

        def qconv(cin: int, cout: int, k: int, d: int) -> QConv2d:
            return QConv2d(
                cin, cout, k, padding=d if k == 3 else 0, dilation=d,
                param_dtype=param_dtype, rngs=rngs,
            )  # fmt: skip

        if bn_size == 0:
            conv_block(qconv(num_features, growth_rate, 3, dilation))
        else:
            conv_block(qconv(num_features, bn_size * growth_rate, 1, 1))
            conv_block(qconv(bn_size * growth_rate, growth_rate, 3, 1))
        self.features = Sequential(*layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.features(x)


class DenseBlock(nnx.Module):
    """``DenseLayer_1`` ... ``DenseLayer_<num_layers>``; each sees the input and the
    outputs before it, concatenated on the channel axis, and all are returned
    concatenated (see :class:`bitorch.models.densenet.DenseBlock`)."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        dropout: float,
        dilation: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        self.num_layers = num_layers
        for i in range(num_layers):
            layer = DenseLayer(
                num_input_features + i * growth_rate,
                growth_rate,
                bn_size,
                dropout,
                dilation,
                rngs=rngs,
                param_dtype=param_dtype,
            )
            setattr(self, f"DenseLayer_{i + 1}", layer)

    def __call__(self, init_features: jax.Array) -> jax.Array:
        features = [init_features]
        for i in range(self.num_layers):
            layer = getattr(self, f"DenseLayer_{i + 1}")
            features.append(layer(jnp.concatenate(features, axis=-1)))
        return jnp.concatenate(features, axis=-1)


class BaseNetDense(nnx.Module):
    """The network of BinaryDenseNet and (as in 0.4.1) MeliusNet: ``features`` (stem,
    ``DenseBlock_<i>``, ``Transition_<i>``), ``finalize`` (BatchNorm, ReLU, global
    average pool, flatten) and ``output`` (Linear); the arguments are those of
    :class:`bitorch.models.densenet.BaseNetDense`."""

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
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
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
        self.transition_layers = tuple(parse_densenet_transition(downsample, "BaseNetDense"))
        self.bn_size = bn_size
        self.growth_rate = growth_rate
        self.dropout = dropout
        self.reduction_rates = tuple(reduction)
        self.num_features = num_init_features
        dt = param_dtype

        stem = get_initial_layers(
            image_resolution, image_channels, num_init_features, rngs=rngs, param_dtype=dt
        )
        self.features = NamedSequential(*((str(i), layer) for i, layer in enumerate(stem)))
        for stage, num_layers in enumerate(block_config):
            block = DenseBlock(
                num_layers,
                self.num_features,
                bn_size,
                growth_rate,
                dropout,
                self.dilation[stage],
                rngs=rngs,
                param_dtype=dt,
            )
            self.features.add_module(f"DenseBlock_{stage + 1}", block)
            self.num_features += num_layers * growth_rate
            if stage != len(block_config) - 1:
                self._make_transition(stage, rngs, dt)

        self.finalize = Sequential(
            BatchNorm(self.num_features, param_dtype=dt),
            ReLU(),
            AdaptiveAvgPool2d(1),
            Flatten(),
        )
        self.output = Linear(self.num_features, classes, param_dtype=dt, rngs=rngs)

    def _make_transition(self, index: int, rngs: nnx.Rngs, dt: Any) -> None:
        dilation = self.dilation[index + 1]
        channels = self.num_features
        out = densenet_transition_channels(channels, self.reduction_rates[index])
        if out < 1:
            raise ValueError(
                f"BaseNetDense: transition {index + 1} would have {out} channels "
                f"({channels} // {self.reduction_rates[index]} rounded to a multiple of 32); "
                "use more features or a smaller reduction"
            )
        layers: list[nnx.Module] = []
        for name, groups in self.transition_layers:
            if name == "bn":
                layers.append(BatchNorm(channels, param_dtype=dt))
            elif name == "relu":
                layers.append(ReLU())
            elif name == "q_conv":
                layers.append(QConv2d(channels, out, 1, param_dtype=dt, rngs=rngs))
            elif name == "fp_conv":
                layers.append(
                    Conv2d(
                        channels,
                        out,
                        1,
                        groups=groups or 1,
                        bias=False,
                        param_dtype=dt,
                        rngs=rngs,
                    )  # fmt: skip
                )
            elif name == "pool" and dilation == 1:
                layers.append(AvgPool2d(2, 2))
            elif name == "max_pool" and dilation == 1:
                layers.append(MaxPool2d(2, 2))
            elif name == "cs":
                layers.append(ChannelShuffle(groups or 16))
        self.features.add_module(f"Transition_{index + 1}", Sequential(*layers))
        self.num_features = out

    def __call__(self, x: jax.Array) -> jax.Array:
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
    *,
    rngs: nnx.Rngs,
    param_dtype: Any = jnp.float32,
) -> BaseNetDense:
    """Build ``model`` for the entry ``num_layers`` of ``spec`` (see
    :func:`bitorch.models.densenet.basedensenet_constructor`)."""
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
        rngs=rngs,
        param_dtype=param_dtype,
    )


class DenseNet(Model):
    """BinaryDenseNet with ``num_layers`` 28, 37 or 45 (``None``: ``flex_block_config``),
    called as the torch model (``input_shape`` in NCHW form) plus ``rngs`` and
    ``param_dtype``; input NHWC."""

    name = "DenseNet"

    # num_layers: (block_config, reduction factors, downsample structure), as in torch
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
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
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
            input_shape[-2:],  # as given, as in torch (a list [224, 224] is not the tuple)
            self._input_shape[1],
            rngs=rngs,
            param_dtype=param_dtype,
        )


class DenseNetFlex(DenseNet):
    """BinaryDenseNet with the dense blocks of ``flex_block_config`` (four entries)."""

    name = "DenseNetFlex"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)


class DenseNet28(DenseNet):
    """BinaryDenseNet-28, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "DenseNet28"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(28, *args, **kwargs)


class DenseNet37(DenseNet):
    """BinaryDenseNet-37, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "DenseNet37"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(37, *args, **kwargs)


class DenseNet45(DenseNet):
    """BinaryDenseNet-45, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "DenseNet45"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(45, *args, **kwargs)
