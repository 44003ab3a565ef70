"""bitorch.layers as a drop-in for bitorch 0.4.1: its call patterns, names and defaults.

Module paths and names, positional arguments, ``None`` as "the layer config's value",
config changes affecting the layers built afterwards (not the ones that exist), 0.4.1's
attribute names and child modules, initialisation (statistically and draw for draw
against the same ``torch.nn.init`` call), ``state_dict`` keys, and the behaviour of the
layers 0.4.1 has besides the quantized linear/conv ones (``PadModule``, ``Pact``, the
embeddings, the debug layers). The expected values are written out here; nothing of
bitorch 0.4.1 is imported (``scripts/lenet041_diff.py`` compares with the real package).

At the end, a LeNet built as bitorch 0.4.1's ``bitorch.models.lenet.LeNet`` (version 0)
builds it, from this package's layers imported by 0.4.1's paths, has 0.4.1's module tree
and ``state_dict`` and trains a few steps in float64.
"""

from __future__ import annotations

import argparse
import importlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import bitorch.quantizations as bq
from bitorch.config import config_from_name

LAYER_NAMES_041 = [  # bitorch 0.4.1's bitorch.layers.__all__, less its runtime-mode machinery
    "InputGraphicalDebug",
    "InputPrintDebug",
    "WeightGraphicalDebug",
    "WeightPrintDebug",
    "ShapePrintDebug",
    "QActivation",
    "QConv1d",
    "QConv2d",
    "QConv3d",
    "QConv1dBase",
    "QConv2dBase",
    "QConv3dBase",
    "QConv1d_NoAct",
    "QConv2d_NoAct",
    "QConv3d_NoAct",
    "QLinear",
    "QLinearBase",
    "QEmbedding",
    "QEmbeddingBag",
    "Pact",
    "PadModule",
]
LEFT_OUT_041 = ["CustomImplementationMixin", "convert"]  # runtime modes / inference engine

MODULE_PATHS_041 = {
    "bitorch.layers.config": ["LayerConfig", "config"],
    "bitorch.layers.qactivation": ["QActivation", "GradientCancellation"],
    "bitorch.layers.qlinear": ["QLinear", "QLinearBase"],
    "bitorch.layers.qconv1d": ["QConv1d", "QConv1dBase", "QConv1d_NoAct"],
    "bitorch.layers.qconv2d": ["QConv2d", "QConv2dBase", "QConv2d_NoAct"],
    "bitorch.layers.qconv3d": ["QConv3d", "QConv3dBase", "QConv3d_NoAct"],
    "bitorch.layers.qembedding": ["QEmbedding", "QEmbeddingBag"],
    "bitorch.layers.bembedding": ["BEmbedding", "BEmbeddingBag"],
    "bitorch.layers.pact": ["Pact", "PactActFn"],
    "bitorch.layers.pad": ["PadModule"],
    "bitorch.layers.debug_layers": [
        "InputGraphicalDebug",
        "InputPrintDebug",
        "WeightGraphicalDebug",
        "WeightPrintDebug",
        "ShapePrintDebug",
    ],
}

OPTIONS = {
    "input_quantization": "sign",
    "weight_quantization": "sign",
    "debug_activated": False,
    "padding_value": -1.0,
    "gradient_cancellation_threshold": 1.0,
    "pact_bits": 4,
}


@pytest.fixture
def layer_config() -> Iterator[Any]:
    """bitorch.layers.config.config; every option is put back after the test."""
    from bitorch.layers.config import config

    saved = {name: getattr(config, name) for name in OPTIONS}
    try:
        yield config
    finally:
        for name, value in saved.items():
            setattr(config, name, value)


def layers() -> Any:
    return importlib.import_module("bitorch.layers")


# ------------------------------------------------------------------ names and module paths


def test_every_public_name_of_041_is_there():
    L = layers()
    missing = [name for name in LAYER_NAMES_041 if not hasattr(L, name)]
    assert not missing
    assert set(LAYER_NAMES_041) <= set(L.__all__)
    assert not any(hasattr(L, name) for name in LEFT_OUT_041)


