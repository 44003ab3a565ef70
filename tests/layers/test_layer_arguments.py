"""Arguments of the quantized layers: defaults, bad values and their errors, in both frameworks.

Also checks the torch layers' semantics against independent references: a NumPy closed
form (``bitorch_common.oracles``) for ``QLinear`` and plain ``torch.nn.functional``
convolutions of the already-quantized values for ``QConvNd``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch.nn import functional as F

import bitorch.quantizations as tq
import bitorch_jax.quantizations as jq
from bitorch.layers import QConv1d, QConv2d, QConv3d, QLinear
from bitorch_common.oracles import oracle
from bitorch_jax.layers import linen as qlinen
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.layers import q_conv, q_linear

RNGS = nnx.Rngs(0)
ZEROS = nnx.initializers.zeros_init()  # lecun_normal's first jit costs seconds


def _torch_linear(**kw):
    return QLinear(4, 3, **kw)


def _torch_conv(**kw):
    return QConv2d(2, 3, 3, **kw)


def _linen_dense(**kw):
    return qlinen.QDense(3, **kw)


def _linen_conv(**kw):
    return qlinen.QConv(3, (3, 3), **kw)


def _nnx_linear(**kw):
    return qnnx.QLinear(4, 3, rngs=RNGS, kernel_init=ZEROS, **kw)


def _nnx_conv(**kw):
    return qnnx.QConv(2, 3, (3, 3), rngs=RNGS, kernel_init=ZEROS, **kw)


def _pure_linear(**kw):
    return q_linear(jnp.ones((1, 4)), jnp.ones((4, 3)), **kw)


def _pure_conv(**kw):
    return q_conv(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 3)), **kw)


BUILDERS = {
    "torch-QLinear": _torch_linear,
    "torch-QConv2d": _torch_conv,
    "linen-QDense": _linen_dense,
    "linen-QConv": _linen_conv,
    "nnx-QLinear": _nnx_linear,
    "nnx-QConv": _nnx_conv,
    "q_linear": _pure_linear,
    "q_conv": _pure_conv,
}
CONV_BUILDERS = {k: v for k, v in BUILDERS.items() if "onv" in k}

# (arguments, exception type, text the message must contain)
BAD_ARGUMENTS = [
    ({"input_quantization": "nosuchquantizer"}, ValueError, "nosuchquantizer"),
    ({"weight_quantization": "Sgn"}, ValueError, "Sgn"),
    ({"input_quantization": 3}, TypeError, "quantization"),
    ({"gradient_cancellation_threshold": -0.5}, ValueError, "gradient_cancellation_threshold"),
    ({"gradient_cancellation_threshold": math.nan}, ValueError, "gradient_cancellation_threshold"),
    ({"gradient_cancellation_threshold": math.inf}, ValueError, "gradient_cancellation_threshold"),
    ({"gradient_cancellation_threshold": True}, TypeError, "gradient_cancellation_threshold"),
    ({"gradient_cancellation_threshold": "1"}, TypeError, "gradient_cancellation_threshold"),
]
BAD_CONV_ARGUMENTS = [
    ({"pad_value": math.nan}, ValueError, "pad_value"),
    ({"pad_value": "-1"}, TypeError, "pad_value"),
    ({"padding": "same", "strides": 2}, ValueError, "same"),
    ({"padding": "full"}, ValueError, "padding"),
]


@pytest.mark.parametrize("builder", BUILDERS, ids=list(BUILDERS))
@pytest.mark.parametrize(
    ("kwargs", "error", "text"), BAD_ARGUMENTS, ids=[str(a[0]) for a in BAD_ARGUMENTS]
)
def test_bad_arguments_raise_the_same_error(builder, kwargs, error, text) -> None:
    with pytest.raises(error, match=text):
        BUILDERS[builder](**kwargs)


@pytest.mark.parametrize("builder", CONV_BUILDERS, ids=list(CONV_BUILDERS))
@pytest.mark.parametrize(
    ("kwargs", "error", "text"), BAD_CONV_ARGUMENTS, ids=[str(a[0]) for a in BAD_CONV_ARGUMENTS]
)
def test_bad_conv_arguments(builder, kwargs, error, text) -> None:
    if "strides" in kwargs:
        if not builder.startswith("torch"):
            # the Flax classes accept "same" with a stride (lax's SAME, issue 13; tested
            # against nnx.Conv in tests/jax/test_layer_dtypes.py): only torch refuses it
            assert CONV_BUILDERS[builder](**kwargs) is not None
            return
        kwargs = {"padding": "same", "stride": 2}  # torch spells it stride
    with pytest.raises(error, match=text):
        CONV_BUILDERS[builder](**kwargs)


@pytest.mark.parametrize("padding", [-1, (1, 2, 3), (1, -1)])
def test_bad_padding_is_refused_not_cropped(padding) -> None:
    """nn.Conv2d accepts these; F.pad would crop (negative) or pad the channels (3 values)."""
    with pytest.raises(ValueError, match="padding"):
        QConv2d(2, 2, 3, padding=padding)
    with pytest.raises((ValueError, TypeError), match="padding"):
        q_conv(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 3)), padding=padding)


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(ValueError, match="sign") as torch_error:
        QLinear(2, 2, input_quantization="nope")
    with pytest.raises(ValueError, match="sign") as jax_error:
        qnnx.QLinear(2, 2, input_quantization="nope", rngs=RNGS)
    assert type(torch_error.value) is type(jax_error.value)


def test_defaults_follow_bitorch() -> None:
    """sign/sign, threshold 1.0, pad_value -1.0, padding 0; conv bias off, linear bias on."""
    for layer in (QLinear(3, 2), QConv1d(2, 2, 3), QConv2d(2, 2, 3), QConv3d(2, 2, 3)):
        assert isinstance(layer.input_quantization, tq.Sign)
        assert isinstance(layer.weight_quantization, tq.Sign)
        assert layer.gradient_cancellation_threshold == 1.0
    assert QLinear(3, 2).bias is not None
    conv = QConv2d(2, 2, 3)
    assert conv.bias is None and conv.pad_value == -1.0 and conv.padding == (0, 0)
    assert list(QConv2d(2, 2, 3, bias=True).state_dict()) == ["weight", "bias"]
    assert list(QLinear(3, 2).state_dict()) == ["weight", "bias"]
    dense = qlinen.QDense(2)
    assert (dense.use_bias, dense.gradient_cancellation_threshold) == (True, 1.0)
    lconv = qlinen.QConv(2, (3,))
    assert (lconv.use_bias, lconv.pad_value, lconv.padding) == (False, -1.0, 0)
    nconv = qnnx.QConv(2, 2, (3,), kernel_init=ZEROS, rngs=RNGS)
    assert nconv.bias is None and nconv.padding == ((0, 0),)
    assert isinstance(nconv.input_quantization, jq.Sign)
    assert isinstance(nconv.weight_quantization, jq.Sign)
    assert nconv.gradient_cancellation_threshold == 1.0


def test_explicit_zero_threshold_is_kept_and_turns_cancellation_off() -> None:
    """0 must not fall back to the default 1.0: the gradient passes at |x| > 1."""
    x_np = np.array([[-3.0, -1.5, 0.5, 2.0]], np.float32)
    g_np = np.array([[0.7, -1.3, 2.1]], np.float32)
    w_np = np.array([[0.3, -0.2, 0.5, -0.1], [-0.4, 0.6, 0.2, 0.3], [0.1, 0.1, -0.7, 0.2]])
    w_np = w_np.astype(np.float32)
    expected = {0.0: g_np @ np.sign(w_np), 1.0: (g_np @ np.sign(w_np)) * (np.abs(x_np) <= 1)}
    for threshold, want in expected.items():
        layer = QLinear(4, 3, bias=False, gradient_cancellation_threshold=threshold)
        assert layer.gradient_cancellation_threshold == threshold
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w_np))
        x = torch.tensor(x_np, requires_grad=True)
        layer(x).backward(torch.from_numpy(g_np))
        np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)
        module = qnnx.QLinear(
            4,
            3,
            use_bias=False,
            gradient_cancellation_threshold=threshold,
            kernel_init=ZEROS,
            rngs=RNGS,
        )
        assert module.gradient_cancellation_threshold == threshold
        module.kernel[...] = jnp.asarray(w_np.T)
        _, vjp = jax.vjp(module, jnp.asarray(x_np))
        np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g_np))[0]), want, rtol=1e-6)
    assert qlinen.QDense(2, gradient_cancellation_threshold=0).gradient_cancellation_threshold == 0


def test_quantizer_instances_are_accepted() -> None:
    layer = QLinear(3, 2, weight_quantization=tq.WeightDoReFa(bits=2))
    assert layer.weight_quantization.bit_width == 2
    module = qnnx.QLinear(
        3, 2, weight_quantization=jq.WeightDoReFa(bits=2), kernel_init=ZEROS, rngs=RNGS
    )
    assert module.weight_quantization.bit_width == 2


def test_hyperparameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        QConv2d(2, 2, 3, 1, 0, 1, 1, False, -1.0)  # pad_value positionally
    with pytest.raises(TypeError):
        QLinear(3, 2, True, None, None, "sign")
    with pytest.raises(TypeError):
        qnnx.QLinear(3, 2, True, rngs=RNGS)
    with pytest.raises(TypeError, match="padding_mode"):
        QConv2d(2, 2, 3, padding_mode="reflect")


def test_kernel_size_must_be_a_tuple_in_flax() -> None:
    with pytest.raises(TypeError, match="kernel_size"):
        qlinen.QConv(2, 3)
    with pytest.raises(TypeError, match="kernel_size"):
        qnnx.QConv(2, 2, 3, rngs=RNGS)


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="in_features=4"):
        q_linear(jnp.ones((2, 5)), jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="channels"):
        q_conv(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="divisible"):
        q_conv(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 2, 3)), feature_group_count=2)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        q_conv(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="bias"):
        q_linear(jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.ones(4))
    with pytest.raises(TypeError, match="floating"):
        q_linear(jnp.ones((2, 4), jnp.int32), jnp.ones((4, 3)))


def test_qlinear_matches_numpy_oracle() -> None:
    """Closed form: ``y = q(x) @ q(W).T + b``; ``dx = mask * q'(x) * (g @ q(W))``,
    ``dW = q'(W) * (g.T @ q(x))``, ``db = sum(g)``; with approxsign in, weightdorefa(2)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 6)).astype(np.float64)
    x[0, :4] = [0.0, -0.0, 1.0, -1.0]
    w = rng.uniform(-1, 1, size=(4, 6))
    b = rng.normal(size=4)
    g = rng.normal(scale=1.5, size=(5, 4))
    q_in, q_w = oracle("approxsign"), oracle("weightdorefa", bits=2)
    threshold = 0.8
    xq, wq = q_in.forward(x), q_w.forward(w)
    y = xq @ wq.T + b
    dx = q_in.grad(x, g @ wq) * (np.abs(x) <= threshold)
    dw = q_w.grad(w, g.T @ xq)
    layer = QLinear(
        6,
        4,
        dtype=torch.float64,
        input_quantization="approxsign",
        weight_quantization=tq.WeightDoReFa(bits=2),
        gradient_cancellation_threshold=threshold,
    )
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt)
    out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.detach().numpy(), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pad_value", [-1.0, 0.0, 0.5])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_qconv_is_a_plain_conv_of_padded_quantized_values(n: int, pad_value: float) -> None:
    """Forward reference: ``F.convNd(F.pad(sign(x), value=pad_value), sign(w))`` (+ bias);
    ``padding="same"`` with an even kernel puts the extra element after, as torch does."""
    torch.manual_seed(n)
    cls = {1: QConv1d, 2: QConv2d, 3: QConv3d}[n]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    layer = cls(4, 6, 2, padding="same", dilation=1, groups=2, bias=True, pad_value=pad_value)
    x = torch.randn(2, 4, *([5] * n))
    pads = (0, 1) * n  # total 1 per dimension: 0 before, 1 after
    want = conv(
        F.pad(torch.where(x >= 0, 1.0, -1.0), pads, value=pad_value),
        torch.where(layer.weight >= 0, 1.0, -1.0),
        layer.bias,
        groups=2,
    )
    torch.testing.assert_close(layer(x), want, rtol=0, atol=1e-6)
    # torch's own 'same' convolution places the padding identically
    plain = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[n](
        4, 6, 2, padding="same", groups=2, bias=False
    )
    with torch.no_grad():
        plain.weight.copy_(torch.where(layer.weight >= 0, 1.0, -1.0))
    if pad_value == 0.0:
        torch.testing.assert_close(
            layer(x) - layer.bias.view(-1, *[1] * n),
            plain(torch.where(x >= 0, 1.0, -1.0)),
            rtol=0,
            atol=1e-6,
        )
