"""Flax conventions of the quantized layers: dtypes, exact accumulation, SAME padding,
learnable output scales.

* ``dtype``/``param_dtype``/``precision``/``preferred_element_type`` behave as in
  ``nnx.Linear``/``nnx.Conv`` (checked against them with identity quantizers: same output
  dtype, same values);
* ``preferred_element_type=jnp.float32`` sums the +-1 products of bfloat16 operands
  exactly (257 and 4094 products; without it the bfloat16 result rounds: measured on CPU
  257 -> 256 and 4094 -> 4096);
* ``padding="same"`` with any stride is ``lax``'s ``"SAME"`` (against ``nnx.Conv``),
  padded with ``pad_value``;
* ``output_scale``: a ``scale`` parameter ``(features,)`` of ones, multiplied onto the
  output before the bias.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import bitorch_jax.quantizations as jq
from bitorch_common.validation import explicit_padding, same_padding
from bitorch_jax.layers import linen as ql
from bitorch_jax.layers import nnx as qn
from bitorch_jax.layers import q_conv, q_linear

IDENTITY = {
    "input_quantization": "identity",
    "weight_quantization": "identity",
    "gradient_cancellation_threshold": 0.0,
}
BF16, F32 = jnp.bfloat16, jnp.float32


def _ones_products(n: int, conv: bool) -> tuple[jax.Array, jax.Array]:
    """bfloat16 input and kernel whose ``n`` sign products are all ``+1`` (random
    magnitudes and signs, the kernel's signs equal to the input's)."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=n).astype(np.float32)
    x[x == 0] = 1.0
    w = np.sign(x) * rng.uniform(0.1, 2.0, size=n)
    x, w = jnp.asarray(x, BF16), jnp.asarray(w, BF16)
    if conv:  # a 1-d convolution whose window covers the whole input: one output
        return x.reshape(1, n, 1), w.reshape(n, 1, 1)
    return x.reshape(1, n), w.reshape(n, 1)


def _count(kind: str, n: int, **kwargs: Any) -> jax.Array:
    """The one output of ``kind`` on :func:`_ones_products` (``sign`` quantizers)."""
    x, k = _ones_products(n, conv="conv" in kind)
    if kind == "q_linear":
        return q_linear(x, k, **kwargs)
    if kind == "q_conv":
        return q_conv(x, k, **kwargs)
    if kind == "linen-dense":
        return ql.QDense(1, use_bias=False, **kwargs).apply({"params": {"kernel": k}}, x)
    if kind == "linen-conv":
        return ql.QConv(1, (n,), **kwargs).apply({"params": {"kernel": k}}, x)
    if kind == "nnx-linear":
        layer = qn.QLinear(n, 1, use_bias=False, param_dtype=BF16, rngs=nnx.Rngs(0), **kwargs)
    else:
        layer = qn.QConv(1, 1, (n,), param_dtype=BF16, rngs=nnx.Rngs(0), **kwargs)
    layer.kernel[...] = k
    return layer(x)


KINDS = ["q_linear", "q_conv", "linen-dense", "linen-conv", "nnx-linear", "nnx-conv"]


@pytest.mark.parametrize("n", [257, 4094])
@pytest.mark.parametrize("kind", KINDS)
def test_float32_accumulation_counts_bfloat16_products_exactly(kind: str, n: int) -> None:
    plain = _count(kind, n)
    exact = _count(kind, n, preferred_element_type=F32)
    # bfloat16 holds 8 significant bits: n rounds (measured on CPU: 257 -> 256,
    # 4094 -> 4096, the result rounded once to bfloat16)
    assert plain.dtype == BF16 and plain.size == 1
    assert float(plain.reshape(())) == float(jnp.asarray(n, BF16)) != n
    assert exact.dtype == F32, "preferred_element_type is the output dtype, as in lax"
    assert float(exact.reshape(())) == n


# (input dtype, param_dtype, dtype, preferred_element_type)
DTYPE_CASES = [
    (F32, F32, None, None),
    (BF16, F32, None, None),  # promoted: computes and returns float32
    (BF16, F32, BF16, None),  # computes and returns bfloat16
    (F32, BF16, None, None),
    (BF16, BF16, None, F32),
    (F32, F32, BF16, F32),
    (jnp.float16, F32, jnp.float16, None),
]


