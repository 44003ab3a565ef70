"""The memory floor: what moving a quantizer's minimum bytes costs on this machine.

Measured in the same run, interleaved with the quantizers, on arrays of the benchmark's
size, dtype and device, with kernels that do nothing but move memory:

* ``copy``: copy ``x`` into a preallocated ``y`` and ``g`` into a preallocated ``dx``
  (two reads, two writes of the array size; no allocation, so no fresh pages). This is
  exactly the floor of a pass-through quantizer: read ``x``, write ``y``, read ``g``,
  write ``dx``.
* ``read``: sum ``x`` and sum ``g`` (two reads, nothing written; the sums are cheap
  next to the memory traffic).
* ``fresh``: ``clone`` ``x`` and ``g`` into newly allocated arrays. The difference to
  ``copy`` is what a new output array costs on top of its bytes (allocation and the
  operating system's first touch of fresh pages), which any framework that returns a
  new array pays unless its allocator reuses memory.

Each kernel runs in several libraries (torch with all its threads, NumPy with one) and
the fastest median is used: the floor is the best this machine did, not a slow copy.
A quantizer that reads ``R`` and writes ``W`` bytes per element gets
``floor = N * (R * read_cost + W * write_cost)`` where ``read_cost = t_read / (2 N s)``
and ``write_cost = (t_copy - t_read) / (2 N s)`` (``s`` bytes per element): a write is
priced as what a copy costs beyond its read. For ``R = W = 2s`` this is ``t_copy`` itself.

>>> floor_seconds(reads=8, writes=8, itemsize=4, size=10, copy_s=2.0, read_s=0.5)
2.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks.frameworks import Data, sync
from benchmarks.timing import Timed

__all__ = ["floor_kernels", "floor_seconds", "FLOOR_KINDS"]

FLOOR_KINDS = ("copy", "read", "fresh")


def floor_kernels(data: Data) -> dict[str, dict[str, Timed]]:
    """The memory-only kernels, by kind (``copy``, ``read``, ``fresh``) and library."""
    x, g, device = data.x_torch, data.g_torch, data.device
    y_buf, dx_buf = torch.empty_like(x), torch.empty_like(g)

    def torch_copy(_: Any) -> None:
        y_buf.copy_(x)
        dx_buf.copy_(g)
        sync(device)

    def torch_read(_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        sums = (x.sum(), g.sum())
        sync(device)
        return sums

    def torch_fresh(_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = (x.clone(), g.clone())
        sync(device)
        return out

    kernels: dict[str, dict[str, Timed]] = {
        "copy": {"torch": Timed(torch_copy)},
        "read": {"torch": Timed(torch_read)},
        "fresh": {"torch": Timed(torch_fresh)},
    }
    if device == "cpu":
        # NumPy on the raw bytes (works for bfloat16 too); single-threaded.
        xb, gb = x.view(torch.uint8).numpy(), g.view(torch.uint8).numpy()
        yb, db = y_buf.view(torch.uint8).numpy(), dx_buf.view(torch.uint8).numpy()

        def numpy_copy(_: Any) -> None:
            np.copyto(yb, xb)
            np.copyto(db, gb)

        def numpy_fresh(_: Any) -> tuple[np.ndarray, np.ndarray]:
            return xb.copy(), gb.copy()

        kernels["copy"]["numpy"] = Timed(numpy_copy)
        kernels["fresh"]["numpy"] = Timed(numpy_fresh)
        if data.itemsize in (4, 8):
            # Integer sums of the same bytes: exact, vectorised, one pass.
            int_dtype = np.int32 if data.itemsize == 4 else np.int64
            xi, gi = xb.view(int_dtype), gb.view(int_dtype)

            def numpy_read(_: Any) -> tuple[Any, Any]:
                return np.add.reduce(xi, dtype=int_dtype), np.add.reduce(gi, dtype=int_dtype)

            kernels["read"]["numpy"] = Timed(numpy_read)
    return kernels


def floor_seconds(
    *, reads: int, writes: int, itemsize: int, size: int, copy_s: float, read_s: float
) -> float:
    """Seconds to read ``reads`` and write ``writes`` bytes per element of ``size``.

    ``copy_s`` and ``read_s`` are the measured ``copy`` and ``read`` kernel times
    (two arrays each). A write never costs less than nothing: if noise makes the read
    slower than the copy, writes are priced at zero beyond their read.
    """
    array_bytes = 2 * size * itemsize
    read_cost = read_s / array_bytes
    write_cost = max(copy_s - read_s, 0.0) / array_bytes
    return size * (reads * read_cost + writes * write_cost)