@pytest.mark.parametrize("path", MODULE_PATHS_041)
def test_041_module_paths(path):
    module = importlib.import_module(path)
    for name in MODULE_PATHS_041[path]:
        assert hasattr(module, name), f"{path}.{name}"
    # the same classes as bitorch.layers exports (bitorch.layers.config is the module)
    for name in MODULE_PATHS_041[path]:
        if isinstance(getattr(module, name), type) and hasattr(layers(), name):
            assert getattr(module, name) is getattr(layers(), name)


def test_qconv_stays_the_implementation_module():
    from bitorch.layers import qconv, qconv2d

    assert qconv2d.QConv2d is qconv.QConv2d and qconv.QConv2d_NoAct is qconv2d.QConv2d_NoAct


def test_class_hierarchy_as_in_041():
    L = layers()
    for n in (1, 2, 3):
        plain, base, noact = (getattr(L, f"QConv{n}d{s}") for s in ("", "Base", "_NoAct"))
        conv = getattr(nn, f"Conv{n}d")
        assert issubclass(plain, base) and issubclass(base, noact) and issubclass(noact, conv)
    assert issubclass(L.QLinear, L.QLinearBase) and issubclass(L.QLinearBase, nn.Linear)
    assert issubclass(L.QEmbedding, nn.Embedding)
    assert issubclass(L.QEmbeddingBag, nn.EmbeddingBag)
    assert issubclass(L.BEmbeddingBag, L.BEmbedding)


# ------------------------------------------------------------------ positional arguments


def test_positional_arguments_as_in_041():
    L = layers()
    lin = L.QLinear(3, 2, False)
    assert lin.bias is None and tuple(lin.weight.shape) == (2, 3)
    conv = L.QConv2d(2, 4, 3, 2, 1, 1, 2)  # stride, padding, dilation, groups
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((2, 2), (1, 1), (1, 1), 2)
    assert conv(torch.randn(1, 2, 6, 6)).shape == (1, 4, 3, 3)
    act = L.QActivation("approxsign", 0.5)
    assert isinstance(act.activation_function, bq.ApproxSign)
    assert act.gradient_cancellation_threshold == 0.5
    assert L.Pact(3).bits == 3
    assert L.PadModule(1, 2, 3, 4, -1.0).padding_tensor == (1, 2, 3, 4)
    emb = L.BEmbedding(10, 3, 0, "sign", "cpu", True)
    assert (emb.padding_idx, emb.sign_bool) == (0, True)
    with pytest.warns(UserWarning, match="experimental"):
        bag = L.BEmbeddingBag(10, 3, None, None, None, False, "sum")
    assert bag.mode == "sum" and bag.embedding_dim == 3


def test_embeddings_take_0_4_1_keyword_embedding_dim():
    L = layers()
    # 0.4.1's signature is (*args, embedding_dim, ...): embedding_dim by keyword
    assert tuple(L.QEmbedding(10, embedding_dim=3).weight.shape) == (10, 3)
    bag = L.QEmbeddingBag(10, embedding_dim=3, mode="sum")
    assert tuple(bag.weight.shape) == (10, 3) and bag.mode == "sum"
    # positional, as nn.Embedding takes it, works too
    assert tuple(L.QEmbedding(10, 3).weight.shape) == (10, 3)


def test_what_041_refuses_positionally_is_refused():
    L = layers()
    with pytest.raises(TypeError):
        L.QLinear(3, 2, True, None, None, "sign")  # quantizations are keyword-only
    with pytest.raises(TypeError):
        L.QConv2d(2, 2, 3, 1, 0, 1, 1, False, -1.0)  # pad_value is keyword-only


# ------------------------------------------------------------------ None = the config value


def test_layer_config_defaults_and_registration(layer_config):
    from bitorch.layers.config import LayerConfig

    assert isinstance(layer_config, LayerConfig) and layer_config.name == "layer_config"
    assert {name: getattr(layer_config, name) for name in OPTIONS} == OPTIONS
    assert config_from_name("layer_config") is layer_config
    assert sorted(layer_config._configurable_attributes) == sorted(OPTIONS)
    assert layer_config.get_pact_bits() == 4
    q = layer_config.get_quantization_function("approxsign")
    assert isinstance(q, bq.ApproxSign)
    mine = bq.Sign()
    assert layer_config.get_quantization_function(mine) is mine
    with pytest.raises(ValueError, match="sign"):
        layer_config.get_quantization_function("nope")
    with pytest.raises(TypeError):
        layer_config.get_quantization_function(3)