def _dtype_id(case: tuple) -> str:
    return "-".join("none" if d is None else jnp.dtype(d).name for d in case)


@pytest.mark.parametrize("case", DTYPE_CASES, ids=_dtype_id)
def test_nnx_layers_follow_nnx_linear_and_conv_dtypes(case: tuple) -> None:
    x_dtype, param_dtype, dtype, preferred = case
    kw = {"dtype": dtype, "param_dtype": param_dtype, "preferred_element_type": preferred}
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 3)), x_dtype)
    pairs = [
        (
            qn.QLinear(3, 4, **IDENTITY, **kw, rngs=nnx.Rngs(1)),
            nnx.Linear(3, 4, **kw, rngs=nnx.Rngs(1)),
        ),
        (
            qn.QConv(3, 4, (3,), strides=2, padding="same", pad_value=0.0, use_bias=True,
                     **IDENTITY, **kw, rngs=nnx.Rngs(1)),
            nnx.Conv(3, 4, (3,), strides=2, padding="SAME", **kw, rngs=nnx.Rngs(1)),
        ),
    ]  # fmt: skip
    for ours, flax_layer in pairs:
        assert ours.kernel[...].dtype == jnp.dtype(param_dtype)
        ours.bias[...] = jnp.asarray(rng.normal(size=4), param_dtype)
        flax_layer.kernel[...], flax_layer.bias[...] = ours.kernel[...], ours.bias[...]
        got, want = ours(x), flax_layer(x)
        assert got.dtype == want.dtype, f"{type(ours).__name__}: {got.dtype} vs {want.dtype}"
        np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


@pytest.mark.parametrize("case", DTYPE_CASES, ids=_dtype_id)
def test_linen_layers_follow_nn_dense_and_conv_dtypes(case: tuple) -> None:
    x_dtype, param_dtype, dtype, preferred = case
    kw = {"dtype": dtype, "param_dtype": param_dtype}
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 3)), x_dtype)
    bias_init = nn.initializers.normal(1.0)
    # linen's Dense/Conv take preferred_element_type through their lax functions
    dense_kw = {
        "dot_general": functools.partial(jax.lax.dot_general, preferred_element_type=preferred)
    }
    conv_kw = {"conv_general_dilated": functools.partial(
        jax.lax.conv_general_dilated, preferred_element_type=preferred)}  # fmt: skip
    ours_kw = {**IDENTITY, **kw, "preferred_element_type": preferred, "bias_init": bias_init}
    pairs = [
        (ql.QDense(4, **ours_kw), nn.Dense(4, bias_init=bias_init, **kw, **dense_kw)),
        (
            ql.QConv(4, (3,), strides=2, padding="SAME", pad_value=0.0, use_bias=True, **ours_kw),
            nn.Conv(4, (3,), strides=2, padding="SAME", bias_init=bias_init, **kw, **conv_kw),
        ),
    ]
    for ours, flax_layer in pairs:
        got, variables = ours.init_with_output(jax.random.key(0), x)
        assert {v.dtype for v in jax.tree.leaves(variables)} == {jnp.dtype(param_dtype)}
        want = flax_layer.apply(variables, x)
        assert got.dtype == want.dtype, f"{type(ours).__name__}: {got.dtype} vs {want.dtype}"
        np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


def test_quantizers_see_the_promoted_operands() -> None:
    """With ``dtype=bfloat16`` the float32 input is cast, then quantized: float32 0.1666
    is below ``inputdorefa(4)``'s boundary 2.5/15 (level 2/15), its bfloat16 value
    0.16699 above it (level 3/15); quantizing first and casting after would give 2/15."""
    x = jnp.full((1, 1), 0.1666, F32)
    kernel = jnp.ones((1, 1), F32)
    kw = {"input_quantization": jq.quantization_from_name("inputdorefa")(bits=4),
          "weight_quantization": "identity"}  # fmt: skip
    assert float(q_linear(x, kernel, **kw)[0, 0]) == pytest.approx(2 / 15)
    got = q_linear(x, kernel, dtype=BF16, **kw)
    assert got.dtype == BF16 and float(got[0, 0]) == float(jnp.asarray(3 / 15, BF16))
    conv = q_conv(x.reshape(1, 1, 1), kernel.reshape(1, 1, 1), dtype=BF16, **kw)
    assert float(conv.reshape(())) == float(jnp.asarray(3 / 15, BF16))


