"""LeNet with binary layers for NNX (twin of :mod:`bitorch.models.lenet`).

Same ``lenet_version`` table and the same layer indices as bitorch 0.4.1 (``_model.4``
the ``QConv2d``, ``_model.7`` a parameter-free ``ShapePrintDebug``), so a torch LeNet
converts with ``torch_to_nnx`` without a name map. Input NHWC, e.g. ``(N, 28, 28, 1)``.

>>> import jax.numpy as jnp
>>> # abstractly (shapes only, fast); drop nnx.eval_shape for real weights
>>> model = nnx.eval_shape(lambda: LeNet((1, 1, 28, 28), num_classes=10, rngs=nnx.Rngs(0)))
>>> nnx.eval_shape(lambda m, x: m(x), model, jnp.zeros((2, 28, 28, 1))).shape
(2, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx

from bitorch_jax.layers.nnx import QActivation, QLinear
from bitorch_jax.models.base import Model
from bitorch_jax.models.layers import (
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    QConv2d,
    Sequential,
    ShapePrintDebug,
    Tanh,
)

__all__ = ["LeNet"]

# lenet_version -> (conv weight, conv input, linear weight, linear input) quantization
_VERSIONS = {
    0: ("sign", "sign", "sign", "sign"),
    1: ("weightdorefa", "weightdorefa", "weightdorefa", "weightdorefa"),
    2: ("sign", "weightdorefa", "sign", "weightdorefa"),
    3: ("sign", "weightdorefa", "sign", "weightdorefa"),
}


class LeNet(Model):
    """LeNet for ``input_shape`` (N, C, 28, 28) (torch NCHW form): quantized
    (``lenet_version`` 0 to 3, see :mod:`bitorch.models.lenet`) or full precision."""

    num_channels_conv = 64
    num_fc = 1000
    name = "LeNet"

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 0,
        lenet_version: int = 0,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
        self.input_channels = self._input_shape[1]
        self.num_output = self._num_classes
        if lenet_version in _VERSIONS:
            self._model = self.generate_quant_model(*_VERSIONS[lenet_version], rngs=rngs)
        else:
            self._model = self._full_precision_model(rngs)

    def generate_quant_model(
        self,
        weight_quant: str,
        input_quant: str,
        weight_quant_2: str | None = None,
        input_quant_2: str | None = None,
        *,
        rngs: nnx.Rngs,
    ) -> Sequential:
        """The quantized LeNet; ``weight_quant_2``/``input_quant_2`` (default: the first
        ones) are for the linear layer."""
        weight_quant_2 = weight_quant_2 or weight_quant
        input_quant_2 = input_quant_2 or input_quant
        channels, dt = self.num_channels_conv, self.param_dtype
        return Sequential(
            Conv2d(self.input_channels, channels, 5, param_dtype=dt, rngs=rngs),
            Tanh(),
            MaxPool2d(2, 2),
            BatchNorm(channels, param_dtype=dt),
            QConv2d(
                channels,
                channels,
                5,
                input_quantization=input_quant,
                weight_quantization=weight_quant,
                param_dtype=dt,
                rngs=rngs,
            ),
            BatchNorm(channels, param_dtype=dt),
            MaxPool2d(2, 2),
            ShapePrintDebug(),
            Flatten(),
            QActivation(input_quant_2),
            QLinear(
                channels * 4 * 4,
                self.num_fc,
                weight_quantization=weight_quant_2,
                param_dtype=dt,
                rngs=rngs,
            ),
            BatchNorm(self.num_fc, param_dtype=dt),
            Tanh(),
            Linear(self.num_fc, self.num_output, param_dtype=dt, rngs=rngs),
        )

    def _full_precision_model(self, rngs: nnx.Rngs) -> Sequential:
        channels, dt = self.num_channels_conv, self.param_dtype
        return Sequential(
            Conv2d(self.input_channels, channels, 5, param_dtype=dt, rngs=rngs),
            BatchNorm(channels, param_dtype=dt),
            Tanh(),
            MaxPool2d(2, 2),
            Conv2d(channels, channels, 5, param_dtype=dt, rngs=rngs),
            BatchNorm(channels, param_dtype=dt),
            Tanh(),
            MaxPool2d(2, 2),
            Flatten(),
            Linear(channels * 4 * 4, self.num_fc, param_dtype=dt, rngs=rngs),
            BatchNorm(self.num_fc, param_dtype=dt),
            Tanh(),
            Linear(self.num_fc, self.num_output, param_dtype=dt, rngs=rngs),
        )