def test_layer_config_argparse_options(layer_config):
    parser = argparse.ArgumentParser()
    layer_config.add_config_arguments(parser)
    args = parser.parse_args(
        ["--gradient-cancellation-threshold", "0.5", "--pact-bits", "2", "--debug-activated",
         "--input-quantization", "approxsign", "--padding-value", "0.0"]
    )  # fmt: skip
    layer_config.apply_args_to_configuration(args)
    assert layer_config.gradient_cancellation_threshold == 0.5
    assert layer_config.pact_bits == 2 and layer_config.debug_activated is True
    assert layer_config.input_quantization == "approxsign" and layer_config.padding_value == 0.0


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("gradient_cancellation_threshold", -1.0, ValueError),
        ("gradient_cancellation_threshold", "1", TypeError),
        ("padding_value", math.nan, ValueError),
        ("pact_bits", 0, ValueError),
        ("input_quantization", "nope", ValueError),
        ("weight_quantization", 3, TypeError),
        ("debug_activated", 1, TypeError),
    ],
)
def test_layer_config_checks_values_when_set(layer_config, option, value, error):
    before = getattr(layer_config, option)
    with pytest.raises(error, match=option):
        setattr(layer_config, option, value)
    assert getattr(layer_config, option) == before


def test_none_means_the_config_value():
    L = layers()
    act = L.QActivation(None, None)
    assert isinstance(act.activation_function, bq.Sign)
    assert act.gradient_cancellation_threshold == 1.0
    assert L.QActivation().gradient_cancellation_threshold == 1.0  # 0.4.1's effective default
    lin = L.QLinear(3, 2, input_quantization=None, weight_quantization=None,
                    gradient_cancellation_threshold=None)  # fmt: skip
    assert isinstance(lin.input_quantization, bq.Sign) and isinstance(
        lin.weight_quantization, bq.Sign
    )
    assert lin.gradient_cancellation_threshold == 1.0
    for cls in (L.QConv2d, L.QConv2d_NoAct):
        conv = cls(2, 2, 3, pad_value=None, weight_quantization=None)
        assert conv._pad_value == conv.pad_value == -1.0
        assert isinstance(conv._weight_quantize, bq.Sign)
    assert L.Pact(None).bits == 4
    emb = L.QEmbedding(4, embedding_dim=2, weight_quantization=None, output_quantization=None)
    assert isinstance(emb.embedding_weight_quantization, bq.Sign)
    assert isinstance(emb.embedding_output_quantization, bq.Sign)
    assert isinstance(L.BEmbedding(4, 2, weight_quantization=None).weight_quantization, bq.Sign)


def test_config_changes_affect_layers_built_afterwards_only(layer_config):
    L = layers()
    before = (L.QActivation(), L.QLinear(3, 2), L.QConv2d(2, 2, 3), L.Pact(), L.QEmbedding(4, 2))
    layer_config.input_quantization = "approxsign"
    layer_config.weight_quantization = bq.SteHeaviside()
    layer_config.gradient_cancellation_threshold = 0.5
    layer_config.padding_value = 0.5
    layer_config.pact_bits = 2
    act, lin, conv, pact, emb = (
        L.QActivation(),
        L.QLinear(3, 2),
        L.QConv2d(2, 2, 3),
        L.Pact(),
        L.QEmbedding(4, 2),
    )
    assert (
        isinstance(act.activation_function, bq.ApproxSign)
        and act.gradient_cancellation_threshold == 0.5
    )
    assert isinstance(lin.input_quantization, bq.ApproxSign)
    assert lin.weight_quantization is layer_config.weight_quantization
    assert lin.gradient_cancellation_threshold == 0.5
    assert conv.pad_value == 0.5 and isinstance(conv.input_quantization, bq.ApproxSign)
    assert isinstance(conv.weight_quantization, bq.SteHeaviside) and pact.bits == 2
    assert isinstance(emb.embedding_output_quantization, bq.ApproxSign)
    old_act, old_lin, old_conv, old_pact, old_emb = before
    assert isinstance(old_act.activation_function, bq.Sign)
    assert old_act.gradient_cancellation_threshold == old_lin.gradient_cancellation_threshold == 1.0
    assert old_conv.pad_value == -1.0 and old_pact.bits == 4
    assert isinstance(old_emb.embedding_weight_quantization, bq.Sign)
    # the new values act: cancellation at 0.5, padding with 0.5
    x = torch.tensor([0.3, 0.7], requires_grad=True)
    L.QActivation("sign")(x).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


