"""The base class of bitorch's model zoo (bitorch 0.4.1's ``bitorch.models.base``).

A :class:`Model` holds its network in ``self._model`` (so every ``state_dict`` key starts
with ``_model.``), keeps the ``input_shape`` (NCHW, batch included) and ``num_classes``
it was built for, and forwards through ``self._model``. 0.4.1's model hub,
``from_pretrained``, ``as_backbone`` and runtime-mode ``convert`` are not part of it.

>>> import torch
>>> from torch import nn
>>> class Tiny(Model):
...     name = "Tiny"
...     def __init__(self, input_shape, num_classes=0):
...         super().__init__(input_shape, num_classes)
...         self._model = nn.Sequential(nn.Flatten(), nn.Linear(4, num_classes))
>>> Tiny((1, 1, 2, 2), num_classes=3)(torch.zeros(5, 1, 2, 2)).shape
torch.Size([5, 3])
"""

from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bitorch.layers import QConv1d_NoAct, QConv2d_NoAct, QConv3d_NoAct

__all__ = ["Model", "NoArgparseArgsMixin"]

# every binary convolution of bitorch.layers (QConv*d, QConv*dBase, QConv*d_NoAct)
_BINARY_CONVS = (QConv1d_NoAct, QConv2d_NoAct, QConv3d_NoAct)


class Model(nn.Module):
    """Base class of the bitorch models: the network is ``self._model``.

    ``input_shape``: the NCHW input shape (batch included) the model is built for;
    ``num_classes``: the number of outputs. Subclasses set the class attribute ``name``
    (their registry key, looked up case-insensitively).
    """

    name = ""

    def __init__(self, input_shape: Sequence[int], num_classes: int = 0) -> None:
        super().__init__()
        self._model = nn.Module()
        self._input_shape = input_shape
        self._num_classes = num_classes

    @staticmethod
    def add_argparse_arguments(parser: ArgumentParser) -> None:
        """Add this model's command line arguments to ``parser`` (none by default); their
        names are passed as keyword arguments to the constructor."""

    def model(self) -> nn.Module:
        """The network (``self._model``)."""
        return self._model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for ``x``."""
        return self._model(x)

    def initialize(self) -> None:
        """Re-initialise the weights as bitorch 0.4.1 does for binary networks.

        Binary convolutions and full-precision convolutions get Xavier-normal weights,
        except a 7x7 (first) full-precision convolution, which gets Kaiming-normal (ReLU)
        weights; full-precision convolution biases become zero; ``nn.Linear`` weights get
        Xavier-normal (their biases are left as they are).
        """
        for module in self._model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                if isinstance(module, _BINARY_CONVS):
                    nn.init.xavier_normal_(module.weight)
                    continue
                if module.kernel_size[0] == 7:
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)

    def on_train_batch_end(self, layer: nn.Module) -> None:
        """Hook for a training loop after each batch (0.4.1: PyTorch Lightning's
        ``on_train_batch_end``), applied to every submodule; does nothing by default."""


class NoArgparseArgsMixin:
    """Mixin for a model that subclasses another one but has no command line arguments
    of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    @staticmethod
    def add_argparse_arguments(parser: ArgumentParser) -> None:
        """No arguments."""
