"""QuickNet for NNX (twin of :mod:`bitorch.models.quicknet`).

Same module names as bitorch 0.4.1's QuickNet (``_model.stem.<i>``,
``_model.body.ResidualBlocks_<i>.<j>.qconv``, ``_model.body.Transition_<i>.conv``,
``_model.top.3``, ...), so a torch model converts with ``torch_to_nnx`` without a name
map. ``input_shape`` is given in torch's NCHW form; the model takes NHWC input.

The depthwise blur of a transition block (torch: ``requires_grad`` off) is a
:class:`FrozenParam`: it converts like any parameter, its gradient is zero
(``stop_gradient``), and ``nnx.All(nnx.Param, nnx.Not(FrozenParam))`` leaves it out of an
optimizer (so that weight decay does not move it either). ``QuickNet.clip_weights``
clips the residual blocks' binary kernels as torch's ``on_train_batch_end`` does. Apart
from the blur, initialisers are the layers' Flax defaults, not 0.4.1's (kaiming/xavier):
weights converted from torch replace them.

>>> import jax.numpy as jnp
>>> model = QuickNet((1, 3, 32, 32), [8, 16], [1, 1], num_classes=10, rngs=nnx.Rngs(0))
>>> model(jnp.zeros((2, 32, 32, 3))).shape
(2, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bitorch_common.validation import check_positive_int
from bitorch_jax.layers.nnx import PadModule
from bitorch_jax.models.base import Model
from bitorch_jax.models.layers import (
    AdaptiveAvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    QConv2d,
    ReLU,
    Sequential,
    get_initial_layers,
)

__all__ = [
    "FrozenParam",
    "NamedSequential",
    "BlurConv2d",
    "ResidualBlock",
    "TransitionBlock",
    "QuickNet",
    "QuickNetSmall",
    "QuickNetLarge",
    "blur_kernel",
]


def blur_kernel(kernel_size: int) -> np.ndarray:
    """The normalised 2-d binomial low-pass filter (``kernel_size`` 2, 3 or 5), float64."""
    rows = {2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}
    if kernel_size not in rows:
        raise ValueError(f"QuickNet: blur filter size should be 2, 3 or 5, got {kernel_size}")
    row = np.array(rows[kernel_size])
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


class FrozenParam(nnx.Param):
    """A parameter that is not trained (torch's ``requires_grad=False``): still a
    ``Param`` (it converts and is saved), but left out by
    ``nnx.All(nnx.Param, nnx.Not(FrozenParam))``."""


class NamedSequential(nnx.Module):
    """torch's ``nn.Sequential`` with named children (``add_module(name, ...)``): the
    layers are attributes called in the given order, so state paths read
    ``<name>.kernel``.

    >>> seq = NamedSequential([("relu", ReLU()), ("flat", Flatten())])
    >>> seq(jnp.array([[-1.0, 2.0]]))
    Array([[0., 2.]], dtype=float32)
    """

    def __init__(self, layers: Sequence[tuple[str, nnx.Module]]) -> None:
        names = []
        for name, layer in layers:
            if not isinstance(name, str) or not name.isidentifier() or hasattr(self, name):
                raise ValueError(f"NamedSequential: invalid or duplicate layer name {name!r}")
            setattr(self, name, layer)
            names.append(name)
        self.layer_names = tuple(names)

    def __call__(self, x: jax.Array) -> jax.Array:
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


class BlurConv2d(nnx.Module):
    """A fixed depthwise ``kernel_size`` blur (torch: ``nn.Conv2d(c, c, k, groups=c,
    stride=stride, bias=False)`` with ``requires_grad`` off): ``kernel`` ``(k, k, 1, c)``
    is a :class:`FrozenParam` initialised to :func:`blur_kernel`; no padding."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        param_dtype: Any = jnp.float32,
    ) -> None:
        self.channels = check_positive_int(channels, "channels", "BlurConv2d")
        self.stride = check_positive_int(stride, "stride", "BlurConv2d")
        blur = blur_kernel(kernel_size)[:, :, None, None]
        self.kernel = FrozenParam(jnp.asarray(np.tile(blur, (1, 1, 1, channels)), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = jax.lax.stop_gradient(self.kernel[...])
        dtype = jnp.result_type(x, kernel)
        return jax.lax.conv_general_dilated(
            x.astype(dtype),
            kernel.astype(dtype),
            window_strides=(self.stride, self.stride),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.channels,
        )


class ResidualBlock(nnx.Module):
    """``bnorm(relu(qconv(x))) + x`` with a 3x3 binary ``qconv`` padded ("same") with
    +1 (see :class:`bitorch.models.quicknet.ResidualBlock`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        self.qconv = QConv2d(
            in_channels, out_channels, 3, padding="same", pad_value=1.0,
            param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.relu = ReLU()
        self.bnorm = BatchNorm(out_channels, momentum=0.9, param_dtype=param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.bnorm(self.relu(self.qconv(x))) + x


class TransitionBlock(NamedSequential):
    """ReLU, 2x2 max pool (stride 1), zero padding 1, the fixed depthwise 3x3 blur with
    stride ``strides``, a 1x1 convolution, ReLU, BatchNorm (see
    :class:`bitorch.models.quicknet.TransitionBlock`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        strides: int,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        dt = param_dtype
        super().__init__(
            [
                ("relu", ReLU()),
                ("pool", MaxPool2d(strides, 1)),
                ("pad", PadModule(padding_left=1, padding_right=1, padding_top=1,
                                  padding_bottom=1)),
                ("depth_conv", BlurConv2d(in_channels, 3, stride=strides, param_dtype=dt)),
                ("conv", Conv2d(in_channels, out_channels, 1, bias=False, param_dtype=dt,
                                rngs=rngs)),
                ("relu2", ReLU()),
                ("norm", BatchNorm(out_channels, momentum=0.9, param_dtype=dt)),
            ]
        )  # fmt: skip


class QuickNet(Model):
    """QuickNet with ``section_filters`` channels (default ``[64, 128, 256, 512]``) and
    ``section_blocks`` residual blocks (default ``[4, 4, 4, 4]``) per section."""

    name = "QuickNet"

    def __init__(
        self,
        input_shape: Sequence[int],
        section_filters: Sequence[int] | None = None,
        section_blocks: Sequence[int] | None = None,
        num_classes: int = 0,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
        filters = [64, 128, 256, 512] if section_filters is None else list(section_filters)
        blocks = [4, 4, 4, 4] if section_blocks is None else list(section_blocks)
        if len(filters) != len(blocks):
            raise ValueError(
                f"QuickNet: section_filters and section_blocks must have the same length, got "
                f"{len(filters)} and {len(blocks)}"
            )
        self.image_channels = self._input_shape[1]
        self.num_classes = self._num_classes
        self.section_filters = tuple(filters)
        self.section_blocks = tuple(blocks)
        dt = param_dtype
        stem = get_initial_layers(
            "quicknet_stem", self.image_channels, filters[0], rngs=rngs, param_dtype=dt
        )
        body: list[tuple[str, nnx.Module]] = []
        for index, (count, channels) in enumerate(zip(blocks, filters, strict=True)):
            residuals = [
                ResidualBlock(channels, channels, rngs=rngs, param_dtype=dt) for _ in range(count)
            ]
            body.append((f"ResidualBlocks_{index + 1}", Sequential(*residuals)))
            if index != len(blocks) - 1:
                transition = TransitionBlock(
                    channels, filters[index + 1], 2, rngs=rngs, param_dtype=dt
                )
                body.append((f"Transition_{index + 1}", transition))
        top = Sequential(
            ReLU(),
            AdaptiveAvgPool2d(1),
            Flatten(),
            Linear(filters[-1], self._num_classes, param_dtype=dt, rngs=rngs),
        )
        self._model = NamedSequential(
            [("stem", Sequential(*stem)), ("body", NamedSequential(body)), ("top", top)]
        )

    def clip_weights(self, clip_value: float = 1.25) -> None:
        """Clip the binary kernels of all residual blocks to ``[-clip_value, clip_value]``
        in place (torch: ``on_train_batch_end``)."""
        for _, module in nnx.iter_graph(self):
            if isinstance(module, ResidualBlock):
                kernel = module.qconv.kernel
                kernel[...] = jnp.clip(kernel[...], -clip_value, clip_value)


class QuickNetSmall(QuickNet):
    """QuickNet with ``section_filters`` ``[32, 64, 256, 512]``, called
    ``(input_shape, num_classes=..., *, rngs, param_dtype)``."""

    name = "QuickNetSmall"
    section_filters = (32, 64, 256, 512)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, section_filters=type(self).section_filters, **kwargs)


class QuickNetLarge(QuickNet):
    """QuickNet with ``section_blocks`` ``[6, 8, 12, 6]``, called
    ``(input_shape, num_classes=..., *, rngs, param_dtype)``."""

    name = "QuickNetLarge"
    section_blocks = (6, 8, 12, 6)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, section_blocks=type(self).section_blocks, **kwargs)
