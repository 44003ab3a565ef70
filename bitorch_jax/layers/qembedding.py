"""Quantized embeddings: the pure functions behind linen and NNX ``QEmbed`` and
``QEmbedBag``. Mirror of :mod:`bitorch.layers.qembedding`.

The table ``embedding`` is ``(num_embeddings, features)``, the layout of torch's
``weight`` and of Flax's ``Embed`` (no transpose). Indices must lie in
``[0, num_embeddings)``: torch raises for others, JAX cannot under ``jit`` (an index out
of range gives NaN rows here).

Bags (:func:`q_embedding_bag`, and the binary bag of :mod:`bitorch_jax.layers.bembedding`)
follow ``torch.nn.functional.embedding_bag``: a 2-d ``indices`` ``(B, L)`` is ``B`` bags
of ``L``; a 1-d ``indices`` is split by ``offsets`` (the start of each bag; with
``include_last_offset`` the last entry is the end of the last bag). ``"sum"`` adds the
rows (times ``per_sample_weights``), ``"mean"`` divides that by the number of entries,
``"max"`` takes the elementwise maximum, whose gradient goes to the first entry of the
bag that holds it (torch's choice among equal values). ``padding_idx`` entries are left
out (and out of the mean's count); an empty bag gives zeros.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_bool, check_embedding_mode, check_padding_idx
from bitorch_jax.layers.qactivation import resolve_quantization
from bitorch_jax.quantizations import Quantization
from bitorch_jax.quantizations.base import check_float_array

__all__ = ["q_embedding", "q_embedding_bag", "bag_reduce", "check_indices", "bag_segments"]


def check_indices(indices: Any, where: str) -> jax.Array:
    """``indices`` as a JAX integer array (``TypeError`` for another dtype)."""
    indices = jnp.asarray(indices)
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{where}: indices must be an integer array, got dtype {indices.dtype}")
    return indices


def check_table(table: Any, where: str, name: str = "embedding") -> jax.Array:
    table = check_float_array(table, where)
    if table.ndim != 2:
        raise ValueError(
            f"{where}: {name} must be 2-d (num_embeddings, features), got shape {table.shape}"
        )
    return table


def _gather(table: jax.Array, indices: jax.Array) -> jax.Array:
    return jnp.take(table, indices, axis=0, mode="fill", fill_value=jnp.nan)


def bag_segments(
    indices: jax.Array, offsets: Any, include_last_offset: bool, where: str
) -> tuple[jax.Array, jax.Array, int]:
    """``(flat indices, bag of each entry, number of bags)``; an entry outside every bag
    gets a bag id outside ``[0, number of bags)`` (and is dropped)."""
    if indices.ndim == 2:
        if offsets is not None:
            raise ValueError(f"{where}: offsets must be None for 2-d indices (B, L)")
        bags, length = indices.shape
        return indices.reshape(-1), jnp.repeat(jnp.arange(bags), length), bags
    if indices.ndim != 1:
        raise ValueError(f"{where}: indices must be 1-d (with offsets) or 2-d, got {indices.shape}")
    if offsets is None:
        raise ValueError(f"{where}: 1-d indices need offsets (the start of each bag)")
    offsets = check_indices(offsets, where)
    if offsets.ndim != 1 or offsets.shape[0] < (2 if include_last_offset else 1):
        raise ValueError(
            f"{where}: offsets must be 1-d with one start per bag, got {offsets.shape}"
        )
    bags = offsets.shape[0] - (1 if include_last_offset else 0)
    positions = jnp.arange(indices.shape[0], dtype=offsets.dtype)
    segments = jnp.searchsorted(offsets, positions, side="right") - 1
    return indices, segments, bags


def bag_reduce(
    rows: jax.Array,
    segments: jax.Array,
    bags: int,
    mode: str,
    valid: jax.Array | None = None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Reduce ``rows`` ``(N, F)`` into ``bags`` rows by ``segments`` with ``mode``; entries
    where ``valid`` is False are left out (of the sum, the count and the maximum)."""
    n = rows.shape[0]
    if valid is None:
        valid = jnp.ones((n,), bool)
    keep = valid[:, None]
    zero = jnp.zeros((), rows.dtype)
    if mode in ("sum", "mean"):
        terms = rows if weights is None else rows * weights[:, None]
        total = jax.ops.segment_sum(jnp.where(keep, terms, zero), segments, bags)
        if mode == "sum":
            return total
        count = jax.ops.segment_sum(valid.astype(rows.dtype), segments, bags)
        count = jnp.maximum(count, jnp.ones((), rows.dtype))[:, None]
        # a true division, as torch's (XLA would multiply by the reciprocal of a broadcast)
        return total / jax.lax.optimization_barrier(jnp.broadcast_to(count, total.shape))
    # max: forward the maximum, gradient to the first entry holding it (torch's choice)
    low = jnp.asarray(-jnp.inf, rows.dtype)
    fixed = jax.lax.stop_gradient(rows)
    best = jax.ops.segment_max(jnp.where(keep, fixed, low), segments, bags)
    safe = jnp.clip(segments, 0, bags - 1)
    inside = ((segments >= 0) & (segments < bags))[:, None]
    holds = keep & (fixed == best[safe]) & inside
    position = jnp.broadcast_to(jnp.arange(n)[:, None], rows.shape)
    first = jax.ops.segment_min(jnp.where(holds, position, n), segments, bags)
    chosen = holds & (position == first[safe])
    return jax.ops.segment_sum(jnp.where(chosen, rows, zero), segments, bags)


