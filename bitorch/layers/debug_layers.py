"""Debug layers (bitorch 0.4.1's ``bitorch.layers.debug_layers``).

Each passes its input through unchanged and, every ``debug_interval``-th call while the
layer config's ``debug_activated`` is ``True``, shows something: ``InputPrintDebug``
prints the input's first ``num_outputs`` entries, ``ShapePrintDebug`` the input's shape,
``WeightPrintDebug(module)`` runs ``module`` and prints its weight; the ``Graphical``
variants draw into ``images`` (objects with ``set_data``) of a matplotlib-like ``figure``
(``figure.canvas.draw()``), one image per filter, each normalised to ``[0, 1]``.

>>> from bitorch.layers.config import config
>>> layer = ShapePrintDebug(debug_interval=1, name="shape")
>>> config.debug_activated = True
>>> layer(torch.zeros(2, 3)).shape
shape : tensor([2, 3])
torch.Size([2, 3])
>>> config.debug_activated = False
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bitorch.layers.config import config

__all__ = [
    "InputGraphicalDebug",
    "InputPrintDebug",
    "ShapePrintDebug",
    "WeightGraphicalDebug",
    "WeightPrintDebug",
]


class _Debug(nn.Module):
    """Counts calls and shows a tensor every ``debug_interval``-th call when the config's
    ``debug_activated`` is set."""

    def __init__(
        self, debug_interval: int = 100, num_outputs: int = 10, name: str = "Debug"
    ) -> None:
        super().__init__()
        self._debug_interval = debug_interval
        self._num_outputs = num_outputs
        self.name = name
        self._forward_counter = 0

    def _debug(self, debug_tensor: torch.Tensor) -> None:
        """Show ``debug_tensor`` (subclasses)."""

    def _debug_tensor(self, debug_tensor: torch.Tensor) -> None:
        if config.debug_activated and self._forward_counter % self._debug_interval == 0:
            self._debug(debug_tensor)
        self._forward_counter += 1


class _PrintDebug(_Debug):
    def _debug(self, debug_tensor: torch.Tensor) -> None:
        """Print ``name : `` and the first ``num_outputs`` entries (all if fewer)."""
        shown = (
            debug_tensor
            if len(debug_tensor) < self._num_outputs
            else debug_tensor[: self._num_outputs]
        )
        print(self.name, ":", shown)


class _GraphicalDebug(_Debug):
    def __init__(
        self,
        figure: Any | None = None,
        images: list | None = None,
        debug_interval: int = 100,
        num_outputs: int = 10,
    ) -> None:
        super().__init__(debug_interval, num_outputs)
        self.set_figure(figure)
        self.set_images(images)

    def set_figure(self, figure: Any | None = None) -> None:
        """The figure whose ``canvas.draw()`` is called after the images are updated."""
        self._figure = figure

    def set_images(self, images: list | None = None) -> None:
        """One image per shown filter; their number must be ``num_outputs``."""
        if images is not None and len(images) != self._num_outputs:
            raise ValueError(
                f"number of given images ({len(images)}) must match number of desired "
                f"outputs ({self._num_outputs})!"
            )
        self._images = images

    def _debug(self, debug_tensor: torch.Tensor) -> None:
        """Draw the tensor's 2-d filters (the tensor itself if 2-d; per ``[i, j]`` for 3-d
        and 4-d, per ``[i, j, k]`` for 5-d), each scaled to ``[0, 1]``."""
        if self._figure is None or self._images is None:
            raise ValueError("no subplot given to debug into!")
        tensor = debug_tensor.detach().clone()
        if tensor.dim() == 2:
            filters = [tensor]
        elif tensor.dim() in (3, 4):
            filters = [tensor[i, j] for i in range(tensor.shape[0]) for j in range(tensor.shape[1])]
        elif tensor.dim() == 5:
            filters = [
                tensor[i, j, k]
                for i in range(tensor.shape[0])
                for j in range(tensor.shape[1])
                for k in range(tensor.shape[2])
            ]
        else:
            filters = []
        for image, fltr in zip(self._images, filters, strict=False):  # as many as both have
            fltr = fltr - torch.min(fltr)
            image.set_data(fltr / torch.max(fltr))
        self._figure.canvas.draw()


class InputPrintDebug(_PrintDebug):
    """Prints the input (every ``debug_interval``-th call, when debugging is on)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._debug_tensor(x)
        return x


class InputGraphicalDebug(_GraphicalDebug):
    """Draws the input (every ``debug_interval``-th call, when debugging is on)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._debug_tensor(x)
        return x


def _module_weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight.clone()  # type: ignore[operator]
    quantize = getattr(module, "quantize", None)  # as in 0.4.1: a module's own quantize()
    return quantize(weight) if quantize is not None else weight


class WeightPrintDebug(_PrintDebug):
    """Runs ``module`` and prints its ``weight``."""

    def __init__(self, module: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._debug_module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._debug_module(x)
        self._debug_tensor(_module_weight(self._debug_module))
        return x


class WeightGraphicalDebug(_GraphicalDebug):
    """Runs ``module`` and draws its ``weight``."""

    def __init__(self, module: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._debug_module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._debug_module(x)
        self._debug_tensor(_module_weight(self._debug_module))
        return x


class ShapePrintDebug(_PrintDebug):
    """Prints the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._debug_tensor(torch.tensor(x.shape))
        return x
