"""Constant padding of the two spatial axes: the pure function behind linen and NNX
``PadModule``. Mirror of :mod:`bitorch.layers.pad` in Flax layout."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from bitorch_common.validation import check_int, check_real

__all__ = ["pad_2d"]


def pad_2d(
    x: jax.Array, padding: Sequence[int] = (0, 0, 0, 0), padding_value: float = 0.0
) -> jax.Array:
    """bitorch's ``PadModule`` for channels-last input ``(..., H, W, C)``.

    ``padding`` is ``(left, right, top, bottom)``: ``left``/``right`` elements are added
    before/after ``W`` (the axis torch's ``PadModule`` pads by them in ``(..., H, W)``),
    ``top``/``bottom`` before/after ``H``, all with ``padding_value`` (cast to ``x``'s
    dtype). A negative amount crops, as in ``torch.nn.functional.pad``. The gradient
    reaches the elements that are kept.

    >>> pad_2d(jnp.ones((1, 1, 1)), (1, 0, 0, 1), -1.0)[..., 0]
    Array([[-1.,  1.],
           [-1., -1.]], dtype=float32)
    """
    where = "pad_2d"
    if isinstance(padding, (str, bytes)) or not isinstance(padding, Sequence) or len(padding) != 4:
        raise TypeError(
            f"{where}: padding must be 4 ints (left, right, top, bottom), got {padding!r}"
        )
    names = ("padding_left", "padding_right", "padding_top", "padding_bottom")
    left, right, top, bottom = (check_int(p, n, where) for p, n in zip(padding, names, strict=True))
    value = check_real(padding_value, "padding_value", where)
    x = jnp.asarray(x)
    if x.ndim < 3:
        raise ValueError(
            f"{where}: input must be channels-last (..., H, W, C), got shape {x.shape}"
        )
    config = [(0, 0, 0)] * x.ndim
    config[-3] = (top, bottom, 0)
    config[-2] = (left, right, 0)
    for axis, (lo, hi, _) in ((-3, config[-3]), (-2, config[-2])):
        if x.shape[axis] + lo + hi < 0:
            raise ValueError(f"{where}: cropping {-lo - hi} from an axis of size {x.shape[axis]}")
    return jax.lax.pad(x, jnp.asarray(value, x.dtype), config)
