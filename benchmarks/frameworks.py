"""The measured implementations: bitorch (eager, torch.compile) and bitorch_jax (jax.jit).

Each builder returns a :class:`benchmarks.timing.Timed` whose call computes the forward
output ``y`` and the input gradient ``dx`` for the cotangent ``g`` and returns both, so
neither framework can skip the forward pass (XLA would drop an unused output).

>>> import numpy as np
>>> from benchmarks.cases import case_by_label
>>> data = make_data(8, "float32", "cpu", seed=0)
>>> y, dx = jax_fwd_bwd(case_by_label("sign"), data).once()[1]
>>> y.shape, dx.shape
((8,), (8,))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

import bitorch.quantizations as tq
import bitorch_jax.quantizations as jq
from benchmarks.cases import Case
from benchmarks.timing import Timed
from bitorch_common.comparison import compare_sample
from bitorch_common.inputs import np_dtype

__all__ = [
    "DTYPES",
    "Data",
    "make_data",
    "torch_device",
    "jax_device",
    "sync",
    "torch_eager_fwd_bwd",
    "torch_compile_fwd_bwd",
    "jax_fwd_bwd",
    "jax_fwd_bwd_donated",
    "check_agreement",
    "jax_program_stats",
]

DTYPES: dict[str, tuple[torch.dtype, Any]] = {
    "float32": (torch.float32, jnp.float32),
    "float16": (torch.float16, jnp.float16),
    "bfloat16": (torch.bfloat16, jnp.bfloat16),
    "float64": (torch.float64, jnp.float64),
}


def torch_device(device: str) -> torch.device:
    """``cpu`` or ``gpu`` as a torch device (``gpu`` is ``cuda``)."""
    if device == "cpu":
        return torch.device("cpu")
    if device == "gpu":
        if not torch.cuda.is_available():
            raise ValueError("--device gpu: torch sees no CUDA device")
        return torch.device("cuda")
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def jax_device(device: str) -> Any:
    """``cpu`` or ``gpu`` as a JAX device."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    try:
        return jax.devices(device)[0]
    except RuntimeError as err:
        raise ValueError(f"--device {device}: JAX has no such backend ({err})") from None


def sync(device: str) -> None:
    """Wait for queued torch work on ``device`` (a no-op on the CPU)."""
    if device == "gpu":
        torch.cuda.synchronize()


@dataclasses.dataclass
class Data:
    """The same input and cotangent in both frameworks (made once in NumPy)."""

    size: int
    dtype: str
    device: str
    x_torch: torch.Tensor
    g_torch: torch.Tensor
    x_jax: jax.Array
    g_jax: jax.Array

    @property
    def itemsize(self) -> int:
        """Bytes per element of the input dtype."""
        return self.x_torch.element_size()


