"""SwishSign (BNN+): sign forward, the derivative of a scaled swish as gradient.

``bitorch.quantizations.swish_sign`` is this module (as in bitorch 0.4.1) and, called,
the functional form :func:`swish_sign`.
"""

from __future__ import annotations

from typing import Any

import torch

from bitorch.quantizations.base import (
    Quantization,
    check_beta,
    check_float_tensor,
    make_module_callable,
    times_gradient,
    to_compute,
    transforms_active,
)
from bitorch.quantizations.config import config
from bitorch.quantizations.sign import sign_values

__all__ = ["SwishSignFunction", "SwishSign", "swish_sign", "swish_sign_factor"]


class SwishSignFunction(torch.autograd.Function):
    """Sign with the SwishSign gradient of BNN+.

    ``q(x) = +1 if x >= 0 else -1`` (``0`` and ``-0.0`` give ``+1``; NaN gives NaN).
    ``dq/dx = beta * (2 - beta*x * tanh(beta*x / 2)) / (1 + cosh(beta*x))``, which is
    ``beta`` at ``0``; at ``±inf`` (and wherever ``beta*x`` or the numerator overflows)
    it is the limit ``0``, at NaN it is NaN. Saves the input.

    ``SwishSignFunction.apply(x, beta)`` as in bitorch 0.4.1, whose default ``beta`` here
    is ``1.0`` too (the modules and :func:`swish_sign` default to ``config.beta``).
    ``beta`` must be finite and ``> 0`` (``ValueError``).

    The backward pass takes the operations of the formula in its order, so each rounding
    is the one of ``beta * (2 - bx * tanh(bx / 2)) / (1 + cosh(bx)) * g`` with
    ``bx = beta * x`` (see :func:`swish_sign_factor`), in two new tensors.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor, beta: float = 1.0) -> torch.Tensor:  # type: ignore[override]
        check_beta(beta, "swishsign")
        return sign_values(input_tensor)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.beta = float(inputs[1])

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        xf, _ = to_compute(x)
        # In place, unless this backward is itself differentiated (create_graph,
        # torch.func), where autograd needs the intermediate tensors unchanged.
        differentiable = torch.is_grad_enabled() or transforms_active()
        factor = swish_sign_factor(xf, ctx.beta, in_place=not differentiable)
        return times_gradient(factor, output_gradient).to(x.dtype), None


def swish_sign_factor(xf: torch.Tensor, beta: float, *, in_place: bool) -> torch.Tensor:
    """``beta * (2 - bx * tanh(bx / 2)) / (1 + cosh(bx))``, ``bx = beta * x``, in this
    order of operations (so these roundings), as a new tensor; ``in_place`` computes it in
    two tensors. ``bx * tanh(bx / 2)`` (``>= 0`` or NaN) is clamped below the overflow of
    ``beta * (2 - ...)``; past that bound ``|bx|`` is far beyond where ``cosh`` overflows
    (about 89 in float32, 710 in float64), so the quotient is the limit 0 either way, and
    at ``±inf`` it is 0 instead of ``-inf / inf``.
    """
    bound = torch.finfo(xf.dtype).max / (4 * max(beta, 1.0))
    bx = xf * beta
    if in_place:
        u = bx / 2
        u.tanh_().mul_(bx)
        if bound > 1000:
            u.clamp_max_(bound)
        u.sub_(2).mul_(-beta)  # beta * (2 - u), exactly: the negation is exact
        return u.div_(bx.cosh_().add_(1))
    u = torch.tanh(bx / 2) * bx
    if bound > 1000:
        u = u.clamp_max(bound)
    return (u - 2) * -beta / (torch.cosh(bx) + 1)


def swish_sign(x: torch.Tensor, beta: float | None = None) -> torch.Tensor:
    """Functional form of :class:`SwishSign`; ``beta=None`` reads ``config.beta``."""
    check_float_tensor(x, "swishsign")
    beta = check_beta(config.beta if beta is None else beta, "swishsign")
    return SwishSignFunction.apply(x, beta)


class _Beta:
    """``SwishSign.beta``: validated when set (finite and ``> 0``); read on the class it is
    the current ``config.beta`` (what ``SwishSign()`` would take)."""

    def __get__(self, obj: Any, owner: type) -> float:
        return config.beta if obj is None else obj.__dict__["_beta"]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_beta"] = check_beta(value, obj.name)


class SwishSign(Quantization):
    """SwishSign quantization (registry key ``"swishsign"``, 1 bit).

    ``SwishSign(beta=None)``, positionally too (``SwishSign(5.0)``), as in bitorch 0.4.1.
    ``beta`` must be finite and ``> 0`` (an explicit ``0`` is a ``ValueError``, where
    0.4.1 took the default); ``None`` takes ``config.beta`` (5.0) when the object is built.

    >>> x = torch.tensor([0.0, 0.3], requires_grad=True)
    >>> SwishSign(5.0)(x).sum().backward(); x.grad
    tensor([5.0000, 1.5620])
    """

    name = "swishsign"
    bit_width = 1
    beta = _Beta()

    def __init__(self, beta: float | None = None) -> None:
        super().__init__()
        self.beta = config.beta if beta is None else beta

    def extra_repr(self) -> str:
        return f"beta={self.beta}"

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return swish_sign(x, self.beta)


make_module_callable(__name__, swish_sign)