# (size, stride): each case convolves an input of height size and width size + 1, so
# odd and even sizes meet every stride
SAME_SIZES = [(5, 1), (5, 2), (7, 3), (1, 2), (2, 3)]


@pytest.mark.parametrize(("size", "stride"), SAME_SIZES)
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_same_padding_with_stride_matches_nnx_conv(
    size: int, stride: int, kernel_size: int
) -> None:
    rng = np.random.default_rng(size * 10 + stride)
    x2 = jnp.asarray(rng.normal(size=(2, size, size + 1, 3)), F32)
    dilation = (1, 2) if kernel_size == 2 else 1
    kw = {"strides": stride, "kernel_dilation": dilation, "use_bias": False}
    ours = qn.QConv(3, 4, (kernel_size, 3), padding="SAME", pad_value=0.0, **IDENTITY,
                    precision=jax.lax.Precision.HIGHEST, **kw, rngs=nnx.Rngs(0))  # fmt: skip
    flax_conv = nnx.Conv(3, 4, (kernel_size, 3), padding="SAME", precision="highest", **kw,
                         rngs=nnx.Rngs(0))  # fmt: skip
    flax_conv.kernel[...] = ours.kernel[...]
    want = flax_conv(x2)
    got = ours(x2)
    assert got.shape == want.shape == (2, -(-size // stride), -(-(size + 1) // stride), 4)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    linen = ql.QConv(4, (kernel_size, 3), padding="same", pad_value=0.0, **IDENTITY,
                     precision=jax.lax.Precision.HIGHEST, **kw)  # fmt: skip
    np.testing.assert_array_equal(linen.apply({"params": {"kernel": ours.kernel[...]}}, x2), got)


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize(
    ("k", "d", "s"), [(1, 1, 2), (2, 1, 2), (3, 1, 2), (3, 2, 3), (4, 1, 3), (5, 1, 4)]
)
def test_same_padding_is_lax_padtype_to_pads(size: int, k: int, d: int, s: int) -> None:
    want = jax.lax.padtype_to_pads((size,), ((k - 1) * d + 1,), (s,), "SAME")
    assert same_padding((size,), (k,), (d,), (s,)) == tuple(map(tuple, want))
    assert explicit_padding("Same", (k,), (d,), (s,), "t", spatial=(size,)) == tuple(
        map(tuple, want)
    )


def test_same_padding_with_stride_pads_with_pad_value() -> None:
    """An all-zero kernel but for the corners shows the padding value in the output."""
    x = jnp.full((1, 6, 1), 0.5)  # sign: +1 everywhere inside
    kernel = jnp.full((4, 1, 1), 1.0)
    # size 6, k 4, stride 3: out 2, total pad (2 - 1) * 3 + 4 - 6 = 1 -> (0, 1)
    y = q_conv(x, kernel, strides=3, padding="same", pad_value=-1.0)
    np.testing.assert_array_equal(y[0, :, 0], [4.0, 2.0])  # 3 ones + one pad -1
    np.testing.assert_array_equal(
        q_conv(x, kernel, strides=3, padding="SAME", pad_value=0.5)[0, :, 0], [4.0, 3.5]
    )


# ----------------------------------------------------------------------------- output scale


def _scaled_layers(use_bias: bool) -> list[tuple[str, Any, Any, jax.Array]]:
    """``(name, layer with output_scale, the same layer without, input)`` for the four
    classes; NNX layers share their kernel (and bias)."""
    x_dense = jnp.asarray(np.random.default_rng(2).normal(size=(3, 5)), F32)
    x_conv = jnp.asarray(np.random.default_rng(3).normal(size=(2, 6, 5)), F32)
    out = []
    for name, make, x in (
        ("nnx-linear", lambda s: qn.QLinear(5, 4, use_bias=use_bias, output_scale=s,
                                            rngs=nnx.Rngs(0)), x_dense),
        ("nnx-conv", lambda s: qn.QConv(5, 4, (3,), padding=1, use_bias=use_bias,
                                        output_scale=s, rngs=nnx.Rngs(0)), x_conv),
    ):  # fmt: skip
        out.append((name, make(True), make(False), x))
    return out


@pytest.mark.parametrize("use_bias", [False, True])
def test_nnx_output_scale_multiplies_before_the_bias(use_bias: bool) -> None:
    for name, scaled, plain, x in _scaled_layers(use_bias):
        assert scaled.scale[...].shape == (4,) and np.all(scaled.scale[...] == 1)
        assert plain.scale is None
        np.testing.assert_array_equal(scaled(x), plain(x), err_msg=f"{name}: ones change y")
        scale = jnp.asarray([0.5, -2.0, 3.0, 0.25], F32)
        scaled.scale[...] = scale
        if use_bias:
            plain.bias[...] = scaled.bias[...] = jnp.asarray([1.0, -1.0, 0.5, 2.0], F32)
            want = (plain(x) - plain.bias[...]) * scale + plain.bias[...]
        else:
            want = plain(x) * scale
        np.testing.assert_allclose(scaled(x), want, rtol=1e-6, err_msg=name)
        # the scale is a learnable Param: its gradient is the unscaled output's sum
        grads = nnx.grad(lambda m, x=x: m(x).sum())(scaled)
        unscaled = plain(x) - (plain.bias[...] if use_bias else 0)
        np.testing.assert_allclose(
            grads["scale"][...], unscaled.reshape(-1, 4).sum(0), rtol=1e-6, err_msg=name
        )


def test_linen_output_scale_is_a_param_of_ones() -> None:
    x = jnp.ones((2, 4, 3))
    for layer in (ql.QDense(5, output_scale=True), ql.QConv(5, (3,), output_scale=True)):
        variables = layer.init(jax.random.key(0), x)
        assert variables["params"]["scale"].shape == (5,)
        assert np.all(variables["params"]["scale"] == 1)
        doubled = jax.tree.map(lambda v: v, variables)
        doubled["params"]["scale"] = jnp.full((5,), 2.0)
        np.testing.assert_array_equal(
            layer.apply(doubled, x), 2 * layer.apply(variables, x), err_msg=type(layer).__name__
        )
    assert "scale" not in ql.QDense(5).init(jax.random.key(0), x)["params"]


BAD_ARGUMENTS = [
    (lambda: q_linear(jnp.ones((1, 2)), jnp.ones((2, 3)), scale=jnp.ones(2)), ValueError,
     "scale must have shape (3,)"),
    (lambda: q_conv(jnp.ones((1, 4, 2)), jnp.ones((1, 2, 3)), scale=jnp.ones((1, 3))),
     ValueError, "scale must have shape (3,)"),
    (lambda: q_linear(jnp.ones((1, 2)), jnp.ones((2, 3)), dtype=jnp.int32), TypeError,
     "dtype must be a float dtype"),
    (lambda: q_conv(jnp.ones((1, 4, 2)), jnp.ones((1, 2, 3)), preferred_element_type="int8"),
     TypeError, "preferred_element_type must be a float dtype"),
    (lambda: qn.QLinear(2, 3, output_scale=1, rngs=nnx.Rngs(0)), TypeError,
     "output_scale must be a bool"),
    (lambda: qn.QConv(2, 3, (1,), param_dtype=jnp.int8, rngs=nnx.Rngs(0)), TypeError,
     "param_dtype must be a float dtype"),
    (lambda: ql.QDense(3, output_scale="yes"), TypeError, "output_scale must be a bool"),
    (lambda: ql.QConv(3, (2,), dtype=jnp.bool_), TypeError, "dtype must be a float dtype"),
    (lambda: qn.QConv(2, 3, (2,), strides=2, padding="full", rngs=nnx.Rngs(0)), ValueError,
     "'same' or 'valid'"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "error", "text"), BAD_ARGUMENTS)
def test_bad_dtype_and_scale_arguments_are_named(build: Any, error: type, text: str) -> None:
    with pytest.raises(error, match=re.escape(text)):
        build()
