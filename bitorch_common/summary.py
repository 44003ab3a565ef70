"""Model summaries of binary networks: the framework-free part (accounting and formatting).

``bitorch.summary`` (PyTorch) and ``bitorch_jax.summary`` (Flax NNX and linen) walk a model
and describe each layer with a :class:`LayerSummary`; :class:`ModelSummary` adds them up and
prints them as a table (``str``/``print``), a dict (:meth:`ModelSummary.to_dict`) or JSON
(:meth:`ModelSummary.to_json`). The rules, the same in both frameworks:

* **Parameters per bit width.** The weight (``kernel``) of a quantized layer counts at its
  weight quantizer's ``bit_width`` (capped at its dtype's bits: an identity quantizer on a
  float64 weight counts 64); every other variable (biases, BatchNorm scale/shift and its
  running statistics, full-precision layers) at its dtype's bits. Counted: trainable
  parameters and floating-point statistics (torch parameters and float buffers, NNX
  ``Param`` and ``BatchStat``, linen ``params`` and ``batch_stats``); torch's integer
  ``num_batches_tracked`` counter is left out (Flax has none).
* **Memory.** *Stored*: the bytes the dtypes take (``itemsize * count``). *Packed*: the
  bits above divided by 8 (a 1-bit weight takes 1/8 byte), so it may be fractional. The
  **compression ratio** is ``stored / packed``.
* **MACs** (multiply-accumulates), per example: dense and convolution layers only, each call
  ``output elements per example * fan-in``, where fan-in is ``weight size / out features``
  (``in_features`` for a dense layer, ``kernel volume * in_channels / groups`` for a
  convolution). They are *binary* for a quantized layer whose input and weight quantizers
  are both 1-bit, else full precision. The batch is the first dimension of the output.

>>> conv = layer_summary("conv", "QConv2d", (1, 8, 6, 6),
...                      [(216, 1, 4)], macs=dense_macs((1, 8, 6, 6), 216, 8), binary=True)
>>> conv.params, conv.stored_bytes, conv.packed_bytes, conv.binary_macs
({1: 216}, 864, 27.0, 7776)
>>> model = ModelSummary("Net", "torch", (conv, layer_summary("fc", "Linear", (1, 10),
...                      [(2880, 32, 4), (10, 32, 4)], macs=dense_macs((1, 10), 2880, 10))))
>>> model.params_by_bits, model.fp_macs, round(model.compression_ratio, 2)
({1: 216, 32: 2890}, 2880, 1.07)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LayerSummary",
    "ModelSummary",
    "dense_macs",
    "layer_summary",
    "stored_bit_width",
]


def stored_bit_width(dtype_bits: int, quantizer_bits: int | None = None) -> int:
    """The bit width a variable counts at: its quantizer's (if any), capped at its dtype's.

    >>> stored_bit_width(32, 1), stored_bit_width(64, 32), stored_bit_width(16)
    (1, 32, 16)
    """
    if quantizer_bits is None:
        return int(dtype_bits)
    return int(min(int(quantizer_bits), int(dtype_bits)))


def dense_macs(output_shape: Sequence[int], weight_size: int, out_features: int) -> int:
    """Multiply-accumulates per example of one call of a dense or convolution layer.

    ``output elements per example * fan-in``; the fan-in is ``weight_size / out_features``
    and the batch is ``output_shape[0]``. A linear layer ``I -> O``: ``O * I``; a 2-d
    convolution with a ``k x k`` kernel to ``O x H x W``: ``O * H * W * k * k * I / groups``.

    >>> dense_macs((4, 10), 30 * 10, 10)  # Linear(30, 10), batch of 4
    300
    """
    if len(output_shape) < 1 or out_features < 1 or weight_size % out_features:
        raise ValueError(
            f"dense_macs: need a batched output shape and a weight size divisible by "
            f"out_features, got output {tuple(output_shape)}, weight size {weight_size}, "
            f"out_features {out_features}"
        )
    per_example = math.prod(int(d) for d in output_shape[1:])
    return per_example * (int(weight_size) // int(out_features))


@dataclass(frozen=True)
class LayerSummary:
    """One layer: its name, type, output shape, parameters per bit width, memory, MACs.

    ``params`` maps a bit width to a parameter count; ``stored_bytes`` is what the
    variables take in their dtypes. Build one with :func:`layer_summary`.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: Mapping[int, int] = field(default_factory=dict)
    stored_bytes: int = 0
    binary_macs: int = 0
    fp_macs: int = 0

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    @property
    def packed_bits(self) -> int:
        return sum(bits * count for bits, count in self.params.items())

    @property
    def packed_bytes(self) -> float:
        return self.packed_bits / 8

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "params": {str(bits): count for bits, count in sorted(self.params.items())},
            "total_params": self.total_params,
            "stored_bytes": self.stored_bytes,
            "packed_bytes": self.packed_bytes,
            "binary_macs": self.binary_macs,
            "fp_macs": self.fp_macs,
        }


def layer_summary(
    name: str,
    type_name: str,
    output_shape: Sequence[int] | None,
    variables: Iterable[tuple[int, int, int]],
    *,
    macs: int = 0,
    binary: bool = False,
) -> LayerSummary:
    """A :class:`LayerSummary` from ``(count, bit_width, itemsize)`` per variable.

    ``macs`` go to ``binary_macs`` when ``binary``, else to ``fp_macs``.

    >>> layer_summary("bn", "BatchNorm2d", (1, 8, 6, 6), [(8, 32, 4)] * 4).to_dict()["params"]
    {'32': 32}
    """
    params: dict[int, int] = {}
    stored = 0
    for count, bits, itemsize in variables:
        if count:
            params[int(bits)] = params.get(int(bits), 0) + int(count)
            stored += int(count) * int(itemsize)
    shape = None if output_shape is None else tuple(int(d) for d in output_shape)
    return LayerSummary(
        name=name,
        type=type_name,
        output_shape=shape,
        params=dict(sorted(params.items())),
        stored_bytes=stored,
        binary_macs=int(macs) if binary else 0,
        fp_macs=0 if binary else int(macs),
    )