def test_explicit_zero_is_kept_not_replaced_by_the_config():
    """SPEC deviation: 0.4.1 turns every falsy value into the config value."""
    L = layers()
    act = L.QActivation("sign", 0.0)
    assert act.gradient_cancellation_threshold == 0.0
    x = torch.tensor([-3.0, 0.5, 2.0], requires_grad=True)
    act(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]  # cancellation off
    conv = L.QConv1d(1, 1, 1, padding=1, pad_value=0)
    assert conv.pad_value == 0.0
    with torch.no_grad():
        conv.weight.fill_(1.0)
    assert conv(torch.ones(1, 1, 1)).flatten().tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="bits"):
        L.Pact(0)


# ------------------------------------------------------------------ attribute names


def test_qlinear_attributes_and_children_as_in_041():
    L = layers()
    lin = L.QLinear(3, 2)
    assert [n for n, _ in lin.named_modules()] == [
        "", "weight_quantization", "activation", "activation.activation_function"
    ]  # fmt: skip
    assert isinstance(lin.activation, L.QActivation)
    assert lin.input_quantization is lin.activation.activation_function
    assert lin.gradient_cancellation_threshold == lin.activation.gradient_cancellation_threshold
    lin.input_quantization = "approxsign"  # settable here (0.4.1: read-only properties)
    assert isinstance(lin.activation.activation_function, bq.ApproxSign)
    lin.input_quantization = bq.Sign()
    assert isinstance(lin.activation.activation_function, bq.Sign)
    assert "input_quantization" not in dict(lin.named_children())
    lin.gradient_cancellation_threshold = 0.25
    assert lin.activation.gradient_cancellation_threshold == 0.25


@pytest.mark.parametrize("n", [1, 2, 3])
def test_qconv_attributes_and_children_as_in_041(n):
    L = layers()
    conv = getattr(L, f"QConv{n}d")(2, 2, 3)
    assert [name for name, _ in conv.named_modules()] == [
        "", "_weight_quantize", "activation", "activation.activation_function"
    ]  # fmt: skip
    assert conv._pad_value == -1.0 and conv.weight_quantization is conv._weight_quantize
    assert conv.input_quantization is conv.activation.activation_function
    noact = getattr(L, f"QConv{n}d_NoAct")(2, 2, 3)
    assert [name for name, _ in noact.named_modules()] == ["", "_weight_quantize"]
    assert not hasattr(noact, "activation")
    conv.weight_quantization = bq.ApproxSign()
    assert isinstance(conv._weight_quantize, bq.ApproxSign)
    assert "weight_quantization" not in dict(conv.named_children())
    conv.pad_value = 0.5
    assert conv._pad_value == 0.5
    with pytest.raises(ValueError, match="pad_value"):
        conv.pad_value = math.inf


def test_other_attribute_names_as_in_041():
    L = layers()
    emb = L.QEmbedding(5, embedding_dim=2)
    assert {n for n, _ in emb.named_children()} == {
        "embedding_weight_quantization", "embedding_output_quantization"
    }  # fmt: skip
    bag = L.QEmbeddingBag(5, embedding_dim=2)
    assert {n for n, _ in bag.named_children()} == {
        "embedding_weight_quantization", "embedding_input_quantization"
    }  # fmt: skip
    assert bag.embedding_output_quantization is bag.embedding_input_quantization
    pact = L.Pact()
    assert (
        isinstance(pact.alpha, nn.Parameter)
        and pact.alpha.shape == ()
        and pact.alpha.item() == 10.0
    )
    pad = L.PadModule(padding_value=2)
    assert pad.padding_tensor == (0, 0, 0, 0) and pad.padding_value == 2
    b = L.BEmbedding(6, 3)
    for name in ("weight_quantization", "weight", "padding_idx", "sign_bool", "optimizer",
                 "optimizer_dict", "unique", "unique_vectors", "out_param"):  # fmt: skip
        assert hasattr(b, name), name
    assert b.weight.dtype == torch.bool and not b.weight.requires_grad
    debug = L.InputPrintDebug(5, 3, "x")
    assert (debug._debug_interval, debug._num_outputs, debug.name, debug._forward_counter) == (
        5, 3, "x", 0
    )  # fmt: skip


