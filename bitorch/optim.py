"""Optimizers of binary networks for PyTorch: Bop and latent-weight clipping (the reference).

* :class:`Bop` -- the Binary Optimizer (Helwegen et al., 2019, "Latent Weights Do Not Exist:
  Rethinking Binarized Neural Network Optimization"), a ``torch.optim.Optimizer`` for
  binary (±1) weights. Per element, with gradient ``g``, weight ``w`` and momentum ``m``::

      m <- (1 - gamma) * m + gamma * g
      w <- -w   where |m| > threshold and sign(m) == sign(w), else w

  Defaults as larq's ``Bop``: ``threshold=1e-8``, ``gamma=1e-4``. Bop works on the sign:
  it negates whatever is stored, so store binary weights as ±1 (:func:`binarize_`).
* :func:`binary_parameters`, :func:`split_binary_parameters` -- the weights of layers with a
  1-bit weight quantizer, and the rest. One ``torch.optim.Optimizer`` runs one algorithm
  (its param groups only change hyperparameters), so Bop for the binary weights and Adam
  for the rest are two optimizers, stepped together::

      binary, other = split_binary_parameters(model)
      binarize_(binary)
      optimizers = [Bop(binary), torch.optim.Adam(other, lr=1e-3)]
      ...
      loss.backward()
      for opt in optimizers:
          opt.step()
          opt.zero_grad()

  Bop's own param groups give different hyperparameters to different binary weights:
  ``Bop([{"params": convs, "gamma": 1e-3}, {"params": fcs}], threshold=1e-7)``.
* :func:`clip_weights_` -- larq's ``weight_clip``: clip latent weights to
  ``[-clip_value, clip_value]``; call it after ``optimizer.step()``.

:mod:`bitorch_jax.optim` is the optax port; the same steps give bit-equal weights and
momenta in float32 and float64 (``parity_tests/test_optim_parity.py``).

>>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0, 1.0]))
>>> opt = Bop([w], threshold=0.5, gamma=0.5)
>>> w.grad = torch.tensor([2.0, 2.0, -2.0])
>>> opt.step()
>>> w.data, opt.state[w]["momentum"]  # m = [1, 1, -1]: only w[0] agrees
(tensor([-1., -1.,  1.]), tensor([ 1.,  1., -1.]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from bitorch.quantizations import Quantization
from bitorch_common.validation import (
    check_clip_value,
    check_non_negative_real,
    check_unit_fraction,
)

__all__ = ["Bop", "binarize_", "binary_parameters", "split_binary_parameters", "clip_weights_"]


class Bop(torch.optim.Optimizer):
    """Bop: flip a binary weight where the gradients' moving average agrees with it.

    ``m <- (1 - gamma) * m + gamma * g`` (``m`` starts at 0; state ``"momentum"`` per
    parameter); then ``w <- -w`` where ``|m| > threshold`` (strict) and
    ``sign(m) == sign(w)``. ``threshold >= 0`` (finite), ``gamma`` in ``(0, 1]``, per param
    group; defaults as larq. The threshold is compared in the parameter's dtype. Parameters
    without a gradient are skipped; sparse gradients are refused.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    >>> opt = Bop([w], threshold=0.0, gamma=1.0)
    >>> w.grad = torch.tensor([0.5, 0.5])
    >>> opt.step(); w.data
    tensor([-1., -1.])
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        threshold: float = 1e-8,
        gamma: float = 1e-4,
    ) -> None:
        defaults = {
            "threshold": check_non_negative_real(threshold, "threshold", "Bop"),
            "gamma": check_unit_fraction(gamma, "gamma", "Bop"),
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.add_param_group``, with the group's ``threshold`` and
        ``gamma`` checked first."""
        if "threshold" in param_group:
            param_group["threshold"] = check_non_negative_real(
                param_group["threshold"], "threshold", "Bop"
            )
        if "gamma" in param_group:
            param_group["gamma"] = check_unit_fraction(param_group["gamma"], "gamma", "Bop")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One Bop step for every parameter with a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            decay = 1.0 - group["gamma"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Bop does not support sparse gradients")
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m = state["momentum"]
                # Two products, each rounded, then their sum (no fused multiply-add).
                m.mul_(decay).add_(p.grad.to(m.dtype).mul(group["gamma"]))
                threshold = torch.tensor(group["threshold"], dtype=m.dtype, device=m.device)
                flip = (m.abs() > threshold) & (torch.sign(m) == torch.sign(p))
                p.copy_(torch.where(flip, p.neg(), p))
        return loss


def _is_binary_layer(module: nn.Module) -> bool:
    quantizer = getattr(module, "weight_quantization", None)
    return isinstance(quantizer, Quantization) and quantizer.bit_width == 1


def binary_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The ``weight`` of every layer of ``module`` whose weight quantizer is 1-bit
    (``weight_quantization.bit_width == 1``: ``QLinear``, ``QConv1d/2d/3d`` with ``"sign"``
    and the like), once each.

    >>> from bitorch.layers import QLinear
    >>> [tuple(p.shape) for p in binary_parameters(nn.Sequential(QLinear(3, 2), nn.Linear(2, 1)))]
    [(2, 3)]
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"binary_parameters: expected a torch.nn.Module, got {type(module).__name__}"
        )
    out: list[nn.Parameter] = []
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if _is_binary_layer(layer) and isinstance(weight, nn.Parameter):
            if not any(weight is p for p in out):
                out.append(weight)
    return out


def split_binary_parameters(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(binary, other)``: :func:`binary_parameters` and every other parameter of
    ``module``, for ``Bop(binary)`` and, say, ``torch.optim.Adam(other)``."""
    binary = binary_parameters(module)
    ids = {id(p) for p in binary}
    return binary, [p for p in module.parameters() if id(p) not in ids]


def _tensors(module_or_params: nn.Module | Iterable[torch.Tensor], where: str) -> list:
    if isinstance(module_or_params, nn.Module):
        return binary_parameters(module_or_params)
    if isinstance(module_or_params, torch.Tensor):
        return [module_or_params]
    tensors = list(module_or_params)
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: expected a Module or tensors, got a {type(t).__name__}")
    return tensors


@torch.no_grad()
def binarize_(module_or_params: nn.Module | Iterable[torch.Tensor]) -> None:
    """In place, every tensor to ±1: ``-1`` where ``< 0``, else ``+1`` (the sign
    quantizer's rule). A module: its :func:`binary_parameters`.

    >>> w = torch.tensor([-0.3, 0.0, 2.0]); binarize_([w]); w
    tensor([-1.,  1.,  1.])
    """
    for t in _tensors(module_or_params, "binarize_"):
        t.copy_(torch.where(t < 0, -torch.ones_like(t), torch.ones_like(t)))


@torch.no_grad()
def clip_weights_(
    module_or_params: nn.Module | Iterable[torch.Tensor], clip_value: float = 1.0
) -> None:
    """In place, clip latent weights to ``[-clip_value, clip_value]`` (larq's
    ``weight_clip``); call after ``optimizer.step()``. A module: its
    :func:`binary_parameters`; else the tensors given.

    >>> from bitorch.layers import QLinear
    >>> layer = QLinear(2, 1)
    >>> _ = layer.weight.data.copy_(torch.tensor([[3.0, -0.5]]))
    >>> clip_weights_(layer, 1.0); layer.weight.data
    tensor([[ 1.0000, -0.5000]])
    """
    clip_value = check_clip_value(clip_value, "clip_weights_")
    for t in _tensors(module_or_params, "clip_weights_"):
        t.clamp_(-clip_value, clip_value)