def _int(n: int) -> str:
    return f"{n:,}"


def _bytes(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.3f}"


def _memory(n: float) -> str:
    """``"20,168 B (19.70 KiB)"``; the unit in parentheses from 1 KiB on."""
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{_bytes(n)} B ({n / size:,.2f} {unit})"
    return f"{_bytes(n)} B"


@dataclass(frozen=True)
class ModelSummary:
    """The layers of one model and their totals; ``str()`` is the table.

    ``framework`` is ``"torch"``, ``"flax.nnx"`` or ``"flax.linen"``; ``name`` the model's
    class name. Totals: :attr:`params_by_bits`, :attr:`total_params`,
    :attr:`stored_bytes`, :attr:`packed_bytes`, :attr:`compression_ratio`
    (``stored / packed``, ``None`` without parameters), :attr:`binary_macs`,
    :attr:`fp_macs`.
    """

    name: str
    framework: str
    layers: tuple[LayerSummary, ...]

    @property
    def params_by_bits(self) -> dict[int, int]:
        totals: dict[int, int] = {}
        for layer in self.layers:
            for bits, count in layer.params.items():
                totals[bits] = totals.get(bits, 0) + count
        return dict(sorted(totals.items()))

    @property
    def total_params(self) -> int:
        return sum(layer.total_params for layer in self.layers)

    @property
    def stored_bytes(self) -> int:
        return sum(layer.stored_bytes for layer in self.layers)

    @property
    def packed_bits(self) -> int:
        return sum(layer.packed_bits for layer in self.layers)

    @property
    def packed_bytes(self) -> float:
        return self.packed_bits / 8

    @property
    def compression_ratio(self) -> float | None:
        return self.stored_bytes / self.packed_bytes if self.packed_bits else None

    @property
    def binary_macs(self) -> int:
        return sum(layer.binary_macs for layer in self.layers)

    @property
    def fp_macs(self) -> int:
        return sum(layer.fp_macs for layer in self.layers)

    @property
    def binary_mac_fraction(self) -> float | None:
        total = self.binary_macs + self.fp_macs
        return self.binary_macs / total if total else None

    def totals(self) -> dict[str, Any]:
        """The totals as a dict (the ``"totals"`` entry of :meth:`to_dict`)."""
        return {
            "params": {str(bits): count for bits, count in self.params_by_bits.items()},
            "total_params": self.total_params,
            "stored_bytes": self.stored_bytes,
            "packed_bytes": self.packed_bytes,
            "compression_ratio": self.compression_ratio,
            "binary_macs": self.binary_macs,
            "fp_macs": self.fp_macs,
            "binary_mac_fraction": self.binary_mac_fraction,
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"model", "framework", "layers": [...], "totals": {...}}``; JSON-ready (bit
        widths are string keys)."""
        return {
            "model": self.name,
            "framework": self.framework,
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": self.totals(),
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON; ``kwargs`` go to :func:`json.dumps` (default indent 2)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    def table(self) -> str:
        """The per-layer table (output shape, parameters per bit width, bytes stored and
        packed, MACs), its total row and a block of totals."""
        bit_widths = list(self.params_by_bits)
        header = ["Layer", "Type", "Output"]
        header += [f"# {bits}-bit" for bits in bit_widths]
        header += ["Stored B", "Packed B", "Binary MACs", "FP MACs"]
        rows = []
        for layer in self.layers:
            shape = "?" if layer.output_shape is None else str(layer.output_shape)
            rows.append(
                [layer.name or "(root)", layer.type, shape]
                + [_int(layer.params.get(bits, 0)) for bits in bit_widths]
                + [_int(layer.stored_bytes), _bytes(layer.packed_bytes)]
                + [_int(layer.binary_macs), _int(layer.fp_macs)]
            )
        total = (
            ["Total", "", ""]
            + [_int(self.params_by_bits[bits]) for bits in bit_widths]
            + [_int(self.stored_bytes), _bytes(self.packed_bytes)]
            + [_int(self.binary_macs), _int(self.fp_macs)]
        )
        widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            text = [
                cell.ljust(width) if i < 3 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "| " + " | ".join(text) + " |"

        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        title = f"{self.name} ({self.framework})"
        out = [title, rule, line(header), rule, *map(line, rows), rule, line(total), rule]
        ratio = self.compression_ratio
        fraction = self.binary_mac_fraction
        facts = [
            ("Total params", _int(self.total_params)),
            *((f"  {bits}-bit", _int(n)) for bits, n in self.params_by_bits.items()),
            ("Memory stored", _memory(self.stored_bytes)),
            ("Memory packed", _memory(self.packed_bytes)),
            ("Compression (stored/packed)", "-" if ratio is None else f"{ratio:.2f}x"),
            ("MACs binary / FP", f"{_int(self.binary_macs)} / {_int(self.fp_macs)}"),
            ("Binary share of MACs", "-" if fraction is None else f"{fraction:.2%}"),
        ]
        key_width = max(len(k) for k, _ in facts)
        out += [f"{k.ljust(key_width)}  {v}" for k, v in facts]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()
