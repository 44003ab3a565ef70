"""MeliusNet for NNX (twin of :mod:`bitorch.models.meliusnet`).

As bitorch 0.4.1 builds it, a MeliusNet is a
:class:`~bitorch_jax.models.densenet.BaseNetDense` with MeliusNet's block configurations,
reductions and transitions (0.4.1 never inserts its improvement blocks; see
:mod:`bitorch.models.meliusnet`), with the same module names, so a torch model converts
with ``torch_to_nnx`` without a name map. :class:`ImprovementBlock` is provided on its
own; ``MeliusNet29`` exists but is not registered, as in 0.4.1. Input NHWC.

>>> import jax.numpy as jnp
>>> model = MeliusNetFlex((1, 3, 8, 8), 10, num_init_features=32, growth_rate=16,
...                       flex_block_config=[1, 1, 1, 1], rngs=nnx.Rngs(0))
>>> model(jnp.zeros((2, 8, 8, 3))).shape
(2, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_common.validation import check_positive_int
from bitorch_jax.models.base import Model
from bitorch_jax.models.densenet import DOWNSAMPLE_STRUCT, BaseNetDense, basedensenet_constructor
from bitorch_jax.models.layers import BatchNorm, QConv2d, Sequential

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


class ImprovementBlock(nnx.Module):
    """Improves the last ``channels`` of ``in_channels`` channels with ``body``
    (BatchNorm, binary 3x3 convolution); see
    :class:`bitorch.models.meliusnet.ImprovementBlock`."""

    def __init__(
        self,
        channels: int,
        in_channels: int,
        dilation: int = 1,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        where = "ImprovementBlock"
        channels = check_positive_int(channels, "channels", where)
        in_channels = check_positive_int(in_channels, "in_channels", where)
        if channels > in_channels:
            raise ValueError(
                f"{where}: channels ({channels}) must be at most in_channels ({in_channels})"
            )
        self.body = Sequential(
            BatchNorm(in_channels, param_dtype=param_dtype),
            QConv2d(
                in_channels,
                channels,
                3,
                padding=dilation,
                dilation=dilation,
                param_dtype=param_dtype,
                rngs=rngs,
            ),  # fmt: skip
        )
        self.use_sliced_addition = channels != in_channels
        self.kept_channels = in_channels - channels

    def __call__(self, x: jax.Array) -> jax.Array:
        improvement = self.body(x)
        if not self.use_sliced_addition:
            return improvement + x
        kept = x[..., : self.kept_channels]
        return jnp.concatenate([kept, x[..., self.kept_channels :] + improvement], axis=-1)


class _MeliusNet(BaseNetDense):
    """0.4.1's MeliusNet network: :class:`BaseNetDense` as it is."""


class MeliusNet(Model):
    """MeliusNet with ``num_layers`` one of ``"22"``, ``"23"``, ``"29"``, ``"42"``,
    ``"59"``, ``"a"``, ``"b"``, ``"c"`` (``None``: ``flex_block_config``), called as the
    torch model (``input_shape`` in NCHW form) plus ``rngs`` and ``param_dtype``; input
    NHWC."""

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
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
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
            input_shape[-2:],  # as given, as in torch (a list [224, 224] is not the tuple)
            self._input_shape[1],
            rngs=rngs,
            param_dtype=param_dtype,
        )


class MeliusNetFlex(MeliusNet):
    """MeliusNet with the dense blocks of ``flex_block_config`` (four entries)."""

    name = "MeliusNetFlex"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)


class MeliusNet22(MeliusNet):
    """MeliusNet-22, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNet22"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("22", *args, **kwargs)


class MeliusNet23(MeliusNet):
    """MeliusNet-23, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNet23"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("23", *args, **kwargs)


class MeliusNet29(MeliusNet):
    """MeliusNet-29, called ``(input_shape, num_classes=0, ..., *, rngs)``; not
    registered, as in 0.4.1."""

    name = "MeliusNet29"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("29", *args, **kwargs)


class MeliusNet42(MeliusNet):
    """MeliusNet-42, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNet42"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("42", *args, **kwargs)


class MeliusNet59(MeliusNet):
    """MeliusNet-59, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNet59"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("59", *args, **kwargs)


class MeliusNetA(MeliusNet):
    """MeliusNet-A, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNetA"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("a", *args, **kwargs)


class MeliusNetB(MeliusNet):
    """MeliusNet-B, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNetB"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("b", *args, **kwargs)


class MeliusNetC(MeliusNet):
    """MeliusNet-C, called ``(input_shape, num_classes=0, ..., *, rngs)``."""

    name = "MeliusNetC"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("c", *args, **kwargs)