def make_data(size: int, dtype: str, device: str, *, seed: int) -> Data:
    """``x ~ 1.5 * N(0, 1)`` (about half the values past ``|x| = 1``) and ``g ~ N(0, 1)``.

    Both are drawn in float32 and cast once, so the two frameworks see equal arrays.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    rng = np.random.default_rng(seed)
    x32 = (1.5 * rng.standard_normal(size)).astype(np.float32)
    g32 = rng.standard_normal(size).astype(np.float32)
    tdt, jdt = DTYPES[dtype]
    tdev, jdev = torch_device(device), jax_device(device)
    x_t = torch.from_numpy(x32).to(device=tdev, dtype=tdt)
    g_t = torch.from_numpy(g32).to(device=tdev, dtype=tdt)
    x_j = jax.device_put(jnp.asarray(x32).astype(jdt), jdev)
    g_j = jax.device_put(jnp.asarray(g32).astype(jdt), jdev)
    jax.block_until_ready((x_j, g_j))
    sync(device)
    return Data(size, dtype, device, x_t, g_t, x_j, g_j)


def torch_eager_fwd_bwd(case: Case, data: Data) -> Timed:
    """bitorch in eager mode: ``y = q(x)``, ``dx = autograd.grad(y, x, g)``."""
    quantizer = case.build(tq.quantization_from_name)
    x = data.x_torch.detach().requires_grad_()
    g = data.g_torch

    def run(_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y = quantizer(x)
        (dx,) = torch.autograd.grad(y, x, g)
        sync(data.device)
        return y.detach(), dx

    return Timed(run)


def torch_compile_fwd_bwd(case: Case, data: Data, *, fullgraph: bool = True) -> Timed:
    """bitorch under ``torch.compile`` (inductor): compiled forward and backward graphs.

    ``fullgraph=True`` makes a graph break an error instead of a silent eager fallback.
    Compilation happens at the first call, which the caller times separately.
    """
    quantizer = case.build(tq.quantization_from_name)
    compiled = torch.compile(lambda t: quantizer(t), fullgraph=fullgraph)
    x = data.x_torch.detach().requires_grad_()
    g = data.g_torch

    def run(_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y = compiled(x)
        (dx,) = torch.autograd.grad(y, x, g)
        sync(data.device)
        return y.detach(), dx

    return Timed(run)


def _jax_fwd_bwd_fn(case: Case) -> Any:
    quantizer = case.build(jq.quantization_from_name)

    def fwd_bwd(x: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        y, vjp = jax.vjp(quantizer, x)
        (dx,) = vjp(g)
        return y, dx

    return fwd_bwd


def jax_fwd_bwd(case: Case, data: Data) -> Timed:
    """bitorch_jax under ``jax.jit``: one program returns ``(y, dx)`` for ``(x, g)``."""
    jitted = jax.jit(_jax_fwd_bwd_fn(case))
    x, g = data.x_jax, data.g_jax
    return Timed(lambda _: jax.block_until_ready(jitted(x, g)))


def jax_fwd_bwd_donated(case: Case, data: Data) -> Timed:
    """As :func:`jax_fwd_bwd`, with the cotangent buffer donated to the call.

    XLA may then write ``dx`` into ``g``'s buffer; for a pass-through gradient that
    removes the copy of ``g`` that a plain jitted function must make (its output cannot
    be its input), the JAX counterpart of torch handing ``g`` itself back as ``dx``.
    A fresh copy of ``g`` is made, untimed, before each call.
    """
    fwd_bwd = _jax_fwd_bwd_fn(case)

    def dx_first(x: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        # JAX pairs a donated buffer with the first output of its shape and dtype: put dx
        # first so g's buffer becomes dx (y first would take it, and g be copied).
        y, dx = fwd_bwd(x, g)
        return dx, y

    jitted = jax.jit(dx_first, donate_argnums=1)
    x, g = data.x_jax, data.g_jax

    def prepare() -> jax.Array:
        return jax.block_until_ready(jnp.copy(g))

    def run(g_fresh: jax.Array) -> tuple[jax.Array, jax.Array]:
        dx, y = jax.block_until_ready(jitted(x, g_fresh))
        return y, dx

    return Timed(run, prepare)


def jax_program_stats(case: Case, data: Data, *, donated: bool) -> dict[str, Any]:
    """What XLA compiled for the fwd+bwd program: bytes accessed per element and more.

    From ``compiled.cost_analysis()`` (XLA's own count of bytes read and written by
    every instruction, independent of machine load) and the optimized HLO text (how
    many fused loops and plain copies the program runs).
    """
    fn = _jax_fwd_bwd_fn(case)
    if donated:
        compiled = jax.jit(lambda x, g: fn(x, g)[::-1], donate_argnums=1)
    else:
        compiled = jax.jit(fn)
    compiled = compiled.lower(data.x_jax, data.g_jax).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    cost = cost or {}
    hlo = compiled.as_text()
    entry = hlo[hlo.find("ENTRY") :]
    return {
        "bytes_accessed_per_element": float(cost.get("bytes accessed", float("nan"))) / data.size,
        "flops_per_element": float(cost.get("flops", float("nan"))) / data.size,
        "transcendentals_per_element": float(cost.get("transcendentals", 0.0)) / data.size,
        "fusions": entry.count(" fusion("),
        "copies": entry.count(" copy("),
    }


def _to_numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(array).astype(np.float64)  # exact for every float dtype


def check_agreement(
    reference: tuple[Any, Any],
    other: tuple[Any, Any],
    dtype: str,
    *,
    x: Any = None,
    g: Any = None,
    rules: dict[str, Any] | None = None,
) -> dict:
    """Compare ``(y, dx)`` of two implementations of one quantizer at input ``x``.

    The comparison is the parity engine's (:func:`bitorch_common.comparison.compare_sample`)
    with ``rules``, the quantizer row's comparison rules
    (:meth:`bitorch_common.quantizers.Variant.comparison_rules`): boundary flips are
    counted separately from forward mismatches, and exactly specified gradients must be
    bit-equal. Without ``rules`` (or ``x``) every value must be bit-equal. This is a
    sanity check that the timed code computes the same thing, not the parity suite.
    """
    dt = np_dtype(dtype)
    y_ref, dx_ref = (_to_numpy(a).astype(dt) for a in reference)
    y_oth, dx_oth = (_to_numpy(a).astype(dt) for a in other)
    if rules is None or x is None:
        rules = {"discrete": True, "grad_exact": True}
        x = np.zeros(y_ref.shape, dt)
    x = _to_numpy(x).astype(dt)
    g = np.ones(y_ref.shape, dt) if g is None else _to_numpy(g).astype(dt)
    result = compare_sample(x, g, (y_ref, dx_ref), (y_oth, dx_oth), **rules)
    if result.problems:
        raise ValueError(f"outputs cannot be compared: {'; '.join(result.problems)}")
    y64, o64 = y_ref.astype(np.float64), y_oth.astype(np.float64)
    forward = int(np.sum(~((y64 == o64) | (np.isnan(y64) & np.isnan(o64))))) - result.flips
    diff = np.abs(dx_oth.astype(np.float64) - dx_ref.astype(np.float64))
    return {
        "forward_mismatches": forward,
        "boundary_flips": result.flips,
        "gradient_mismatches": result.failures - forward,
        "gradient_max_abs_diff": float(np.nanmax(diff)) if dx_ref.size else 0.0,
    }
