"""Binary embeddings with a boolean table: the pure functions behind linen and NNX
``BEmbed`` and ``BEmbedBag``. Mirror of :mod:`bitorch.layers.bembedding`.

The table ``weight`` is a ``bool`` array ``(num_embeddings, features)`` (torch's
``weight``, no transpose). :func:`decode_binary_weight` turns it into floats (``True``:
1; ``False``: 0, or -1 with ``sign_bool``; the ``padding_idx`` row zeros); the lookups
:func:`b_embedding` and :func:`b_embedding_bag` gather from such a float table
(``vectors``), so that the gradient with respect to it is what torch's ``BEmbedding``
gives its ``unique_vectors`` (the rows a batch used; the other rows get 0).
:func:`binary_weight_update` is torch's ``BEmbedding.step``: the rows a batch used
(except ``padding_idx``) become ``weight_quantization(vectors) == 1``.

Training in JAX::

    vectors = decode_binary_weight(weight, sign_bool=True)
    grads = jax.grad(lambda v: loss(b_embedding(indices, v)))(vectors)
    vectors = vectors - learning_rate * grads            # any optimizer
    weight = binary_weight_update(weight, indices, vectors)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_bool, check_embedding_mode, check_padding_idx
from bitorch_jax.layers.qactivation import resolve_quantization
from bitorch_jax.layers.qembedding import (
    _gather,
    bag_reduce,
    bag_segments,
    check_indices,
    check_table,
)
from bitorch_jax.quantizations import Quantization

__all__ = ["decode_binary_weight", "b_embedding", "b_embedding_bag", "binary_weight_update"]


def _check_binary_weight(weight: Any, where: str) -> jax.Array:
    weight = jnp.asarray(weight)
    if weight.dtype != jnp.bool_ or weight.ndim != 2:
        raise TypeError(
            f"{where}: weight must be a 2-d bool array (num_embeddings, features), got "
            f"{weight.dtype}{list(weight.shape)}"
        )
    return weight


def decode_binary_weight(
    weight: Any,
    *,
    padding_idx: int | None = None,
    sign_bool: bool = False,
    dtype: Any = jnp.float32,
) -> jax.Array:
    """The float table of a ``bool`` table: 1 for ``True``, 0 (``-1`` with ``sign_bool``)
    for ``False``, zeros in the ``padding_idx`` row.

    >>> decode_binary_weight(jnp.array([[True, False], [False, True]]), sign_bool=True)
    Array([[ 1., -1.],
           [-1.,  1.]], dtype=float32)
    """
    where = "decode_binary_weight"
    weight = _check_binary_weight(weight, where)
    padding_idx = check_padding_idx(padding_idx, weight.shape[0], where)
    sign_bool = check_bool(sign_bool, "sign_bool", where)
    off = -1 if sign_bool else 0
    table = jnp.where(weight, jnp.ones((), dtype), jnp.asarray(off, dtype))
    if padding_idx is not None:
        table = table.at[padding_idx].set(0)
    return table


def b_embedding(indices: Any, vectors: jax.Array) -> jax.Array:
    """``vectors[indices]``, shape ``(*indices.shape, features)`` (torch's
    ``BEmbedding.forward`` on the decoded table ``vectors``).

    >>> b_embedding(jnp.array([1, 1]), jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    Array([[0., 1.],
           [0., 1.]], dtype=float32)
    """
    where = "b_embedding"
    return _gather(check_table(vectors, where, "vectors"), check_indices(indices, where))


def b_embedding_bag(
    indices: Any, offsets: Any, vectors: jax.Array, *, mode: str = "mean"
) -> jax.Array:
    """torch's ``BEmbeddingBag.forward`` on the decoded table ``vectors``: ``indices``
    (flattened) split into bags by ``offsets`` and reduced by ``mode``; padding entries
    are zero rows and count in the mean (as in torch's ``BEmbeddingBag``). Shape
    ``(len(offsets), features)``.

    >>> v = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> b_embedding_bag(jnp.array([0, 1, 1]), jnp.array([0, 1]), v, mode="sum")
    Array([[1., 0.],
           [0., 2.]], dtype=float32)
    """
    where = "b_embedding_bag"
    vectors = check_table(vectors, where, "vectors")
    mode = check_embedding_mode(mode, where)
    indices = check_indices(indices, where).reshape(-1)
    flat, segments, bags = bag_segments(indices, offsets, False, where)
    return bag_reduce(_gather(vectors, flat), segments, bags, mode)


def binary_weight_update(
    weight: Any,
    indices: Any,
    vectors: jax.Array,
    *,
    weight_quantization: str | Quantization = "sign",
    padding_idx: int | None = None,
) -> jax.Array:
    """torch's ``BEmbedding.step``: the rows named in ``indices`` (except
    ``padding_idx``) become ``weight_quantization(vectors[row]) == 1``, the others keep
    their bits. The quantizer sees only those rows (the others as 0), as in torch, so a
    per-tensor quantizer (``weightdorefa``) takes its maximum over them.

    >>> w = jnp.array([[True, True], [False, False]])
    >>> binary_weight_update(w, jnp.array([1]), jnp.array([[-5.0, -5.0], [0.5, -0.5]]))
    Array([[ True,  True],
           [ True, False]], dtype=bool)
    """
    where = "binary_weight_update"
    weight = _check_binary_weight(weight, where)
    indices = check_indices(indices, where).reshape(-1)
    vectors = check_table(vectors, where, "vectors")
    if vectors.shape != weight.shape:
        raise ValueError(
            f"{where}: vectors {vectors.shape} must have weight's shape {weight.shape}"
        )
    padding_idx = check_padding_idx(padding_idx, weight.shape[0], where)
    quantization = resolve_quantization(weight_quantization, where)
    used = jnp.zeros((weight.shape[0],), bool).at[indices].set(True, mode="drop")
    if padding_idx is not None:
        used = used.at[padding_idx].set(False)
    rows = jnp.where(used[:, None], vectors, jnp.zeros((), vectors.dtype))
    return jnp.where(used[:, None], quantization(rows) == 1, weight)
