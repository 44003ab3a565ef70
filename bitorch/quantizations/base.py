"""Quantization superclass and the straight-through estimator (STE).

Every quantizer in :mod:`bitorch.quantizations` is a :class:`Quantization` module whose
``quantize`` calls one :class:`torch.autograd.Function`. The math of a quantizer lives in
that function; modules and layers only call it.

Both ways of writing an ``autograd.Function`` work for :class:`STE` subclasses: the
``forward(x)`` + ``setup_context`` style (which also runs under ``torch.func``) and the
older ``forward(ctx, x)`` style of bitorch 0.4.1 (see :class:`STE`).
"""

from __future__ import annotations

import inspect
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from bitorch_common.validation import check_beta, check_bits

__all__ = [
    "Quantization",
    "STE",
    "check_float_tensor",
    "check_bits",
    "check_beta",
    "compute_dtype",
    "make_module_callable",
    "times_gradient",
    "to_compute",
    "transforms_active",
]

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


def to_compute(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` in its compute dtype, and whether that is a new tensor (free to modify)."""
    ct = compute_dtype(x.dtype)
    return (x, False) if x.dtype == ct else (x.to(ct), True)


def times_gradient(factor: torch.Tensor, output_gradient: torch.Tensor) -> torch.Tensor:
    """``factor * output_gradient``, in place in ``factor`` (a temporary the caller made).

    Under ``torch.func`` transforms the in-place form can be refused (``jacrev`` batches
    the cotangent but not the saved input), so there the product is a new tensor.
    """
    if transforms_active():
        return factor * output_gradient
    return factor.mul_(output_gradient)


def transforms_active() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vmap``, ...) is running."""
    return bool(torch._C._are_functorch_transforms_active())


# torch calls ``forward(ctx, *args)`` (the older style) exactly when a Function's
# ``setup_context`` is this very function, the one ``torch.autograd.Function`` inherits.
_NO_SETUP_CONTEXT = torch.autograd.Function.setup_context
_CTX_NAMES = ("ctx", "context")


def _takes_ctx_first(forward: Any) -> bool:
    """Whether ``forward`` is written ``forward(ctx, x, ...)`` (bitorch 0.4.1's style)."""
    fn = forward.__func__ if isinstance(forward, (staticmethod, classmethod)) else forward
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    return params[0].name.lstrip("_").lower() in _CTX_NAMES


class STE(torch.autograd.Function):
    """Straight-through estimator: ``q(x) = x`` forward, ``dq/dx = 1`` backward.

    A quantizer whose gradient passes straight through subclasses ``STE`` and overrides
    only ``forward``; the backward pass returns the output gradient unchanged (and
    ``None`` for every extra argument, such as ``bits``). ``forward`` may be written in
    either style:

    * ``forward(x, *args)``: the ``setup_context`` style; ``STE`` supplies a
      ``setup_context`` that saves nothing. Works under ``torch.func`` (``grad``,
      ``vmap``, ``jacrev``).
    * ``forward(ctx, x, *args)``: the style of bitorch 0.4.1 (its quantizers and user
      code). A subclass whose ``forward`` takes a first parameter named ``ctx`` (or
      ``context``) and that defines no ``setup_context`` of its own is switched to it
      when the class is created, so torch passes the context as it always did. Such a
      subclass may define its own ``backward(ctx, grad)``. ``torch.func`` transforms
      need the first style (torch raises a clear error otherwise).

    Example (both styles)::

        >>> class Floor(STE):
        ...     @staticmethod
        ...     def forward(x):
        ...         return torch.floor(x)
        >>> class Round(STE):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         return torch.round(x)
        >>> x = torch.tensor([0.5, 1.7], requires_grad=True)
        >>> (Floor.apply(x) + Round.apply(x)).sum().backward(); x.grad
        tensor([2., 2.])
    """

    generate_vmap_rule = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is None or "setup_context" in cls.__dict__:
            return  # style inherited, or chosen explicitly by the subclass
        if _takes_ctx_first(forward):
            cls.setup_context = staticmethod(_NO_SETUP_CONTEXT)  # type: ignore[method-assign]
        else:
            cls.setup_context = STE.__dict__["setup_context"]  # type: ignore[method-assign]

    @staticmethod
    def forward(input_tensor: torch.Tensor, *args: Any) -> torch.Tensor:  # type: ignore[override]
        """Return the input unchanged (a new tensor, as autograd requires)."""
        return input_tensor.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
        """Save nothing: the straight-through gradient needs no residual."""

    @staticmethod
    def backward(ctx: Any, output_gradient: torch.Tensor) -> Any:  # type: ignore[override]
        """Pass the output gradient through unchanged; extra arguments get ``None``."""
        return (output_gradient, *([None] * (len(ctx.needs_input_grad) - 1)))


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


class _CallableModule(types.ModuleType):
    """A quantizer's submodule that is also its functional form.

    In bitorch 0.4.1 ``bitorch.quantizations.sign`` is the submodule ``sign.py``
    (``bitorch.quantizations.sign.SignFunction``); here the same attribute is also the
    functional form named by the quantizer table (``bitorch.quantizations.sign(x)``).
    Calling the module calls the function.
    """

    __functional__: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__functional__(*args, **kwargs)


def make_module_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Make the module ``module_name`` callable as ``function`` (see ``_CallableModule``)."""
    module = sys.modules[module_name]
    module.__functional__ = function  # type: ignore[attr-defined]
    module.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    module.__class__ = _CallableModule
