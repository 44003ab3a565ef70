"""Quantized embeddings (bitorch 0.4.1's ``bitorch.layers.qembedding``).

``QEmbedding`` is ``nn.Embedding`` and ``QEmbeddingBag`` is ``nn.EmbeddingBag``, with the
same arguments, parameters (``weight``, ``(num_embeddings, embedding_dim)``, initialised
``N(0, 1)`` with the ``padding_idx`` row zeroed) and ``state_dict``. Both quantize the
weight table before the lookup and quantize the result::

    QEmbedding:     y = q_out(embedding(input, q_w(weight)))
    QEmbeddingBag:  y = q_out(embedding_bag(input, q_w(weight), offsets, mode, ...))

``weight_quantization`` and ``output_quantization`` are keyword-only; ``None`` (default)
means the layer config's ``weight_quantization`` and ``input_quantization`` (both
``"sign"``). The quantizers are kept, as in bitorch 0.4.1, as
``embedding_weight_quantization`` and ``embedding_output_quantization`` (QEmbedding), and
``embedding_weight_quantization`` and ``embedding_input_quantization`` (QEmbeddingBag,
whose output quantizer 0.4.1 named so; ``embedding_output_quantization`` reads it too).
The bag's modes are ``"sum"``, ``"mean"`` (default) and ``"max"``; ``padding_idx``
entries are left out of a bag (and of its mean's count); ``per_sample_weights`` need
``mode="sum"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bitorch.layers._util import PropertySetters, default, resolve_quantization
from bitorch.quantizations import Quantization

__all__ = ["QEmbedding", "QEmbeddingBag"]


def _quantizers(
    weight_quantization: Any, output_quantization: Any, where: str
) -> tuple[Quantization, Quantization]:
    weight = resolve_quantization(default(weight_quantization, "weight_quantization"), where)
    output = resolve_quantization(default(output_quantization, "input_quantization"), where)
    return weight, output


class QEmbedding(PropertySetters, nn.Embedding):
    """``nn.Embedding`` with a quantized table and a quantized output (module doc).

    >>> emb = QEmbedding(3, embedding_dim=2)
    >>> with torch.no_grad():
    ...     _ = emb.weight.copy_(torch.tensor([[0.5, -0.1], [-2.0, 0.0], [0.3, 0.3]]))
    >>> emb(torch.tensor([[1, 0]]))
    tensor([[[-1.,  1.],
             [ 1., -1.]]], grad_fn=<SignFunctionBackward>)
    """

    def __init__(
        self,
        *args: Any,
        weight_quantization: str | Quantization | None = None,
        output_quantization: str | Quantization | None = None,
        **kwargs: Any,
    ) -> None:
        weight_q, output_q = _quantizers(weight_quantization, output_quantization, "QEmbedding")
        super().__init__(*args, **kwargs)
        self.embedding_weight_quantization = weight_q
        self.embedding_output_quantization = output_q

    @property
    def weight_quantization(self) -> Quantization:
        """The table's quantizer (``embedding_weight_quantization``)."""
        return self.embedding_weight_quantization

    @weight_quantization.setter
    def weight_quantization(self, quantization: str | Quantization) -> None:
        self.embedding_weight_quantization = resolve_quantization(quantization, "QEmbedding")

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        embeddings = F.embedding(
            input,
            self.embedding_weight_quantization(self.weight),
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )
        return self.embedding_output_quantization(embeddings)


class QEmbeddingBag(PropertySetters, nn.EmbeddingBag):
    """``nn.EmbeddingBag`` with a quantized table and a quantized output (module doc).

    >>> bag = QEmbeddingBag(3, embedding_dim=2, mode="sum", output_quantization="identity")
    >>> with torch.no_grad():
    ...     _ = bag.weight.copy_(torch.tensor([[0.5, -0.1], [-2.0, 0.0], [0.3, 0.3]]))
    >>> bag(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 2]))
    tensor([[ 2.,  0.],
            [-2.,  2.]], grad_fn=<EmbeddingBagBackward0>)
    """

    def __init__(
        self,
        *args: Any,
        weight_quantization: str | Quantization | None = None,
        output_quantization: str | Quantization | None = None,
        **kwargs: Any,
    ) -> None:
        weight_q, output_q = _quantizers(weight_quantization, output_quantization, "QEmbeddingBag")
        super().__init__(*args, **kwargs)
        self.embedding_weight_quantization = weight_q
        self.embedding_input_quantization = output_q

    @property
    def weight_quantization(self) -> Quantization:
        """The table's quantizer (``embedding_weight_quantization``)."""
        return self.embedding_weight_quantization

    @weight_quantization.setter
    def weight_quantization(self, quantization: str | Quantization) -> None:
        self.embedding_weight_quantization = resolve_quantization(quantization, "QEmbeddingBag")

    @property
    def embedding_output_quantization(self) -> Quantization:
        """The output's quantizer (0.4.1's ``embedding_input_quantization``)."""
        return self.embedding_input_quantization

    @embedding_output_quantization.setter
    def embedding_output_quantization(self, quantization: str | Quantization) -> None:
        self.embedding_input_quantization = resolve_quantization(quantization, "QEmbeddingBag")

    def forward(
        self,
        input: torch.Tensor,  # noqa: A002 (torch's name)
        offsets: torch.Tensor | None = None,
        per_sample_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        embeddings = F.embedding_bag(
            input,
            self.embedding_weight_quantization(self.weight),
            offsets,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.mode,
            self.sparse,
            per_sample_weights,
            self.include_last_offset,
            self.padding_idx,
        )
        return self.embedding_input_quantization(embeddings)
