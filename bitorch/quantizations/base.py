"""Quantization superclass and the straight-through estimator (STE).

Every quantizer in :mod:`bitorch.quantizations` is a :class:`Quantization` module whose
``quantize`` calls one :class:`torch.autograd.Function`. The math of a quantizer lives in
that function; modules and layers only call it.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from bitorch_common.validation import check_beta, check_bits

__all__ = ["Quantization", "STE", "check_float_tensor", "check_bits", "check_beta", "compute_dtype"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_float_tensor(x: Any, quantizer: str) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor, else raise ``TypeError``.

    Supported dtypes: float16, bfloat16, float32, float64.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{quantizer}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{quantizer}: expected a floating-point tensor (float16, bfloat16, float32 or "
            f"float64), got dtype {x.dtype}"
        )
    return x


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the math runs in: float32 for float16/bfloat16, else ``dtype`` itself.

    SPEC.md: half precision is computed in float32 and rounded once at the end.
    """
    return torch.float32 if dtype in _HALF_DTYPES else dtype


class STE(torch.autograd.Function):
    """Straight-through estimator: ``q(x) = x`` forward, ``dq/dx = 1`` backward.

    A quantizer whose gradient passes straight through subclasses ``STE`` and overrides
    only :meth:`forward`; ``setup_context`` and ``backward`` are inherited. ``forward`` may
    take extra non-tensor arguments after the input (such as ``bits``); they get no
    gradient. Written in the
    ``forward``/``setup_context`` style, so it also works under ``torch.func`` (``grad``,
    ``vmap``, ``jacrev``).

    Example::

        >>> class Floor(STE):
        ...     @staticmethod
        ...     def forward(x):
        ...         return torch.floor(x)
        >>> x = torch.tensor([0.5, 1.7], requires_grad=True)
        >>> Floor.apply(x).sum().backward(); x.grad
        tensor([1., 1.])
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Return the input unchanged (a new tensor, as autograd requires)."""
        return input_tensor.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        """Save nothing but the number of extra (non-differentiated) arguments."""
        ctx.num_extra_inputs = len(inputs) - 1

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> tuple:  # type: ignore[override]
        """Pass the output gradient through unchanged; extra arguments get ``None``."""
        return (output_gradient, *([None] * ctx.num_extra_inputs))


class Quantization(nn.Module):
    """Superclass of quantization modules.

    Subclasses set the class attribute ``name`` (their registry key) and ``bit_width``,
    and implement :meth:`quantize`. Calling the module calls ``quantize``.
    """

    name: ClassVar[str] = "__abstract__"
    bit_width: int = 32

    @property
    def bitwidth(self) -> int:
        """Deprecated alias of :attr:`bit_width`."""
        warnings.warn(
            "Quantization.bitwidth is deprecated, use bit_width", DeprecationWarning, stacklevel=2
        )
        return self.bit_width

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize ``x``. Subclasses implement this with an ``autograd.Function``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement quantize()")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize ``x`` with :meth:`quantize`."""
        return self.quantize(x)
