"""Input arrays and cotangents of the parity comparisons, made once in NumPy.

Random values mix two scales (``2 * normal`` and ``uniform(-1.5, 1.5)``, so both the
saturated and the linear ranges of every quantizer are hit) and SPEC.md's edge values
are placed at random positions: ``0``, ``-0.0``, ``±1``, NaN, ``±inf``, the neighbours of
every threshold (``±1`` one ulp either side, ``±0.5``), the smallest normal and subnormal
numbers, the largest finite number, and per-quantizer extras such as DoReFa ties.

>>> x = random_inputs((4,), "float32", np.random.default_rng(0))
>>> x.dtype, x.shape
(dtype('float32'), (4,))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from bitorch_common.tolerances import dtype_name

__all__ = [
    "ZERO_D_EDGES",
    "np_dtype",
    "edge_values",
    "random_inputs",
    "cotangents",
    "make_samples",
]


#: How many edge values a 0-d comparison takes, one 0-d array each (every edge value is
#: also in every array of one or more elements).
ZERO_D_EDGES = 10


def np_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype (``ml_dtypes.bfloat16`` for bfloat16) of a dtype name or object."""
    name = dtype_name(dtype)
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def edge_values(dtype: Any, extra: Sequence[float] = (), *, nan: bool = True) -> np.ndarray:
    """SPEC.md's edge values in ``dtype``, most important first (1-d array).

    ``extra`` (for example DoReFa half-way ties) is appended; ``nan=False`` leaves NaN out
    (for quantizers where one NaN makes the whole output NaN).
    """
    dt = np_dtype(dtype)
    info = ml_dtypes.finfo(dt)
    eps = float(info.eps)
    values = [0.0, -0.0, 1.0, -1.0]
    if nan:
        values.append(math.nan)
    values += [math.inf, -math.inf]
    values += [1.0 + eps, 1.0 - eps / 2, -1.0 - eps, -1.0 + eps / 2]  # just past |x| = 1
    values += [0.5, -0.5, 2.0, -2.0, 0.25]
    values += [float(info.smallest_normal), -float(info.smallest_normal)]
    values += [float(info.smallest_subnormal), -float(info.smallest_subnormal)]
    values += [float(info.max), -float(info.max)]
    values += [float(v) for v in extra]
    return np.asarray(values, dtype=np.float64).astype(dt)


def random_inputs(shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Random values: each element is ``2 * normal`` or ``uniform(-1.5, 1.5)``, 50/50."""
    size = math.prod(shape)
    wide = 2.0 * rng.standard_normal(size)
    narrow = rng.uniform(-1.5, 1.5, size)
    pick = rng.random(size) < 0.5
    return np.where(pick, wide, narrow).reshape(shape).astype(np_dtype(dtype))


def cotangents(shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Random, non-unit output cotangents: ``normal * 1.5``, never exactly 0."""
    g = 1.5 * rng.standard_normal(math.prod(shape))
    g = np.where(g == 0, 0.75, g)
    return g.reshape(shape).astype(np_dtype(dtype))


def make_samples(
    shape: tuple[int, ...],
    dtype: Any,
    rng: np.random.Generator,
    *,
    edges: bool = True,
    extra_edges: Sequence[float] = (),
    tensor_wide: bool = False,
) -> list[np.ndarray]:
    """The input arrays of one comparison (all of ``shape``, so they share one compile).

    * the main array: random values with the edge values at random positions (as many
      as fit, most important first);
    * for a 0-d shape, the first :data:`ZERO_D_EDGES` edge values (0, -0.0, ±1, NaN, ±inf,
      the neighbours of 1) each as its own 0-d array, plus one random one;
    * with ``edges``: an all-subnormal array (random signs, subnormals of the dtype) and
      an all-zero array (``0`` and ``-0.0`` mixed), where XLA's flushing of subnormals
      and the all-zero rules show;
    * ``tensor_wide=True`` (a per-tensor statistic such as WeightDoReFa's ``max|tanh|``):
      NaN is left out of the main array, which would otherwise be all NaN, and three more
      arrays follow: the main array with one NaN, and two finite random arrays whose
      largest magnitude is negative in one and positive in the other (the main array holds
      ``±inf``, so its statistic alone would not show a maximum taken without ``abs``).
    """
    shape = tuple(int(s) for s in shape)
    dt = np_dtype(dtype)
    ev = edge_values(dt, extra_edges, nan=not tensor_wide) if edges else np.zeros(0, dt)
    if shape == ():
        samples = [np.asarray(v, dtype=dt) for v in ev[:ZERO_D_EDGES]]
        if edges and tensor_wide:
            samples.append(np.asarray(np.nan, dtype=dt))
        samples.append(random_inputs((), dt, rng))
        return samples
    main = random_inputs(shape, dt, rng)
    flat = main.reshape(-1)
    count = min(flat.size, ev.size)
    if count:
        positions = rng.choice(flat.size, size=count, replace=False)
        flat[positions] = ev[:count]
    samples = [main]
    if edges and flat.size:
        samples += [subnormal_array(shape, dt, rng), signed_zeros(shape, dt, rng)]
    if tensor_wide and flat.size:
        with_nan = main.copy()
        with_nan.reshape(-1)[rng.integers(flat.size)] = np.nan
        samples += [with_nan, asymmetric(shape, dt, rng, -1), asymmetric(shape, dt, rng, +1)]
    return samples


def subnormal_array(shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Random signs times random subnormals of ``dtype`` (1 to 64 times the smallest)."""
    dt = np_dtype(dtype)
    tiny = float(ml_dtypes.finfo(dt).smallest_subnormal)
    size = math.prod(shape)
    steps = rng.integers(1, 65, size) * rng.choice([-1.0, 1.0], size)
    return (steps * tiny).astype(dt).reshape(shape)


def signed_zeros(shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """``0`` and ``-0.0`` at random positions."""
    size = math.prod(shape)
    return np.where(rng.random(size) < 0.5, -0.0, 0.0).astype(np_dtype(dtype)).reshape(shape)


def asymmetric(
    shape: tuple[int, ...], dtype: Any, rng: np.random.Generator, sign: int
) -> np.ndarray:
    """Finite random values whose largest magnitude has ``sign`` (and is unique): a
    per-tensor maximum taken without ``abs``, or over ``x`` instead of ``tanh x``, differs."""
    dt = np_dtype(dtype)
    values = random_inputs(shape, dt, rng).astype(np.float64).reshape(-1)
    values = np.clip(values, -1.2, 1.2)
    values[rng.integers(values.size)] = 1.7 * sign
    return values.astype(dt).reshape(shape)
