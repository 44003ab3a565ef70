"""Bad inputs raise the same exception type in both frameworks (SPEC.md's error policy)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import bitorch.quantizations as bt
import bitorch_jax.quantizations as bj
from parity_tests.cases import registry_cases

CASES = registry_cases()
KEYS = sorted({c.name for c in CASES})


def raised(call):
    """The exception type ``call()`` raises, or None."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    return None


def assert_same_error(torch_call, jax_call, expected):
    t, j = raised(torch_call), raised(jax_call)
    assert t is expected, f"torch raised {t}, expected {expected.__name__}"
    assert j is expected, f"JAX raised {j}, expected {expected.__name__}"


NON_FLOAT = {
    "int32": (torch.tensor([1, -2], dtype=torch.int32), jnp.array([1, -2], dtype=jnp.int32)),
    "int64": (torch.tensor([1, -2]), np.array([1, -2], dtype=np.int64)),
    "bool": (torch.tensor([True, False]), jnp.array([True, False])),
    "complex64": (
        torch.tensor([1 + 1j], dtype=torch.complex64),
        jnp.array([1 + 1j], dtype=jnp.complex64),
    ),
}


@pytest.mark.parametrize("kind", list(NON_FLOAT))
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_non_float_input_is_a_type_error_in_both(case, kind):
    tx, jx = NON_FLOAT[kind]
    assert_same_error(lambda: case.torch_fn(tx), lambda: case.jax_fn(jx), TypeError)


BAD_BITS = [
    (0, ValueError),
    (25, ValueError),
    (-1, ValueError),
    (1.5, TypeError),
    (True, TypeError),
    ("2", TypeError),
    (2.0, TypeError),
]


@pytest.mark.parametrize(("bits", "error"), BAD_BITS, ids=[repr(b) for b, _ in BAD_BITS])
@pytest.mark.parametrize("key", ["inputdorefa", "weightdorefa"])
def test_bad_bits_same_error(key, bits, error):
    assert_same_error(
        lambda: bt.quantization_from_name(key)(bits=bits),
        lambda: bj.quantization_from_name(key)(bits=bits),
        error,
    )
    functional = {"inputdorefa": "input_dorefa", "weightdorefa": "weight_dorefa"}[key]
    assert_same_error(
        lambda: getattr(bt, functional)(torch.zeros(3), bits),
        lambda: getattr(bj, functional)(jnp.zeros(3), bits),
        error,
    )


BAD_BETA = [
    (0.0, ValueError),
    (-1.0, ValueError),
    (math.inf, ValueError),
    (math.nan, ValueError),
    (0, ValueError),
    (True, TypeError),
    ("5", TypeError),
]


@pytest.mark.parametrize(("beta", "error"), BAD_BETA, ids=[repr(b) for b, _ in BAD_BETA])
def test_bad_beta_same_error(beta, error):
    assert_same_error(lambda: bt.SwishSign(beta=beta), lambda: bj.SwishSign(beta=beta), error)
    assert_same_error(
        lambda: bt.swish_sign(torch.zeros(3), beta),
        lambda: bj.swish_sign(jnp.zeros(3), beta),
        error,
    )


@pytest.mark.parametrize(
    ("name", "error"), [("nope", ValueError), ("", ValueError), (3, TypeError), (None, TypeError)]
)
def test_unknown_name_same_error(name, error):
    assert_same_error(
        lambda: bt.quantization_from_name(name), lambda: bj.quantization_from_name(name), error
    )


def test_unknown_name_message_lists_the_known_keys_in_both():
    for module in (bt, bj):
        with pytest.raises(ValueError) as info:
            module.quantization_from_name("nope")
        for key in KEYS:
            assert key in str(info.value)


def test_the_helper_notices_a_missing_error():
    """assert_same_error must fail when one side does not raise (the check can fail)."""
    with pytest.raises(AssertionError, match="JAX raised None"):
        assert_same_error(lambda: int("x"), lambda: None, ValueError)
