"""bitorch as a drop-in for bitorch 0.4.1: the call patterns of 0.4.1's quantization API.

Positional hyperparameters, ``None`` as "the config default", the config module and
``bitorch.config.Config``, 0.4.1's attribute names, the arguments of the ``*Function``
classes (``WeightDoReFaFunction.apply(x, maximum_bit_value)``), 0.4.1-style ``STE``
subclasses (``forward(ctx, x)``) and the module paths. Expected values are written out
here; nothing of bitorch 0.4.1 is imported (``benchmarks/bitorch041.py diff`` compares
with the real package).
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import bitorch.quantizations as bq
from bitorch.config import Config, config_from_name, config_names
from bitorch.quantizations.base import STE, Quantization

X = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5])
G = torch.tensor([0.7, -1.1, 2.0, 1.3, -0.4, 0.9, -2.2])


@pytest.fixture
def saved_config() -> Iterator[bq.QuantizationConfig]:
    """The quantizers' config object; its values are put back after the test."""
    from bitorch.quantizations.config import config

    saved = (config.dorefa_bits, config.beta)
    try:
        yield config
    finally:
        config.dorefa_bits, config.beta = saved


@pytest.fixture
def saved_registry() -> Iterator[None]:
    saved = bq._REGISTRY.snapshot()
    try:
        yield
    finally:
        bq._REGISTRY.restore(saved)


def forward_and_grad(fn, x=X, g=G):  # type: ignore[no-untyped-def]
    xt = x.clone().requires_grad_(True)
    y = fn(xt)
    y.backward(g)
    return y.detach(), xt.grad


# ------------------------------------------------------------------ constructors


@pytest.mark.parametrize(
    ("make", "keywords"),
    [
        (lambda: bq.SwishSign(2.5), lambda: bq.SwishSign(beta=2.5)),
        (lambda: bq.InputDoReFa(3), lambda: bq.InputDoReFa(bits=3)),
        (lambda: bq.WeightDoReFa(3), lambda: bq.WeightDoReFa(bits=3)),
    ],
    ids=["SwishSign(2.5)", "InputDoReFa(3)", "WeightDoReFa(3)"],
)
def test_positional_hyperparameters_equal_keywords(make, keywords):
    a, b = make(), keywords()
    assert a.extra_repr() == b.extra_repr() in ("beta=2.5", "bits=3")
    ya, ga = forward_and_grad(a)
    yb, gb = forward_and_grad(b)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)


def test_041_attribute_names():
    s = bq.SwishSign(2.5)
    assert s.beta == 2.5 and s.name == "swishsign" and s.bit_width == 1
    i = bq.InputDoReFa(2)
    assert i.bit_width == 2 and i.bits == 2 and i.name == "inputdorefa"
    w = bq.WeightDoReFa(3)
    assert w.bit_width == 3 and w._max_value == 7 and w.name == "weightdorefa"
    for cls, width in ((bq.Sign, 1), (bq.ApproxSign, 1), (bq.SteHeaviside, 1), (bq.Identity, 32)):
        assert cls().bit_width == width and cls.bit_width == width
    with pytest.warns(DeprecationWarning, match="bit_width"):
        assert i.bitwidth == 2


def test_class_bit_width_of_dorefa_is_the_config_default(saved_config):
    # 0.4.1: a class attribute holding config.dorefa_bits; here the current value.
    assert bq.InputDoReFa.bit_width == bq.WeightDoReFa.bit_width == 1
    saved_config.dorefa_bits = 4
    assert bq.InputDoReFa.bit_width == 4 and bq.InputDoReFa().bit_width == 4


