"""bitorch's API around the quantizers: registry, custom quantizers, config defaults,
hyperparameter checks and SPEC.md's error policy (exception types and messages)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import bitorch.quantizations as bq
import bitorch_jax.quantizations as jq
from bitorch.quantizations import STE, Quantization
from bitorch_common.quantizers import rows

# SPEC.md's seven quantizers, and every key the quantizer table holds (a registry key
# without a table row, or a row without a registered class, is a bug).
SPEC_KEYS = {row.key for row in rows()}
assert {"sign", "approxsign", "swishsign", "steheaviside", "inputdorefa", "weightdorefa",
        "identity"} <= SPEC_KEYS  # fmt: skip

DOREFA = {
    "inputdorefa": (bq.InputDoReFa, bq.input_dorefa),
    "weightdorefa": (bq.WeightDoReFa, bq.weight_dorefa),
}


# --------------------------------------------------------------------------- registry


def test_registry_holds_exactly_the_spec_keys():
    assert bq.quantization_names() == sorted(SPEC_KEYS)


def test_case_table_covers_the_registry(oracle_checks):
    """No registered quantizer can escape the parametrized tests."""
    assert {c.key for c in oracle_checks.cases} == set(bq.quantization_names())


def test_both_registries_have_equal_keys():
    assert bq.quantization_names() == jq.quantization_names()


def test_from_name_returns_the_class(case):
    cls = bq.quantization_from_name(case.key)
    assert cls is case.cls and cls.name == case.key
    assert bq.quantization_from_name(case.key.upper()) is cls  # case-insensitive
    assert issubclass(cls, Quantization) and isinstance(case.make(), torch.nn.Module)


@pytest.mark.parametrize("name", ["sgn", "", "sign ", "dorefa", "binary"])
def test_unknown_name_raises_value_error_listing_known_names(name):
    with pytest.raises(ValueError, match="unknown quantization") as err:
        bq.quantization_from_name(name)
    for key in SPEC_KEYS:
        assert key in str(err.value), f"error message does not list {key!r}: {err.value}"


@pytest.mark.parametrize("name", [None, 1, bq.Sign, b"sign"])
def test_non_string_name_raises_type_error(name):
    with pytest.raises(TypeError, match="must be a str"):
        bq.quantization_from_name(name)


def test_bit_width(case):
    q = case.make()
    assert q.bit_width == case.bit_width


def test_bitwidth_is_deprecated_alias(case):
    q = case.make()
    with pytest.warns(DeprecationWarning, match="bit_width"):
        value = q.bitwidth
    assert value == case.bit_width


def test_quantization_superclass_is_abstract():
    q = Quantization()
    with pytest.raises(NotImplementedError, match="quantize"):
        q(torch.zeros(2))


# --------------------------------------------------------------------------- custom quantizer
# A user-defined quantizer: an STE subclass that overrides only forward (with an extra
# non-tensor argument), wrapped in a Quantization and registered by name.


class RoundToStepFunction(STE):
    """Round to the nearest multiple of ``step`` (half to even); straight-through grad."""

    @staticmethod
    def forward(x: torch.Tensor, step: float) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x / step) * step


class RoundToStep(Quantization):
    name = "test_round_to_step"
    bit_width = 8

    def __init__(self, *, step: float = 0.25) -> None:
        super().__init__()
        self.step = step

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return RoundToStepFunction.apply(x, self.step)


@pytest.fixture
def registered_round_to_step() -> Iterator[type[Quantization]]:
    """Register :class:`RoundToStep`; remove its key afterwards so no other test sees it."""
    assert RoundToStep.name not in bq.quantization_names(), "left over from an earlier test"
    try:
        yield bq.register_custom_quantization(RoundToStep)
    finally:
        bq._REGISTRY.unregister(RoundToStep.name)
    assert bq.quantization_names() == sorted(SPEC_KEYS)


@pytest.fixture
def registry_snapshot() -> Iterator[None]:
    """Restore the registry exactly after a test that may register classes."""
    saved = bq._REGISTRY.snapshot()
    try:
        yield
    finally:
        bq._REGISTRY.restore(saved)


def test_custom_quantizer_works_by_name(registered_round_to_step):
    assert registered_round_to_step is RoundToStep
    assert "test_round_to_step" in bq.quantization_names()
    cls = bq.quantization_from_name("Test_Round_To_Step")
    assert cls is RoundToStep
    q = cls(step=0.5)
    assert q.bit_width == 8
    x_np = np.array([0.0, -0.0, 1.0, -1.0, 0.25, -0.25, 0.26, 0.74, 1.3, -7.6, np.inf, np.nan])
    x_np = x_np.astype(np.float32)
    g_np = np.linspace(-2.3, 3.1, x_np.size).astype(np.float32)
    x = torch.from_numpy(x_np).requires_grad_(True)
    out = q(x)
    out.backward(torch.from_numpy(g_np))
    want = np.round(x_np / np.float32(0.5)) * np.float32(0.5)  # np.round: half to even
    np.testing.assert_array_equal(out.detach().numpy(), want)
    np.testing.assert_array_equal(x.grad.numpy(), g_np)  # straight through, NaN/inf included


def test_custom_quantizer_under_torch_func(registered_round_to_step):
    q = bq.quantization_from_name("test_round_to_step")(step=0.5)
    x = torch.tensor([[0.2, -0.8, 3.3], [1.25, -1.75, 0.0]])
    g = torch.tensor([[0.4, -1.3, 2.0], [0.7, 1.9, -0.6]])
    grads = torch.func.vmap(torch.func.grad(lambda xi, gi: (q(xi) * gi).sum()))(x, g)
    assert torch.equal(grads, g)
    want = torch.tensor([[0.0, -1.0, 3.5], [1.0, -2.0, 0.0]])
    assert torch.equal(torch.func.vmap(q)(x), want)


def test_register_as_decorator(registry_snapshot):
    @bq.register_custom_quantization
    class Halve(Quantization):
        name = "test_halve"

        def quantize(self, x: torch.Tensor) -> torch.Tensor:
            return x / 2

    assert bq.quantization_from_name("test_halve") is Halve
    assert bq.quantization_from_name("test_halve")()(torch.tensor([3.0])).item() == 1.5


def test_registering_the_same_class_twice_is_harmless(registry_snapshot):
    assert bq.register_custom_quantization(bq.Sign) is bq.Sign
    assert bq.quantization_names() == sorted(SPEC_KEYS)


class _NotAQuantization(torch.nn.Module):
    name = "test_not_a_quantization"


@pytest.mark.parametrize(
    "obj",
    [_NotAQuantization, RoundToStepFunction, bq.Sign(), "sign", bq.sign, int],
    ids=["module", "ste_function", "instance", "string", "function", "int"],
)
def test_registering_a_non_quantization_raises_type_error(obj, registry_snapshot):
    with pytest.raises(TypeError, match="Quantization subclass"):
        bq.register_custom_quantization(obj)
    assert bq.quantization_names() == sorted(SPEC_KEYS)


def test_registering_another_class_under_a_taken_name_raises_value_error(registry_snapshot):
    class Impostor(Quantization):
        name = "sign"

    with pytest.raises(ValueError, match="'sign' is already registered"):
        bq.register_custom_quantization(Impostor)
    assert bq.quantization_from_name("sign") is bq.Sign


@pytest.mark.parametrize("name", [None, "", "Upper_Case"], ids=["none", "empty", "upper"])
def test_registering_a_bad_name_raises_value_error(name, registry_snapshot):
    attrs = {"quantize": lambda self, x: x}
    if name is not None:
        attrs["name"] = name
    cls = type("BadName", (Quantization,), attrs)
    with pytest.raises(ValueError, match="BadName"):
        bq.register_custom_quantization(cls)
    assert bq.quantization_names() == sorted(SPEC_KEYS)


def test_ste_is_identity_forward_and_backward():
    x = torch.tensor([-2.0, -0.0, 0.0, 0.5, math.inf, math.nan], requires_grad=True)
    g = torch.tensor([0.3, -1.1, 2.4, -0.7, 1.9, 0.6])
    out = STE.apply(x)
    assert out is not x
    assert torch.equal(out.detach().nan_to_num(7.0), x.detach().nan_to_num(7.0))
    out.backward(g)
    assert torch.equal(x.grad, g)


# --------------------------------------------------------------------------- error policy


@pytest.mark.parametrize(
    "bad_dtype",
    [torch.int8, torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64],
    ids=lambda d: str(d)[6:],
)
def test_non_float_tensor_raises_type_error(case, bad_dtype):
    x = torch.zeros(3, dtype=bad_dtype)
    with pytest.raises(TypeError, match=rf"^{case.key}: .*{bad_dtype}"):
        case.make()(x)
    with pytest.raises(TypeError, match=rf"^{case.key}: "):
        getattr(bq, case.spec.function)(x, **case.params)  # the row's functional form


@pytest.mark.parametrize(
    "bad", [[0.5, 1.0], np.array([0.5]), 0.5, None], ids=["list", "ndarray", "float", "none"]
)
def test_non_tensor_input_raises_type_error(case, bad):
    with pytest.raises(TypeError, match=rf"^{case.key}: expected a torch.Tensor"):
        case.make()(bad)


BAD_BITS_TYPE = [True, False, 2.0, "2", 2.5, torch.tensor(2), np.bool_(True)]
BAD_BITS_VALUE = [0, 25, -1, 100, np.int64(0)]


@pytest.mark.parametrize("key", sorted(DOREFA))
@pytest.mark.parametrize("bits", BAD_BITS_TYPE, ids=repr)
def test_bits_not_an_int_raises_type_error(key, bits):
    cls, fn = DOREFA[key]
    with pytest.raises(TypeError, match=rf"^{key}: bits must be an int"):
        cls(bits=bits)
    with pytest.raises(TypeError, match=rf"^{key}: bits must be an int"):
        fn(torch.zeros(2), bits=bits)


@pytest.mark.parametrize("key", sorted(DOREFA))
@pytest.mark.parametrize("bits", BAD_BITS_VALUE, ids=repr)
def test_bits_out_of_range_raises_value_error(key, bits):
    cls, fn = DOREFA[key]
    with pytest.raises(ValueError, match=rf"^{key}: bits must be in 1..24"):
        cls(bits=bits)
    with pytest.raises(ValueError, match=rf"^{key}: bits must be in 1..24"):
        fn(torch.zeros(2), bits=bits)


@pytest.mark.parametrize("key", sorted(DOREFA))
@pytest.mark.parametrize("bits", [1, 24, np.int64(3)], ids=repr)
def test_bits_at_the_ends_of_the_range_are_accepted(key, bits):
    q = DOREFA[key][0](bits=bits)
    assert q.bits == bits and type(q.bits) is int and q.bit_width == bits


@pytest.mark.parametrize("beta", [0, 0.0, -0.0, -1.0, math.inf, -math.inf, math.nan], ids=repr)
def test_beta_not_finite_positive_raises_value_error(beta):
    with pytest.raises(ValueError, match=r"^swishsign: beta must be finite and > 0"):
        bq.SwishSign(beta=beta)
    with pytest.raises(ValueError, match=r"^swishsign: beta must be finite and > 0"):
        bq.swish_sign(torch.zeros(2), beta=beta)


@pytest.mark.parametrize("beta", ["5", True, [5.0], torch.tensor(5.0), 1j], ids=repr)
def test_beta_not_a_real_number_raises_type_error(beta):
    with pytest.raises(TypeError, match=r"^swishsign: beta must be a real number"):
        bq.SwishSign(beta=beta)


@pytest.mark.parametrize("beta", [1, 0.5, 5.0, np.float32(2.5)], ids=repr)
def test_valid_beta_is_stored_as_float(beta):
    q = bq.SwishSign(beta=beta)
    assert q.beta == float(beta) and type(q.beta) is float


@pytest.mark.parametrize(
    "make",
    [lambda: bq.InputDoReFa(2), lambda: bq.WeightDoReFa(2), lambda: bq.SwishSign(5.0)],
    ids=["InputDoReFa(2)", "WeightDoReFa(2)", "SwishSign(5.0)"],
)
def test_hyperparameters_may_be_positional_as_in_bitorch_041(make):
    q = make()
    assert q.bit_width in (1, 2)
    assert getattr(q, "bits", 2) == 2 and getattr(q, "beta", 5.0) == 5.0


# --------------------------------------------------------------------------- config


def test_config_defaults_are_the_spec_values(restore_config):
    assert restore_config.dorefa_bits == 1 and restore_config.beta == 5.0
    assert bq.InputDoReFa().bits == 1 and bq.WeightDoReFa().bit_width == 1
    assert bq.SwishSign().beta == 5.0


def test_config_defaults_are_used_when_hyperparameters_are_none(restore_config):
    restore_config.dorefa_bits = 3
    restore_config.beta = 2.0
    assert bq.InputDoReFa().bits == 3 and bq.InputDoReFa(bits=None).bit_width == 3
    assert bq.WeightDoReFa().bits == 3
    assert bq.SwishSign().beta == 2.0 and bq.SwishSign(beta=None).beta == 2.0
    x = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0], requires_grad=True)
    want = torch.tensor([0.0, 1 / 7, 4 / 7, 5 / 7, 1.0])  # round(x * 7) / 7, half to even
    torch.testing.assert_close(bq.input_dorefa(x), want, rtol=0, atol=1e-7)
    bq.swish_sign(x).backward(torch.full((5,), 0.75))
    assert x.grad[0].item() == 0.75 * 2.0  # dq/dx at 0 is beta


def test_explicit_zero_is_not_replaced_by_the_default(restore_config):
    assert restore_config.beta == 5.0 and restore_config.dorefa_bits == 1
    with pytest.raises(ValueError, match="swishsign"):
        bq.SwishSign(beta=0)
    with pytest.raises(ValueError, match="swishsign"):
        bq.swish_sign(torch.zeros(1), beta=0.0)
    with pytest.raises(ValueError, match="inputdorefa"):
        bq.InputDoReFa(bits=0)
    with pytest.raises(ValueError, match="weightdorefa"):
        bq.weight_dorefa(torch.zeros(1), bits=0)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("dorefa_bits", 0, ValueError),
        ("dorefa_bits", 25, ValueError),
        ("dorefa_bits", 2.0, TypeError),
        ("dorefa_bits", True, TypeError),
        ("beta", 0, ValueError),
        ("beta", -2.0, ValueError),
        ("beta", math.nan, ValueError),
        ("beta", math.inf, ValueError),
        ("beta", "5", TypeError),
        ("no_such_option", 1, AttributeError),
    ],
)
def test_config_setters_validate(option, value, error, restore_config):
    before = (restore_config.dorefa_bits, restore_config.beta)
    with pytest.raises(error, match=option):
        setattr(restore_config, option, value)
    assert (restore_config.dorefa_bits, restore_config.beta) == before