# ------------------------------------------------------------------ initialisation


def test_conv_weights_are_xavier_normal():
    """0.4.1 initialises quantized convolutions with ``xavier_normal_``:
    std = sqrt(2 / (fan_in + fan_out)) = sqrt(2 / (2 * 64 * 25)) = 0.025 here."""
    L = layers()
    torch.manual_seed(0)
    w = L.QConv2d(64, 64, 5).weight.detach().double()
    std = math.sqrt(2.0 / (64 * 25 + 64 * 25))
    n = w.numel()  # 102400: the sample std is within ~0.5 % of sigma (3 standard errors)
    assert abs(w.std().item() / std - 1) < 3 / math.sqrt(2 * n) + 1e-3
    assert abs(w.mean().item()) < 3 * std / math.sqrt(n)
    kurtosis = (((w - w.mean()) / w.std()) ** 4).mean().item()
    assert abs(kurtosis - 3) < 0.1  # normal, not uniform (1.8)
    # draw for draw what 0.4.1 does: ConvNd builds an empty weight, then xavier_normal_
    for cls, shape in ((L.QConv1d_NoAct, (8, 4, 3)), (L.QConv3d, (8, 4, 3, 3, 3))):
        torch.manual_seed(7)
        got = cls(4, 8, 3).weight.detach()
        torch.manual_seed(7)
        want = nn.init.xavier_normal_(torch.empty(shape))
        assert torch.equal(got, want)


def test_other_initialisations_are_torch_s():
    L = layers()
    pairs = [
        (lambda: L.QLinear(7, 5), lambda: nn.Linear(7, 5)),
        (lambda: L.QEmbedding(9, embedding_dim=4, padding_idx=1), lambda: nn.Embedding(9, 4, 1)),
        (lambda: L.QEmbeddingBag(9, embedding_dim=4), lambda: nn.EmbeddingBag(9, 4)),
    ]
    for ours, plain in pairs:
        torch.manual_seed(3)
        a = ours().state_dict()
        torch.manual_seed(3)
        b = plain().state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(3)
    bits = L.BEmbedding(9, 4).weight
    torch.manual_seed(3)
    assert torch.equal(bits, torch.rand(9, 4) > 0.5)
    # the conv bias (an extension) is initialised as nn.Conv2d's
    torch.manual_seed(5)
    conv = L.QConv2d(3, 4, 3, bias=True)
    bound = 1 / math.sqrt(3 * 9)
    assert conv.bias.abs().max().item() <= bound and conv.bias.std().item() > 0


# ------------------------------------------------------------------ state_dict


def test_state_dict_keys_as_in_041():
    L = layers()
    assert list(L.QConv2d(2, 2, 3).state_dict()) == ["weight"]
    assert list(L.QConv2d_NoAct(2, 2, 3).state_dict()) == ["weight"]
    assert list(L.QConv2d(2, 2, 3, bias=True).state_dict()) == ["weight", "bias"]  # extension
    assert list(L.QLinear(3, 2).state_dict()) == ["weight", "bias"]
    assert list(L.QEmbedding(4, embedding_dim=2).state_dict()) == ["weight"]
    assert list(L.QEmbeddingBag(4, embedding_dim=2).state_dict()) == ["weight"]
    assert list(L.Pact().state_dict()) == ["alpha"]
    assert L.BEmbedding(4, 2).state_dict()["weight"].dtype == torch.bool
    assert list(L.PadModule().state_dict()) == list(L.QActivation().state_dict()) == []


