"""Three realistic porting mistakes that once passed as "boundary flips", run through the
parity command: each must fail, naming the element, both values and why it is no flip."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bitorch_jax.quantizations as bj
from bitorch_jax.quantizations import straight_through
from parity_tests.__main__ import main
from parity_tests.cases import case_for


def _run(capsys, case, dtype="float32"):
    code = main(
        ["--quantizers", case.name, "--dtypes", dtype, "--size", "3000"],
        extra_cases=[case],
    )
    out = capsys.readouterr().out
    return code, out


def _mutant(key, name, jax_fn, **params):
    return dataclasses.replace(case_for(key, **params), name=name, jax_fn=jax_fn)


@straight_through(static_argnums=(1,))
def _dorefa_without_flush(x, bits):
    """weightdorefa that keeps subnormal tanh values (XLA:CPU flushes them, so they are
    rebuilt from their bits): an all-subnormal weight gets real levels, not the zero rule."""
    n = 2**bits - 1
    xf = x.astype(jnp.float32)
    bits_of = jax.lax.bitcast_convert_type(xf, jnp.int32)
    mantissa = (bits_of & 0x7FFFFF).astype(jnp.float32) * jnp.where(bits_of < 0, -1.0, 1.0)
    subnormal = (bits_of & 0x7F800000) == 0
    t = jnp.where(subnormal, mantissa, jnp.tanh(xf))
    m = jnp.max(jnp.abs(t))
    scaled = t / jnp.where(m == 0, 1.0, 2 * m)
    unflushed = (2 * jnp.round((scaled + 0.5) * n) / n - 1).astype(x.dtype)
    return jnp.where(jnp.all(subnormal), unflushed, bj.weight_dorefa(x, bits))


@straight_through(static_argnums=(1,))
def _dorefa_half_up(x, bits):
    n = 2**bits - 1
    return (jnp.floor(jnp.clip(x.astype(jnp.float32), 0, 1) * n + 0.5) / n).astype(x.dtype)


@straight_through
def _plain_float_sign(x):
    """``x < 0`` as a float comparison: XLA:CPU treats negative subnormals as 0 there."""
    return jnp.where(x < 0, -1.0, 1.0).astype(x.dtype)


@pytest.mark.parametrize(
    ("key", "params", "fn", "reason"),
    [
        (
            "weightdorefa",
            {"bits": 3},
            lambda x: _dorefa_without_flush(x, 3),
            "the pre-round value is exact at this input",
        ),
        (
            "inputdorefa",
            {"bits": 2},
            lambda x: _dorefa_half_up(x, 2),
            "the pre-round value is computed exactly",
        ),
        ("sign", {}, _plain_float_sign, "the pre-round value is computed exactly"),
    ],
    ids=["all-subnormal-weightdorefa", "inputdorefa-half-up", "negative-subnormal-sign"],
)
def test_a_mistake_is_not_a_flip(capsys, key, params, fn, reason):
    case = _mutant(key, f"{key}-mutant", fn, **params)
    code, out = _run(capsys, case)
    print(out)
    assert code == 1, out
    fail_lines = [line for line in out.splitlines() if line.startswith("  forward at [")]
    assert fail_lines, out
    # every failing element is named with its input, both values and why it is no flip
    for line in fail_lines:
        assert "input=" in line and "torch=" in line and "jax=" in line, line
        assert f"(not a flip: {reason}" in line, line
    assert "boundary flips in" not in out.split(f"FAIL {case.name}")[1].split("\nFAIL")[0]


def test_the_unchanged_quantizers_pass_the_same_run(capsys):
    for key, params in (("weightdorefa", {"bits": 3}), ("inputdorefa", {"bits": 2}), ("sign", {})):
        case = _mutant(key, f"{key}-same", case_for(key, **params).jax_fn, **params)
        code, out = _run(capsys, case)
        assert code == 0, out
    assert np.finfo(np.float32).smallest_subnormal > 0  # the inputs hold subnormals
