"""ReActNet's learnable activations ``RSign`` and ``RPReLU`` (Liu et al., "ReActNet:
Towards Precise Binary Neural Network with Generalized Activation Functions", 2020). Not
part of bitorch 0.4.1; :mod:`bitorch_jax.layers.react` is the JAX mirror.

The per-channel parameters (shape ``(C,)``) broadcast over dimension 1 of an ``(N, C)`` or
``(N, C, *spatial)`` input. With ``z = x + bias`` (``RSign``) or ``z = x + bias_in``
(``RPReLU``) and the incoming gradient ``g``::

    RSign:   y = q(z) = +1 if z >= 0 else -1     (the "sign" quantizer; NaN stays NaN)
             dL/dx    = g where |z| <= t, else 0  (straight-through, gradient cancellation
                                                  at t = gradient_cancellation_threshold;
                                                  t = 0 turns it off)
             dL/dbias = dL/dx summed over every dimension but 1

    RPReLU:  y = z + bias_out          where z > 0
             y = slope * z + bias_out  where z <= 0     (torch's PReLU, then a shift)
             dL/dx        = g where z > 0, else slope * g
             dL/dbias_in  = dL/dx summed over every dimension but 1
             dL/dslope    = (g * z where z <= 0, else 0) summed likewise
             dL/dbias_out = g summed likewise

``RSign`` quantizes exactly as :class:`~bitorch.layers.QActivation` (gradient
cancellation, then the quantizer, any registry name; ReActNet's paper uses ApproxSign's
gradient, ``"approxsign"``). Parameters: ``RSign.bias`` (zeros), ``RPReLU.bias_in``
(zeros), ``RPReLU.slope`` (0.25, torch's ``nn.PReLU`` default), ``RPReLU.bias_out``
(zeros); :mod:`bitorch_jax.convert` carries them under the same names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bitorch.layers.qactivation import activation_arguments, gradient_cancellation
from bitorch.quantizations import Quantization
from bitorch.quantizations.base import check_float_tensor
from bitorch_common.validation import check_positive_int, check_real

__all__ = ["RSign", "RPReLU"]


def _channel_view(x: torch.Tensor, parameter: torch.Tensor, where: str) -> torch.Tensor:
    """``parameter`` ``(C,)`` viewed as ``(1, C, 1, ...)`` for ``x``; checks ``x``'s shape."""
    channels = parameter.shape[0]
    if x.dim() < 2 or x.shape[1] != channels:
        raise ValueError(
            f"{where}: expected an input of shape (N, {channels}) or (N, {channels}, ...) "
            f"(channels on dimension 1), got {tuple(x.shape)}"
        )
    return parameter.view(1, channels, *([1] * (x.dim() - 2)))


class RSign(nn.Module):
    """ReActNet's RSign: ``q(x + bias)``, a learnable per-channel shift before the sign.

    ``bias`` ``(in_channels,)`` starts at zeros; ``activation`` (default ``None``: the
    layer config's ``input_quantization``, ``"sign"``) and
    ``gradient_cancellation_threshold`` (``None``: the config's, 1.0; ``0`` off) as for
    :class:`~bitorch.layers.QActivation`. Formulas in :mod:`bitorch.layers.react`.

    >>> layer = RSign(2)
    >>> _ = layer.bias.data.copy_(torch.tensor([-0.5, 0.5]))
    >>> layer(torch.tensor([[0.3, -0.2]]))
    tensor([[-1.,  1.]], grad_fn=<SignFunctionBackward>)
    """

    def __init__(
        self,
        in_channels: int,
        activation: str | Quantization | None = None,
        gradient_cancellation_threshold: float | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", "RSign")
        quantization, threshold = activation_arguments(
            activation, gradient_cancellation_threshold, "RSign"
        )
        self.activation_function = quantization
        self.gradient_cancellation_threshold = threshold
        self.bias = nn.Parameter(torch.zeros(in_channels, device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, "
            f"gradient_cancellation_threshold={self.gradient_cancellation_threshold}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_float_tensor(x, "RSign")
        shifted = x + _channel_view(x, self.bias, "RSign")
        return self.activation_function(
            gradient_cancellation(shifted, self.gradient_cancellation_threshold)
        )


class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``prelu(x + bias_in; slope) + bias_out``, all per channel.

    Parameters ``bias_in`` (zeros), ``slope`` (``init``, 0.25 as ``nn.PReLU``) and
    ``bias_out`` (zeros), each ``(num_parameters,)``. Formulas in
    :mod:`bitorch.layers.react`.

    >>> layer = RPReLU(2)
    >>> _ = layer.bias_out.data.copy_(torch.tensor([0.0, 1.0]))
    >>> layer(torch.tensor([[1.0, -2.0]]))
    tensor([[1.0000, 0.5000]], grad_fn=<AddBackward0>)
    """

    def __init__(
        self,
        num_parameters: int,
        init: float = 0.25,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_parameters = check_positive_int(num_parameters, "num_parameters", "RPReLU")
        init = check_real(init, "init", "RPReLU")
        factory = {"device": device, "dtype": dtype}
        self.bias_in = nn.Parameter(torch.zeros(num_parameters, **factory))
        self.slope = nn.Parameter(torch.full((num_parameters,), init, **factory))
        self.bias_out = nn.Parameter(torch.zeros(num_parameters, **factory))

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_float_tensor(x, "RPReLU")
        z = x + _channel_view(x, self.bias_in, "RPReLU")
        return F.prelu(z, self.slope) + _channel_view(x, self.bias_out, "RPReLU")