def test_padding_mode_zeros_only():
    L = layers()
    assert L.QConv2d(2, 2, 3, padding_mode="zeros").padding_mode == "zeros"
    with pytest.raises(TypeError, match="padding_mode"):
        L.QConv2d(2, 2, 3, padding_mode="reflect")


# ------------------------------------------------------------------ the other layers' behaviour


def test_pact_values_and_gradients():
    """n = 2**2 - 1 = 3, alpha = 10: s = (1 / 10) * 3 (0.30000000000000004 in float64),
    levels k / s; the gradient passes to x on [0, alpha], to alpha where x >= alpha
    (x == alpha: both)."""
    L = layers()
    pact = L.Pact(2).double()
    x = torch.tensor(
        [-1.0, 0.0, 1.6, 1.7, 9.0, 10.0, 12.0], dtype=torch.float64, requires_grad=True
    )
    y = pact(x)
    s = (1 / 10.0) * 3
    want = [0.0, 0.0, 0.0, 1 / s, 3 / s, 3 / s, 3 / s]
    assert y.tolist() == want
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], dtype=torch.float64)
    y.backward(g)
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]
    assert pact.alpha.grad.item() == 6.0 + 7.0 and pact.alpha.grad.shape == ()
    # PactActFn is 0.4.1's function: apply(x, alpha, bits)
    from bitorch.layers.pact import PactActFn

    assert torch.equal(PactActFn.apply(x.detach(), pact.alpha, 2), y.detach())


def test_pad_module_is_constant_f_pad():
    L = layers()
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    pad = L.PadModule(1, 0, 2, -1, padding_value=-0.5)
    y = pad(x)
    assert torch.equal(y, F.pad(x, (1, 0, 2, -1), "constant", -0.5))
    assert y.shape == (2, 3, 5, 6)
    y.sum().backward()
    assert x.grad[:, :, -1].abs().sum() == 0 and x.grad[:, :, :-1].min() == 1


def test_qembedding_quantizes_table_and_output():
    L = layers()
    torch.manual_seed(0)
    emb = L.QEmbedding(6, embedding_dim=3, padding_idx=2, output_quantization="identity")
    idx = torch.tensor([[0, 2, 5], [2, 1, 0]])
    y = emb(idx)
    assert torch.equal(y, torch.where(emb.weight >= 0, 1.0, -1.0)[idx])
    y.sum().backward()
    assert emb.weight.grad[2].abs().sum() == 0  # the padding row gets no gradient
    assert emb.weight.grad[0].tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_qembeddingbag_is_embedding_bag_of_the_quantized_table(mode):
    L = layers()
    torch.manual_seed(1)
    bag = L.QEmbeddingBag(6, embedding_dim=3, mode=mode, padding_idx=4,
                          output_quantization="identity")  # fmt: skip
    idx, offsets = torch.tensor([1, 4, 4, 0, 5, 3]), torch.tensor([0, 2, 2])
    q = torch.where(bag.weight >= 0, 1.0, -1.0)
    want = F.embedding_bag(idx, q, offsets, mode=mode, padding_idx=4)
    assert torch.equal(bag(idx, offsets), want)
    default = L.QEmbeddingBag(6, embedding_dim=3)
    assert default.mode == "mean" and default(idx, offsets).abs().max() == 1  # sign output


def test_bembedding_lookup_decoding_and_padding():
    L = layers()
    emb = L.BEmbedding(4, 2, padding_idx=1, sign_bool=True)
    emb.set_weight(torch.tensor([[True, False], [True, True], [False, False], [True, True]]))
    y = emb(torch.tensor([[0, 1], [2, 2]]))
    assert y.dtype == torch.float32 and y.shape == (2, 2, 2)
    # padding row stays zero with sign_bool (SPEC deviation: 0.4.1 makes it -1)
    assert y.tolist() == [[[1.0, -1.0], [0.0, 0.0]], [[-1.0, -1.0], [-1.0, -1.0]]]
    assert emb.unique.tolist() == [0, 1, 2] and emb.unique_vectors.requires_grad
    plain = L.BEmbedding(4, 2)  # sign_bool False: False is 0
    plain.set_weight(torch.tensor([[True, False]] * 4))
    assert plain(torch.tensor([3])).tolist() == [[1.0, 0.0]]
    plain.set_weight(torch.tensor([[0.5, -0.5]] * 4))  # floats through weight_quantization
    assert plain.weight.tolist() == [[True, False]] * 4
    assert L.BEmbedding(4, 2, dtype=torch.float64)(torch.tensor([0])).dtype == torch.float64


