"""``q_conv``'s padded-ring formulation against the plain one.

``q_conv`` pads the ``pad_value`` ring one element wider with ``jnp.pad`` and crops it
again with a convolution padding of ``-1`` (XLA:CPU's padded convolutions are faster
than unpadded ones). Here the reference is written the direct way: quantize, pad by the
layer's own padding, ``VALID`` convolution. Output, input gradient and kernel gradient
must be bit-identical, for strides, dilations, groups, asymmetric ``"same"`` padding,
1-d/2-d/3-d kernels, several pad values and both float widths (float64 in the scoped
``x64`` fixture). Inputs include exact 0, -0.0, +-1 and values past the gradient
cancellation threshold.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bitorch_common.validation import explicit_padding, spatial_tuple
from bitorch_jax.layers.qactivation import q_activation
from bitorch_jax.layers.qconv import q_conv
from bitorch_jax.quantizations import quantization_from_name

# (kernel_size, strides, padding, dilation, groups, spatial)
CASES = [
    ((3, 3), 1, 1, 1, 1, (8, 8)),
    ((3, 3), 2, 1, 1, 1, (9, 8)),
    ((3, 3), 1, 2, 2, 1, (7, 9)),
    ((2, 2), 2, "same", 1, 1, (7, 6)),  # asymmetric: (0, 1) or (1, 0) per axis
    ((4, 3), 3, "same", 1, 2, (10, 7)),
    ((3, 3), 1, ((2, 0), (0, 1)), 1, 2, (6, 6)),
    ((3,), 1, 1, 1, 1, (11,)),
    ((3, 3, 3), 2, 1, 1, 1, (5, 6, 5)),
    ((1, 1), 1, 0, 1, 1, (5, 5)),  # no padding: the plain VALID path
]


def reference(x: jax.Array, kernel: jax.Array, case: tuple, pad_value: float) -> jax.Array:
    kernel_size, strides, padding, dilation, groups, _ = case
    n = len(kernel_size)
    strides_t = spatial_tuple(strides, n, "strides", "ref", minimum=1)
    dilation_t = spatial_tuple(dilation, n, "dilation", "ref", minimum=1)
    pads = explicit_padding(padding, kernel_size, dilation_t, strides_t, "ref", x.shape[1:-1])
    xq = q_activation(x, quantization_from_name("sign")(), 1.0)
    xq = jnp.pad(xq, ((0, 0), *pads, (0, 0)), constant_values=pad_value)
    wq = quantization_from_name("sign")()(kernel)
    spatial = tuple(range(1, n + 1))
    dims = jax.lax.ConvDimensionNumbers((0, n + 1, *spatial), (n + 1, n, *range(n)),
                                        (0, n + 1, *spatial))  # fmt: skip
    return jax.lax.conv_general_dilated(
        xq, wq, strides_t, ((0, 0),) * n, rhs_dilation=dilation_t,
        dimension_numbers=dims, feature_group_count=groups,
    )  # fmt: skip


def operands(case: tuple, dtype: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kernel_size, _, _, _, groups, spatial = case
    rng = np.random.default_rng(seed)
    c_in, c_out = 4, 6
    x = rng.normal(0, 1.2, size=(2, *spatial, c_in))
    edges = np.array([0.0, -0.0, 1.0, -1.0, 1.5, -1.5, 1e-30, 7.0])
    flat = x.reshape(-1)
    flat[: edges.size] = edges
    kernel = rng.normal(size=(*kernel_size, c_in // groups, c_out))
    kernel.reshape(-1)[:4] = [0.0, -0.0, 1.0, -1.0]
    return x.astype(dtype), kernel.astype(dtype), rng.normal(size=6).astype(dtype)


def both(case: tuple, dtype: Any, pad_value: float, seed: int = 0) -> tuple:
    kernel_size, strides, padding, dilation, groups, _ = case
    x, kernel, _ = operands(case, dtype, seed)

    def ours(x: jax.Array, k: jax.Array) -> jax.Array:
        return q_conv(x, k, strides=strides, padding=padding, kernel_dilation=dilation,
                      feature_group_count=groups, pad_value=pad_value)  # fmt: skip

    def theirs(x: jax.Array, k: jax.Array) -> jax.Array:
        return reference(x, k, case, pad_value)

    out = []
    for f in (ours, theirs):
        y, vjp = jax.vjp(jax.jit(f), jnp.asarray(x), jnp.asarray(kernel))
        g = np.random.default_rng(seed + 1).normal(size=y.shape).astype(dtype)
        out.append((np.asarray(y), *(np.asarray(v) for v in vjp(jnp.asarray(g)))))
    return out


@pytest.mark.parametrize("pad_value", [-1.0, 0.0, 0.5])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}-d{c[3]}-g{c[4]}")
def test_ring_formulation_is_bit_identical_float32(case: tuple, pad_value: float) -> None:
    ours, theirs = both(case, np.float32, pad_value)
    for name, a, b in zip(("output", "input grad", "kernel grad"), ours, theirs, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b, err_msg=f"{name} differs")
    assert np.abs(ours[1]).max() > 0 and np.abs(ours[2]).max() > 0  # not vacuous


@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}")
def test_ring_formulation_is_bit_identical_float64(case: tuple, x64: None) -> None:
    ours, theirs = both(case, np.float64, -1.0)
    for name, a, b in zip(("output", "input grad", "kernel grad"), ours, theirs, strict=True):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_array_equal(a, b, err_msg=f"{name} differs")


def test_the_ring_reaches_the_compiled_convolution() -> None:
    """The padded path is what XLA compiles: a -1 convolution padding, not VALID."""
    x, kernel, _ = operands(CASES[0], np.float32, 0)
    text = jax.jit(lambda a, k: q_conv(a, k, padding=1)).lower(x, kernel).as_text()
    (conv,) = [line for line in text.splitlines() if "convolution(" in line]
    assert "pad = [[-1, -1], [-1, -1]]" in conv, conv
