"""Binary embeddings with a boolean weight table (bitorch 0.4.1's
``bitorch.layers.bembedding``: ``BEmbedding``, ``BEmbeddingBag``).

The table ``weight`` is a ``bool`` parameter ``(num_embeddings, embedding_dim)`` that does
not require a gradient (``state_dict`` key ``weight``, dtype ``torch.bool``), initialised
as ``torch.rand(shape) > 0.5``. A lookup decodes the rows it needs to floats: ``True`` is
``1``; ``False`` is ``0``, or ``-1`` with ``sign_bool=True``; the ``padding_idx`` row is
all zeros.

Training works as in bitorch 0.4.1, on the decoded rows of the last forward pass:
``forward`` keeps the unique indices (``unique``) and their float rows
(``unique_vectors``, a fresh leaf that requires grad, which the output is gathered from).
With ``set_optimizer(optimizer)`` those rows are put into a parameter group of the
optimizer at every forward pass (its state, such as momentum, carried over); after
``optimizer.step()``, :meth:`BEmbedding.step` writes ``weight_quantization(rows) == 1``
back into the table (the padding row is never written). ``set_weight`` sets the table
from a ``bool`` tensor, or from floats through ``weight_quantization``.

The decoded rows are float32, as in 0.4.1; the keyword-only ``dtype`` (an extension)
chooses another floating dtype.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bitorch.layers._util import default, resolve_quantization
from bitorch.quantizations import Quantization
from bitorch_common.validation import (
    check_bool,
    check_embedding_mode,
    check_padding_idx,
    check_positive_int,
)

__all__ = ["BEmbedding", "BEmbeddingBag"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class BEmbedding(nn.Module):
    """Embedding with a binary (``bool``) table; see :mod:`bitorch.layers.bembedding`.

    ``forward(input)`` returns the decoded rows of ``input``'s indices, shape
    ``(*input.shape, embedding_dim)``.

    >>> emb = BEmbedding(3, 2, sign_bool=True)
    >>> emb.set_weight(torch.tensor([[True, False], [False, False], [True, True]]))
    >>> emb(torch.tensor([2, 0, 0]))
    tensor([[ 1.,  1.],
            [ 1., -1.],
            [ 1., -1.]], grad_fn=<ViewBackward0>)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        weight_quantization: str | Quantization | None = None,
        device: str | torch.device | None = None,
        sign_bool: bool = False,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", where)
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim", where)
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{where}: dtype must be a floating dtype, got {dtype!r}")
        self.dtype = dtype
        self.weight_quantization = resolve_quantization(
            default(weight_quantization, "weight_quantization"), where
        )
        shape = (self.num_embeddings, self.embedding_dim)
        self.weight = nn.Parameter(torch.rand(shape, device=device) > 0.5, requires_grad=False)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings, where)
        self.sign_bool = check_bool(sign_bool, "sign_bool", where)
        self.optimizer: torch.optim.Optimizer | None = None
        self.optimizer_dict: dict[str, Any] | None = None
        self.unique: torch.Tensor | None = None
        self.unique_vectors: torch.Tensor | None = None
        self.out_param: torch.Tensor | None = None

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text + f", sign_bool={self.sign_bool}"

    # -- the steps of a lookup (0.4.1's methods) -------------------------------------------

    def unique_wrapper(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sorted unique values of ``tensor`` and, per element, its position among them."""
        unique, inverse = torch.unique(tensor, sorted=True, return_inverse=True)
        return unique, inverse

    def select_unique_vectors(
        self, flat_indices: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(unique indices, inverse indices, their table rows as floats)``."""
        unique, inverse = self.unique_wrapper(flat_indices)
        rows = self.weight.index_select(0, unique).to(self.dtype)
        return unique, inverse, rows

    def apply_padding(self, indices: torch.Tensor, embedding_vectors: torch.Tensor) -> torch.Tensor:
        """Zero the rows whose index is ``padding_idx`` (in place)."""
        if self.padding_idx is not None:
            embedding_vectors[indices == self.padding_idx] = 0
        return embedding_vectors

    def transform_zeros(self, embedding_vectors: torch.Tensor) -> torch.Tensor:
        """With ``sign_bool``, ``0`` (a ``False`` bit) becomes ``-1`` (in place)."""
        if self.sign_bool:
            embedding_vectors[embedding_vectors == 0] = -1
        return embedding_vectors

    def _decoded_unique_rows(self, indices: torch.Tensor) -> torch.Tensor:
        """Set ``unique``/``unique_vectors`` for ``indices``; return the inverse indices.

        Bits are decoded before the padding row is zeroed, so that row stays zero with
        ``sign_bool`` (bitorch 0.4.1 zeroes it first and then turns its zeros into -1).
        """
        self.unique, inverse, vectors = self.select_unique_vectors(indices.flatten())
        self.transform_zeros(vectors)
        self.apply_padding(self.unique, vectors)
        self.unique_vectors = vectors.requires_grad_(True)
        return inverse

    def set_optimizable_weights(self, weights: torch.Tensor) -> None:
        """Make ``weights`` the parameters of this layer's group in the optimizer (if one
        is set), moving the optimizer's state of the previous rows to them."""
        if self.optimizer is None:
            return
        if self.optimizer_dict is None:
            self.optimizer_dict = {"params": [weights]}
            self.optimizer.add_param_group(self.optimizer_dict)
            return
        previous = self.optimizer_dict["params"][0]
        state = self.optimizer.state
        if previous in state:
            state[weights] = state.pop(previous)
        self.optimizer_dict["params"] = [weights]

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        inverse = self._decoded_unique_rows(input)
        assert self.unique_vectors is not None
        out = self.unique_vectors.index_select(0, inverse)
        self.set_optimizable_weights(self.unique_vectors)
        return out.reshape(*input.shape, -1)

    # -- writing the table -----------------------------------------------------------------

    @torch.no_grad()
    def set_weight(self, weight: torch.Tensor) -> None:
        """Set the table: a ``bool`` tensor as it is, floats as ``weight_quantization(w) == 1``."""
        if weight.dtype != torch.bool:
            weight = self.weight_quantization(weight) == 1
        self.weight.copy_(weight)

    @torch.no_grad()
    def step(self) -> None:
        """Write the (optimized) rows of the last forward pass back into the table as
        ``weight_quantization(rows) == 1``; the padding row is left alone."""
        if self.unique is None or self.unique_vectors is None:
            raise RuntimeError(f"{type(self).__name__}.step: call forward before step")
        unique, vectors = self.unique, self.unique_vectors
        if self.padding_idx is not None:
            keep = unique != self.padding_idx
            unique, vectors = unique[keep], vectors[keep]
        self.weight.index_copy_(0, unique, self.weight_quantization(vectors) == 1)
        self.unique = None
        self.unique_vectors = None

    def set_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer the rows of each forward pass are handed to."""
        self.optimizer = optimizer


class BEmbeddingBag(BEmbedding):
    """Embedding bag with a binary table: the decoded rows of each bag reduced by ``mode``
    (``"sum"``, ``"mean"``, default, or ``"max"``). Padding entries count as zero rows
    (they are part of a bag's mean, unlike in ``nn.EmbeddingBag``), as in 0.4.1.

    ``forward(indices, offsets)``: ``indices`` are flattened, ``offsets`` (1-d, one start
    per bag, the first 0) split them into bags; the result is ``(len(offsets),
    embedding_dim)``. bitorch 0.4.1 warns that this layer is experimental and slow;
    building one warns the same.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        weight_quantization: str | Quantization | None = None,
        device: str | torch.device | None = None,
        sign_bool: bool = False,
        mode: str = "mean",
        *,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(
            num_embeddings=num_embeddings,
            embedding_dim=embedding_dim,
            padding_idx=padding_idx,
            weight_quantization=weight_quantization,
            device=device,
            sign_bool=sign_bool,
            dtype=dtype,
        )
        self.mode = check_embedding_mode(mode, type(self).__name__)
        warnings.warn(
            "The BEmbeddingBag is experimental: its unique/gather steps make a model "
            "noticeably slower (as in bitorch 0.4.1).",
            UserWarning,
            stacklevel=2,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"

    def apply_aggregate(
        self,
        batch_size: int,
        offsets: torch.Tensor,
        inverse_indices: torch.Tensor,
        unqiue_embedding_vectors: torch.Tensor,  # 0.4.1's spelling
    ) -> torch.Tensor:
        """The rows ``unqiue_embedding_vectors[inverse_indices]`` reduced per bag."""
        return F.embedding_bag(
            input=inverse_indices, weight=unqiue_embedding_vectors, offsets=offsets, mode=self.mode
        )

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        inverse = self._decoded_unique_rows(indices)
        assert self.unique_vectors is not None
        batch_size = offsets.size(0)
        out = self.apply_aggregate(batch_size, offsets, inverse, self.unique_vectors)
        self.set_optimizable_weights(self.unique_vectors)
        return out.reshape(batch_size, -1)
