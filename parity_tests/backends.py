"""Running one function in each framework: forward value and input gradient (VJP).

* torch: ``y = fn(x)``, then ``torch.autograd.grad(y, x, g)``;
* JAX: ``y, vjp = jax.vjp(fn, x); vjp(g)`` under :func:`jax.jit`.

Both get the same NumPy input and cotangent, on the same dtype and device. float64 in
JAX needs x64 mode; it is switched on only inside :func:`jax_x64`, never globally.

Devices are named ``"cpu"`` and ``"gpu"`` (torch ``cuda``, JAX's ``gpu`` backend).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_dtypes
import numpy as np
import torch

from bitorch_common.tolerances import dtype_name

__all__ = [
    "DEVICES",
    "gpu_status",
    "jax_x64",
    "run_torch",
    "jax_runner",
    "run_jax",
    "to_torch",
    "from_torch",
]

DEVICES: tuple[str, ...] = ("cpu", "gpu")


def _jax_gpus() -> list[Any]:
    try:
        return list(jax.devices("gpu"))
    except RuntimeError:
        return []


@functools.lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """``(present, reason)``: whether both torch CUDA and a JAX GPU are usable, and why not.

    >>> present, reason = gpu_status()
    >>> isinstance(reason, str)
    True
    """
    torch_ok = torch.cuda.is_available()
    jax_ok = bool(_jax_gpus())
    if torch_ok and jax_ok:
        return True, f"torch cuda ({torch.cuda.get_device_name(0)}) and JAX {_jax_gpus()[0]}"
    missing = []
    if not torch_ok:
        missing.append("torch.cuda.is_available() is False")
    if not jax_ok:
        missing.append("jax.devices('gpu') finds no GPU")
    return False, "; ".join(missing)


@contextlib.contextmanager
def jax_x64(dtype: Any) -> Iterator[None]:
    """Enable JAX's x64 mode for the block if ``dtype`` is float64 (scoped, not global)."""
    if dtype_name(dtype) != "float64":
        yield
        return
    scope = getattr(jax, "enable_x64", None)
    if scope is None:  # older JAX releases
        from jax.experimental import enable_x64 as scope
    with scope(True):
        yield


def _torch_device(device: str) -> str:
    return {"cpu": "cpu", "gpu": "cuda"}[device]


def _jax_device(device: str) -> Any:
    if device == "gpu":
        gpus = _jax_gpus()
        if not gpus:
            raise RuntimeError("JAX has no GPU backend")
        return gpus[0]
    return jax.devices("cpu")[0]


def to_torch(x: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """A torch tensor with the values and dtype of ``x`` (bfloat16 via float32, exactly)."""
    x = np.array(x, order="C")  # a writable copy; keeps 0-d arrays 0-d
    if x.dtype == np.dtype(ml_dtypes.bfloat16):
        t = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    else:
        t = torch.from_numpy(x)
    return t.to(_torch_device(device))


def from_torch(t: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``t`` (bfloat16 comes back as ``ml_dtypes.bfloat16``, exactly)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.to(torch.float32).numpy().astype(ml_dtypes.bfloat16)
    return t.numpy().copy()


def run_torch(
    fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, g: np.ndarray, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """Forward value and input gradient of ``fn`` at ``x`` for cotangent ``g``, in torch."""
    xt = to_torch(x, device).requires_grad_(True)
    y = fn(xt)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"the torch function returned {type(y).__name__}, not a tensor")
    if not y.requires_grad:
        raise RuntimeError("the torch function's output does not depend on its input (no grad)")
    (grad,) = torch.autograd.grad(y, xt, grad_outputs=to_torch(g, device).to(y.dtype))
    return from_torch(y), from_torch(grad)


def jax_runner(fn: Callable[[jax.Array], jax.Array]) -> Callable[[Any, Any], Any]:
    """``jit`` of ``(xs, gs) -> [(fn(x), vjp_x(g)) for each pair]``.

    All input arrays of one call (of any shapes, one dtype) share one compilation; each
    array is its own ``fn`` call, so per-tensor statistics stay per array.
    """

    def forward_and_vjp(x: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        y, vjp = jax.vjp(fn, x)
        (grad,) = vjp(g.astype(y.dtype))
        return y, grad

    def all_pairs(xs: tuple, gs: tuple) -> tuple:
        return tuple(forward_and_vjp(x, g) for x, g in zip(xs, gs, strict=True))

    return jax.jit(all_pairs)


def run_jax(
    runner: Callable[[Any, Any], Any],
    xs: Sequence[np.ndarray],
    gs: Sequence[np.ndarray],
    device: str,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run a :func:`jax_runner` on ``device`` for every ``(x, g)``; x64 only for float64.

    The arrays go in rounds, the r-th array of each distinct shape together, and a shape
    with fewer arrays repeats its last one (that result is dropped): every round has the
    same shapes, so JAX compiles one program for the whole call.
    """
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(xs):
        by_shape.setdefault(np.shape(x), []).append(i)
    n_rounds = max((len(v) for v in by_shape.values()), default=0)
    out: list[Any] = [None] * len(xs)
    with jax_x64(xs[0].dtype if xs else "float32"):
        dev = _jax_device(device)
        for r in range(n_rounds):
            members = [v[min(r, len(v) - 1)] for v in by_shape.values()]
            results = runner(
                tuple(jax.device_put(xs[i], dev) for i in members),
                tuple(jax.device_put(gs[i], dev) for i in members),
            )
            for i, (y, grad) in zip(members, results, strict=True):
                if out[i] is None:
                    out[i] = (np.asarray(y), np.asarray(grad))
    return out