def q_embedding(
    indices: Any,
    embedding: jax.Array,
    *,
    padding_idx: int | None = None,
    weight_quantization: str | Quantization = "sign",
    output_quantization: str | Quantization = "sign",
) -> jax.Array:
    """bitorch's ``QEmbedding``: ``q_out(q_w(embedding)[indices])``, shape
    ``(*indices.shape, features)``. The ``padding_idx`` row gets no gradient.

    >>> table = jnp.array([[0.5, -0.1], [-2.0, 0.0], [0.3, 0.3]])
    >>> q_embedding(jnp.array([1, 0]), table)
    Array([[-1.,  1.],
           [ 1., -1.]], dtype=float32)
    """
    where = "q_embedding"
    indices = check_indices(indices, where)
    embedding = check_table(embedding, where)
    padding_idx = check_padding_idx(padding_idx, embedding.shape[0], where)
    weight_q = resolve_quantization(weight_quantization, where)
    output_q = resolve_quantization(output_quantization, where)
    rows = _gather(weight_q(embedding), indices)
    if padding_idx is not None:
        rows = jnp.where((indices == padding_idx)[..., None], jax.lax.stop_gradient(rows), rows)
    return output_q(rows)


def q_embedding_bag(
    indices: Any,
    embedding: jax.Array,
    offsets: Any = None,
    per_sample_weights: jax.Array | None = None,
    *,
    mode: str = "mean",
    include_last_offset: bool = False,
    padding_idx: int | None = None,
    weight_quantization: str | Quantization = "sign",
    output_quantization: str | Quantization = "sign",
) -> jax.Array:
    """bitorch's ``QEmbeddingBag``: the bags of ``q_w(embedding)``'s rows reduced by
    ``mode``, then ``q_out``; shape ``(bags, features)``. See the module doc.

    >>> table = jnp.array([[0.5, -0.1], [-2.0, 0.0], [0.3, 0.3]])
    >>> q_embedding_bag(jnp.array([0, 2, 1, 1]), table, jnp.array([0, 2]), mode="sum",
    ...                 output_quantization="identity")
    Array([[ 2.,  0.],
           [-2.,  2.]], dtype=float32)
    """
    where = "q_embedding_bag"
    indices = check_indices(indices, where)
    embedding = check_table(embedding, where)
    mode = check_embedding_mode(mode, where)
    include_last_offset = check_bool(include_last_offset, "include_last_offset", where)
    padding_idx = check_padding_idx(padding_idx, embedding.shape[0], where)
    weight_q = resolve_quantization(weight_quantization, where)
    output_q = resolve_quantization(output_quantization, where)
    flat, segments, bags = bag_segments(indices, offsets, include_last_offset, where)
    table = embedding
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError(f"{where}: per_sample_weights need mode='sum', got mode={mode!r}")
        per_sample_weights = check_float_array(per_sample_weights, where)
        if per_sample_weights.shape != indices.shape:
            raise ValueError(
                f"{where}: per_sample_weights must have the shape of indices {indices.shape}, "
                f"got {per_sample_weights.shape}"
            )
        dtype = jnp.result_type(embedding, per_sample_weights)
        table = embedding.astype(dtype)
        per_sample_weights = per_sample_weights.reshape(-1).astype(dtype)
    rows = _gather(weight_q(table), flat)
    valid = None if padding_idx is None else flat != padding_idx
    return output_q(bag_reduce(rows, segments, bags, mode, valid, per_sample_weights))
