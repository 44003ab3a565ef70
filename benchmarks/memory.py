"""Memory: bytes each quantizer saves for its backward pass, in each framework.

torch: :func:`torch.autograd.graph.saved_tensors_hooks` sees every tensor an autograd
node saves; the pack hook records its bytes (``numel * element_size``), once per
storage. JAX: ``jax._src.ad_checkpoint.saved_residuals`` lists the residuals of
``jax.vjp`` (what the backward rule receives), with a description of where each comes
from. Both are reported twice: ``total`` counts everything saved; ``extra`` leaves out a
saved tensor that *is* the input itself (same storage in torch, "from the argument" in
JAX), because keeping a reference to the input allocates nothing new, though it keeps
the input alive until the backward pass.

>>> from benchmarks.cases import case_by_label
>>> jax_residuals(case_by_label("approxsign"), size=16)["total_bytes_per_element"]
4.0
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

import bitorch.quantizations as tq
import bitorch_jax.quantizations as jq
from benchmarks.cases import Case
from benchmarks.frameworks import DTYPES

__all__ = ["torch_residuals", "jax_residuals"]


def _summary(items: list[dict[str, Any]], size: int) -> dict[str, Any]:
    total = sum(item["bytes"] for item in items)
    extra = sum(item["bytes"] for item in items if not item["is_input"])
    return {
        "saved": items,
        "total_bytes_per_element": total / size,
        "extra_bytes_per_element": extra / size,
    }


def torch_residuals(
    case: Case, *, size: int = 4096, dtype: str = "float32", compiled: bool = False
) -> dict[str, Any]:
    """Tensors saved for backward by one forward call of the bitorch quantizer.

    With ``compiled=True`` the quantizer runs under ``torch.compile``, whose compiled
    autograd function saves what its partitioner chose (it may differ from eager).
    """
    quantizer = case.build(tq.quantization_from_name)
    fn = torch.compile(lambda t: quantizer(t), fullgraph=True) if compiled else quantizer
    rng = np.random.default_rng(1)
    x = torch.from_numpy((1.5 * rng.standard_normal(size)).astype(np.float32))
    x = x.to(DTYPES[dtype][0]).requires_grad_()
    x_storage = x.untyped_storage().data_ptr()
    items: list[dict[str, Any]] = []
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            items.append(
                {
                    "shape": list(t.shape),
                    "dtype": str(t.dtype).removeprefix("torch."),
                    "bytes": t.numel() * t.element_size(),
                    "is_input": ptr == x_storage,
                }
            )
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    y.backward(torch.ones_like(y))  # the saved tensors must really serve a backward pass
    return _summary(items, size)


def jax_residuals(case: Case, *, size: int = 4096, dtype: str = "float32") -> dict[str, Any]:
    """Residuals of ``jax.vjp`` of the bitorch_jax quantizer at an input of ``size``."""
    from jax._src.ad_checkpoint import saved_residuals  # no public equivalent in jax 0.10

    quantizer = case.build(jq.quantization_from_name)
    x = jnp.zeros((size,), DTYPES[dtype][1])
    items = []
    for aval, description in saved_residuals(quantizer, x):
        shape = tuple(getattr(aval, "shape", ()))
        itemsize = np.dtype(aval.dtype).itemsize if hasattr(aval, "dtype") else 0
        items.append(
            {
                "shape": list(shape),
                "dtype": str(aval.dtype) if hasattr(aval, "dtype") else str(aval),
                "bytes": int(np.prod(shape, dtype=np.int64)) * itemsize,
                "is_input": "from the argument" in description,
                "description": description,
            }
        )
    # Cross-check with the closure of the vjp function: its array leaves are the
    # residuals as jax.vjp really keeps them.
    _, vjp_fn = jax.vjp(quantizer, x)
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(vjp_fn) if hasattr(leaf, "nbytes")]
    summary = _summary(items, size)
    summary["vjp_closure_bytes_per_element"] = sum(int(leaf.nbytes) for leaf in leaves) / size
    return summary
