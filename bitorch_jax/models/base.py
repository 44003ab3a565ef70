"""The base class of bitorch_jax's model zoo (NNX twin of :mod:`bitorch.models.base`).

A :class:`Model` holds its network in ``self._model``, so its NNX state paths start with
``_model.`` as the torch ``state_dict`` keys do. ``input_shape`` is given in torch's
NCHW form (batch included), so the same constructor call builds both twins; the NNX
model itself takes NHWC input.

>>> import jax.numpy as jnp
>>> from bitorch_jax.models.layers import Flatten, Linear, Sequential
>>> class Tiny(Model):
...     name = "Tiny"
...     def __init__(self, input_shape, num_classes=0, *, rngs, param_dtype=jnp.float32):
...         super().__init__(input_shape, num_classes, rngs=rngs, param_dtype=param_dtype)
...         self._model = Sequential(Flatten(), Linear(4, num_classes, rngs=rngs))
>>> Tiny((1, 1, 2, 2), num_classes=3, rngs=nnx.Rngs(0))(jnp.zeros((5, 2, 2, 1))).shape
(5, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_common.validation import check_int, is_int
from bitorch_jax.models.layers import Identity

__all__ = ["Model"]


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    if (
        isinstance(input_shape, str)
        or not isinstance(input_shape, Sequence)
        or len(input_shape) < 2
        or not all(is_int(v) and v >= 1 for v in input_shape)
    ):
        raise ValueError(
            "Model: input_shape must be the torch NCHW input shape, batch included "
            f"(e.g. (1, 3, 32, 32)), got {input_shape!r}"
        )
    return tuple(int(v) for v in input_shape)


class Model(nnx.Module):
    """Base class of the bitorch_jax models: the network is ``self._model``.

    ``input_shape``: the torch NCHW input shape (batch included) the model is built for;
    ``num_classes``: the number of outputs; ``rngs``: initialisation; ``param_dtype``:
    the parameters' dtype. Subclasses set the class attribute ``name`` (the registry key,
    looked up case-insensitively) and build ``self._model``.
    """

    name = ""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 0,
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float32,
    ) -> None:
        self._input_shape = _check_input_shape(input_shape)
        self._num_classes = check_int(num_classes, "num_classes", type(self).__name__)
        self.param_dtype = param_dtype
        self._model: Any = Identity()

    def model(self) -> nnx.Module:
        """The network (``self._model``)."""
        return self._model

    def __call__(self, x: jax.Array) -> jax.Array:
        """The network's output for the NHWC (or ``(N, features)``) input ``x``."""
        return self._model(x)