def test_setting_bit_width_changes_the_quantizer_and_is_validated():
    q = bq.WeightDoReFa(1)
    q.bit_width = 2
    assert q.bits == 2 and q._max_value == 3
    assert torch.equal(q(X), bq.WeightDoReFa(2)(X))
    with pytest.raises(ValueError, match=r"^weightdorefa: bits must be in 1\.\.24"):
        q.bit_width = 0
    with pytest.raises(TypeError, match=r"^inputdorefa: bits must be an int"):
        bq.InputDoReFa(2).bit_width = 2.5
    s = bq.SwishSign(5.0)
    s.beta = 2.0
    assert forward_and_grad(s, torch.zeros(1), torch.ones(1))[1].item() == 2.0
    with pytest.raises(ValueError, match=r"^swishsign: beta must be finite and > 0"):
        s.beta = -1.0


# ------------------------------------------------------------------ None = config default


def test_none_means_the_config_default(saved_config):
    assert bq.SwishSign(None).beta == 5.0 and bq.InputDoReFa(None).bit_width == 1
    saved_config.beta = 2.0
    saved_config.dorefa_bits = 3
    assert bq.SwishSign(None).beta == bq.SwishSign().beta == 2.0
    assert bq.InputDoReFa(None).bit_width == bq.WeightDoReFa().bit_width == 3
    assert bq.WeightDoReFa(None)._max_value == 7


def test_config_changes_affect_quantizers_built_afterwards_only(saved_config):
    before = bq.InputDoReFa()
    saved_config.dorefa_bits = 2
    after = bq.InputDoReFa()
    assert before.bit_width == 1 and after.bit_width == 2
    x = torch.tensor([0.2, 0.4, 0.9])
    assert before(x).tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(after(x), torch.tensor([1 / 3, 1 / 3, 1.0]), rtol=0, atol=0)


def test_explicit_zero_is_an_error_not_the_default():
    # SPEC.md deviation: 0.4.1's `beta or config.beta` silently turned 0 into 5.0.
    with pytest.raises(ValueError, match="swishsign"):
        bq.SwishSign(0)
    with pytest.raises(ValueError, match="inputdorefa"):
        bq.InputDoReFa(0)
    with pytest.raises(ValueError, match="weightdorefa"):
        bq.WeightDoReFa(0)


# ------------------------------------------------------------------ config module


def test_config_module_paths():
    cfg_module = importlib.import_module("bitorch.quantizations.config")
    assert bq.config is cfg_module
    assert isinstance(cfg_module.config, cfg_module.QuantizationConfig)
    assert cfg_module.Config is Config and isinstance(cfg_module.config, Config)
    assert cfg_module.QuantizationConfig.name == "quantization_config"
    assert config_from_name("quantization_config") is cfg_module.config
    assert "quantization_config" in config_names()


def test_options_can_be_set_on_the_config_module(saved_config):
    bq.config.beta = 2.0  # the module forwards its options to the object
    assert saved_config.beta == 2.0 and bq.config.config.beta == 2.0 and bq.config.beta == 2.0
    with pytest.raises(AttributeError, match="no option 'bits'"):
        bq.config.bits = 3
    with pytest.raises(ValueError, match="beta"):
        bq.config.beta = 0.0


def test_quantization_config_is_a_041_config(saved_config):
    assert saved_config._configurable_attributes == ["beta", "dorefa_bits"]
    parser = argparse.ArgumentParser()
    saved_config.add_config_arguments(parser)
    args = parser.parse_args(["--dorefa-bits", "4", "--beta", "2.5"])
    saved_config.apply_args_to_configuration(args)
    assert (saved_config.dorefa_bits, saved_config.beta) == (4, 2.5)
    assert bq.InputDoReFa().bit_width == 4
    with pytest.raises(ValueError, match="dorefa_bits"):  # still validated
        saved_config.apply_args_to_configuration(argparse.Namespace(dorefa_bits=0, beta=1.0))
    assert (saved_config.dorefa_bits, saved_config.beta) == (4, 2.5)  # not half updated
    # accessors, with 0.4.1's explicit object argument or without
    assert saved_config.get_beta() == saved_config.get_beta(saved_config) == 2.5
    saved_config.set_dorefa_bits(2)
    saved_config.set_beta(saved_config, 3.0)
    assert (saved_config.dorefa_bits, saved_config.beta) == (2, 3.0)