def test_bembedding_trains_with_its_optimizer_protocol():
    """set_optimizer: each forward hands its rows to the optimizer (momentum carried over);
    step() writes sign(rows) back as bits; the padding row is never written."""
    L = layers()
    torch.manual_seed(0)
    emb = L.BEmbedding(5, 2, padding_idx=0, sign_bool=True)
    emb.set_weight(torch.ones(5, 2, dtype=torch.bool))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.5)
    emb.set_optimizer(opt)
    for _ in range(2):
        out = emb(torch.tensor([0, 3, 3]))
        assert opt.param_groups[-1]["params"][0] is emb.unique_vectors
        out[1:].sum().backward()  # gradient +2 on row 3: SGD moves it to 1 - 2 = -1
        opt.step()
        emb.step()
        assert emb.unique is None and emb.unique_vectors is None
        assert len(opt.param_groups) == 2
    assert emb.weight[3].tolist() == [False, False]
    assert emb.weight[0].tolist() == [True, True]  # padding: not written
    assert emb.weight[[1, 2, 4]].all()
    with pytest.raises(RuntimeError, match="forward"):
        emb.step()


def test_bembeddingbag_modes_count_padding_rows():
    L = layers()
    with pytest.warns(UserWarning, match="experimental"):
        bag = L.BEmbeddingBag(4, 2, padding_idx=3, mode="mean")
    bag.set_weight(torch.tensor([[True, True], [False, True], [True, False], [True, True]]))
    y = bag(torch.tensor([0, 3, 1, 2, 2]), torch.tensor([0, 2]))
    # bag 0: rows 0 and the zeroed padding row, mean over 2; bag 1: rows 1, 2, 2
    assert y.tolist() == [[0.5, 0.5], [pytest.approx(2 / 3), pytest.approx(1 / 3)]]
    with pytest.raises(ValueError, match="mode"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.BEmbeddingBag(4, 2, mode="median")


class _Image:
    def __init__(self) -> None:
        self.data: Any = None

    def set_data(self, data: Any) -> None:
        self.data = data


class _Figure:
    def __init__(self) -> None:
        self.draws = 0
        self.canvas = self

    def draw(self) -> None:
        self.draws += 1


def test_debug_layers(layer_config, capsys):
    L = layers()
    shape, inp = L.ShapePrintDebug(debug_interval=2, name="s"), L.InputPrintDebug(1, 2, "in")
    x = torch.arange(6.0).reshape(3, 2)
    for _ in range(3):
        assert shape(x) is x and inp(x) is x
    assert capsys.readouterr().out == ""  # debugging off
    layer_config.debug_activated = True
    for _ in range(3):
        shape(x), inp(x)
    out = capsys.readouterr().out.splitlines()
    assert out.count("s : tensor([3, 2])") == 1  # calls 3, 4, 5 of an interval of 2: call 4
    assert sum(line.startswith("in : tensor([[0., 1.],") for line in out) == 3
    lin = L.QLinear(2, 2)
    weight = L.WeightPrintDebug(lin, 1, 10, "w")
    assert torch.equal(weight(x), lin(x))
    assert "w :" in capsys.readouterr().out
    images, figure = [_Image() for _ in range(4)], _Figure()
    conv = L.QConv2d(2, 2, 3)
    drawn = L.WeightGraphicalDebug(conv, figure, images, 1, 4)
    drawn(torch.randn(1, 2, 5, 5))
    assert figure.draws == 1 and all(i.data.shape == (3, 3) for i in images)
    assert all(i.data.min() == 0 and i.data.max() == 1 for i in images)
    with pytest.raises(ValueError, match="must match"):
        L.InputGraphicalDebug(figure, images[:3], 1, 4)
    with pytest.raises(ValueError, match="no subplot"):
        L.InputGraphicalDebug(None, None, 1, 4)(torch.randn(2, 2))


# ------------------------------------------------------------------ LeNet (0.4.1's model file)


def build_lenet041(input_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The architecture of bitorch 0.4.1's ``LeNet`` (``lenet_version=0``: sign inputs and
    weights), written with this package's layers imported by 0.4.1's paths. Its
    ``Model`` base class keeps the network as ``self._model``; so does this."""
    from bitorch.layers import QActivation, QConv2d, QLinear
    from bitorch.layers.debug_layers import ShapePrintDebug

    channels, hidden = 64, 1000
    net = nn.Module()
    net._model = nn.Sequential(
        nn.Conv2d(input_channels, channels, kernel_size=5),
        nn.Tanh(),
        nn.MaxPool2d(2, 2),
        nn.BatchNorm2d(channels),
        QConv2d(
            channels, channels, kernel_size=5, input_quantization="sign", weight_quantization="sign"
        ),  # fmt: skip
        nn.BatchNorm2d(channels),
        nn.MaxPool2d(2, 2),
        ShapePrintDebug(),
        nn.Flatten(),
        QActivation(activation="sign"),
        QLinear(channels * 4 * 4, hidden, weight_quantization="sign"),
        nn.BatchNorm1d(hidden),
        nn.Tanh(),
        nn.Linear(hidden, num_classes),
    )
    net.forward = net._model.forward  # type: ignore[method-assign]
    return net


LENET041_MODULES = [
    "", "_model", "_model.0", "_model.1", "_model.2", "_model.3", "_model.4",
    "_model.4._weight_quantize", "_model.4.activation", "_model.4.activation.activation_function",
    "_model.5", "_model.6", "_model.7", "_model.8", "_model.9", "_model.9.activation_function",
    "_model.10", "_model.10.weight_quantization", "_model.10.activation",
    "_model.10.activation.activation_function", "_model.11", "_model.12", "_model.13",
]  # fmt: skip
LENET041_STATE = [  # bitorch 0.4.1's LeNet((1, 1, 28, 28), 10).state_dict(): key, shape
    ("_model.0.weight", (64, 1, 5, 5)), ("_model.0.bias", (64,)),
    ("_model.3.weight", (64,)), ("_model.3.bias", (64,)), ("_model.3.running_mean", (64,)),
    ("_model.3.running_var", (64,)), ("_model.3.num_batches_tracked", ()),
    ("_model.4.weight", (64, 64, 5, 5)),
    ("_model.5.weight", (64,)), ("_model.5.bias", (64,)), ("_model.5.running_mean", (64,)),
    ("_model.5.running_var", (64,)), ("_model.5.num_batches_tracked", ()),
    ("_model.10.weight", (1000, 1024)), ("_model.10.bias", (1000,)),
    ("_model.11.weight", (1000,)), ("_model.11.bias", (1000,)),
    ("_model.11.running_mean", (1000,)), ("_model.11.running_var", (1000,)),
    ("_model.11.num_batches_tracked", ()),
    ("_model.13.weight", (10, 1000)), ("_model.13.bias", (10,)),
]  # fmt: skip


def test_lenet_has_041_module_tree_and_state_dict():
    net = build_lenet041()
    assert [n for n, _ in net.named_modules()] == LENET041_MODULES
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == LENET041_STATE


def test_lenet_trains_in_float64(layer_config, capsys):
    torch.manual_seed(0)
    net = build_lenet041().double()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(16, 1, 28, 28, dtype=torch.float64)
    labels = torch.randint(0, 10, (16,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), labels)
        loss.backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.dtype == torch.float64, name
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    after = net.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if "weight" in k)
    assert capsys.readouterr().out == ""  # ShapePrintDebug is silent unless debugging
    layer_config.debug_activated = True
    build_lenet041()(x[:2].float())  # its first call (then every 100th) prints
    assert "Debug : tensor([ 2, 64,  4,  4])" in capsys.readouterr().out


def test_lenet_state_dict_round_trip():
    torch.manual_seed(1)
    a, b = build_lenet041(), build_lenet041()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 28, 28)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