def test_a_041_config_subclass():
    class TrainingConfig(Config):
        name = "training_config"
        epochs = 10
        learning_rate = 0.1
        verbose = False
        quiet = True

        def describe(self) -> str:  # callables are not options
            return self.name

    cfg = TrainingConfig()
    assert cfg._configurable_attributes == ["epochs", "learning_rate", "quiet", "verbose"]
    parser = argparse.ArgumentParser()
    cfg.add_config_arguments(parser)
    assert [g.title for g in parser._action_groups][-1] == "training_config"
    cfg.apply_args_to_configuration(parser.parse_args(["--epochs", "3", "--verbose", "--quiet"]))
    assert (cfg.epochs, cfg.learning_rate, cfg.verbose, cfg.quiet) == (3, 0.1, True, False)
    cfg.apply_args_to_configuration(parser.parse_args([]))  # defaults: the values at build time
    assert (cfg.epochs, cfg.verbose, cfg.quiet) == (10, False, True)
    assert cfg.get_epochs() == 10
    cfg.set_learning_rate(0.5)
    assert cfg.learning_rate == 0.5 and "get_epochs" in dir(cfg)
    with pytest.raises(AttributeError):
        cfg.get_describe  # noqa: B018  (not an option)


# ------------------------------------------------------------------ *Function.apply


def test_function_apply_arguments():
    x = torch.tensor([-1.5, -0.2, 0.0, 0.2, 0.45, 0.8, 1.2])
    assert torch.equal(bq.SignFunction.apply(x), bq.Sign()(x))
    assert torch.equal(bq.ApproxSignFunction.apply(x), bq.Sign()(x))
    assert torch.equal(bq.SteHeavisideFunction.apply(x), bq.SteHeaviside()(x))
    assert torch.equal(bq.InputDoReFaFunction.apply(x, 2), bq.InputDoReFa(2)(x))
    # WeightDoReFaFunction takes 0.4.1's maximum_bit_value = 2**bits - 1, not bits
    assert torch.equal(bq.WeightDoReFaFunction.apply(x, 3), bq.WeightDoReFa(2)(x))
    assert torch.equal(bq.WeightDoReFaFunction.apply(x, 1), bq.WeightDoReFa(1)(x))


def test_weight_dorefa_function_with_any_maximum_bit_value():
    x = np.array([-1.5, -0.2, 0.0, 0.2, 0.45, 0.8, 1.2])
    t = np.tanh(x)
    for n in (2, 5, 6):
        want = 2 * (np.round((t / (2 * np.abs(t).max()) + 0.5) * n) / n) - 1
        got = bq.WeightDoReFaFunction.apply(torch.from_numpy(x), n)
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: bq.WeightDoReFaFunction.apply(x, 0), ValueError, "maximum_bit_value"),
        (lambda x: bq.WeightDoReFaFunction.apply(x, 2**24), ValueError, "maximum_bit_value"),
        (lambda x: bq.WeightDoReFaFunction.apply(x, 3.0), TypeError, "maximum_bit_value"),
        (lambda x: bq.InputDoReFaFunction.apply(x, 0), ValueError, "bits"),
        (lambda x: bq.SwishSignFunction.apply(x, 0.0), ValueError, "beta"),
        (lambda x: bq.SwishSignFunction.apply(x, None), TypeError, "beta"),
    ],
    ids=["wd-0", "wd-2**24", "wd-float", "id-0", "ss-0", "ss-None"],
)
def test_function_apply_checks_its_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.zeros(3))


def test_swish_sign_function_default_beta_is_1():
    # 0.4.1: SwishSignFunction.forward(ctx, input_tensor, beta=1.0); dq/dx(0) = beta
    _, g1 = forward_and_grad(bq.SwishSignFunction.apply, torch.zeros(1), torch.ones(1))
    _, g5 = forward_and_grad(
        lambda v: bq.SwishSignFunction.apply(v, 5.0), torch.zeros(1), torch.ones(1)
    )
    assert (g1.item(), g5.item()) == (1.0, 5.0)


def test_function_gradients_are_the_quantizers():
    for fn, q in (
        (bq.SignFunction.apply, bq.Sign()),
        (bq.ApproxSignFunction.apply, bq.ApproxSign()),
        (lambda v: bq.SwishSignFunction.apply(v, 5.0), bq.SwishSign(5.0)),
        (bq.SteHeavisideFunction.apply, bq.SteHeaviside()),
        (lambda v: bq.InputDoReFaFunction.apply(v, 2), bq.InputDoReFa(2)),
        (lambda v: bq.WeightDoReFaFunction.apply(v, 3), bq.WeightDoReFa(2)),
    ):
        (ya, ga), (yb, gb) = forward_and_grad(fn), forward_and_grad(q)
        assert torch.equal(ya, yb) and torch.equal(ga, gb), q.name


# ------------------------------------------------------------------ STE, both styles


class OldStyleRound(STE):
    """0.4.1 style: forward(ctx, x), backward inherited from STE."""

    @staticmethod
    def forward(ctx, input_tensor):  # type: ignore[no-untyped-def, override]
        return torch.round(input_tensor)


class OldStyleClippedSign(STE):
    """0.4.1 style with its own backward and an extra argument."""

    @staticmethod
    def forward(ctx, input_tensor, threshold):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(input_tensor)
        ctx.threshold = threshold
        return torch.where(input_tensor >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, output_gradient):  # type: ignore[no-untyped-def, override]
        (x,) = ctx.saved_tensors
        return output_gradient * (x.abs() <= ctx.threshold), None


class OldStyleRoundWithBits(STE):
    """0.4.1 style with an extra argument and STE's backward (it returns None for it)."""

    @staticmethod
    def forward(ctx, input_tensor, bits):  # type: ignore[no-untyped-def, override]
        n = 2**bits - 1
        return torch.round(input_tensor * n) / n


class NewStyleChildOfOldStyle(OldStyleRound):
    @staticmethod
    def forward(input_tensor):  # type: ignore[no-untyped-def, override]
        return torch.floor(input_tensor)


def test_old_style_ste_subclass_works_with_autograd():
    y, g = forward_and_grad(OldStyleRound.apply)
    assert torch.equal(y, torch.round(X)) and torch.equal(g, G)
    y, g = forward_and_grad(lambda v: OldStyleClippedSign.apply(v, 1.0))
    assert torch.equal(y, torch.tensor([-1.0, -1, -1, 1, 1, 1, 1]))
    assert torch.equal(g, G * torch.tensor([0.0, 1, 1, 1, 1, 1, 0]))
    y, g = forward_and_grad(lambda v: OldStyleRoundWithBits.apply(v, 2))
    assert torch.equal(y, torch.round(X * 3) / 3) and torch.equal(g, G)


def test_styles_are_detected_per_class():
    plain = torch.autograd.Function.setup_context
    assert OldStyleRound.setup_context is plain and OldStyleClippedSign.setup_context is plain
    assert NewStyleChildOfOldStyle.setup_context is STE.setup_context
    assert bq.SignFunction.setup_context is STE.setup_context
    y, g = forward_and_grad(NewStyleChildOfOldStyle.apply)
    assert torch.equal(y, torch.floor(X)) and torch.equal(g, G)


def test_new_style_ste_subclasses_work_under_torch_func():
    xs = torch.stack([X, -X])
    grads = torch.func.vmap(torch.func.grad(lambda v: NewStyleChildOfOldStyle.apply(v).sum()))(xs)
    assert torch.equal(grads, torch.ones_like(xs))
    grads = torch.func.vmap(torch.func.grad(lambda v: bq.SignFunction.apply(v).sum()))(xs)
    assert torch.equal(grads, torch.ones_like(xs))


def test_old_style_ste_under_torch_func_raises_torch_error():
    with pytest.raises(RuntimeError, match="setup_context"):
        torch.func.grad(lambda v: OldStyleRound.apply(v).sum())(X)


class OldStyleRoundQuantization(Quantization):
    name = "test_041_round"
    bit_width = 8

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return OldStyleRound.apply(x)


def test_old_style_quantizer_registered_by_name(saved_registry):
    assert bq.register_custom_quantization(OldStyleRoundQuantization) is OldStyleRoundQuantization
    assert "test_041_round" in bq.quantization_names()
    assert bq.quantizations_by_name["test_041_round"] is OldStyleRoundQuantization
    q = bq.quantization_from_name("test_041_round")()
    y, g = forward_and_grad(q)
    assert torch.equal(y, torch.round(X)) and torch.equal(g, G)


def test_quantizations_by_name_is_a_read_only_view():
    table = bq.quantizations_by_name
    for key in ("sign", "approxsign", "swishsign", "steheaviside", "identity"):
        assert table[key] is bq.quantization_from_name(key)
    assert table["inputdorefa"] is bq.InputDoReFa and table["weightdorefa"] is bq.WeightDoReFa
    with pytest.raises(TypeError):
        table["x"] = bq.Sign  # type: ignore[index]


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="sgn"):
        bq.quantization_from_name("sgn")


# ------------------------------------------------------------------ module paths


@pytest.mark.parametrize(
    ("module", "names", "functional"),
    [
        ("sign", ("Sign", "SignFunction"), "sign"),
        ("approx_sign", ("ApproxSign", "ApproxSignFunction"), "approx_sign"),
        ("swish_sign", ("SwishSign", "SwishSignFunction"), "swish_sign"),
        ("ste_heaviside", ("SteHeaviside", "SteHeavisideFunction"), "ste_heaviside"),
        ("identity", ("Identity",), "identity"),
        ("dorefa", ("InputDoReFa", "WeightDoReFa", "InputDoReFaFunction"), None),
        ("base", ("Quantization", "STE"), None),
    ],
)
def test_041_module_paths(module, names, functional):
    mod = importlib.import_module(f"bitorch.quantizations.{module}")
    assert getattr(bq, module) is mod  # bitorch.quantizations.<module> is the submodule
    for name in names:
        assert getattr(mod, name) is getattr(bq, name)
    if functional is not None:  # ... and, called, the functional form of the table
        x = torch.tensor([-0.7, 0.0, 0.4])
        assert callable(mod) and torch.equal(mod(x), getattr(mod, functional)(x))


def test_identity_returns_its_input():
    x = torch.tensor([-0.0, 1.5, math.inf, math.nan])
    assert bq.Identity()(x) is x  # no copy, as in 0.4.1


# ------------------------------------------------------------------ higher order


@pytest.mark.parametrize("make", [bq.ApproxSign, lambda: bq.SwishSign(5.0)], ids=["as", "ss"])
def test_backward_can_be_differentiated(make):
    """0.4.1's out-of-place backward passes could be differentiated again
    (``create_graph=True``); the in-place ones here switch to out-of-place then, with the
    same first-order values."""
    q = make()
    x = torch.tensor([-1.5, -0.3, 0.0, 0.4, 2.0], dtype=torch.float64, requires_grad=True)
    (plain,) = torch.autograd.grad(q(x).sum(), x)
    (graph,) = torch.autograd.grad(q(x).sum(), x, create_graph=True)
    assert torch.equal(plain, graph.detach())
    (second,) = torch.autograd.grad(graph.sum(), x)
    eps = 1e-6

    def first(v: float) -> float:
        t = torch.tensor([v], dtype=torch.float64, requires_grad=True)
        return torch.autograd.grad(q(t).sum(), t)[0].item()

    numeric = [(first(v + eps) - first(v - eps)) / (2 * eps) for v in (-1.5, -0.3, 0.4, 2.0)]
    torch.testing.assert_close(second[[0, 1, 3, 4]].tolist(), numeric, rtol=1e-6, atol=1e-6)
