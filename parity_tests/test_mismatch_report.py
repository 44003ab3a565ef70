"""A parity report names an output of another dtype or shape as such: the row is FAIL
with ``-`` for the differences it could not measure, and the details say ``forward dtype:
torch bfloat16, jax float32`` or ``forward shape: torch (3,), jax (3, 1)``, not "N
differing element(s)" with a forward difference of 0.

The JAX functions here are plain ``jnp`` code on purpose: ``straight_through`` would refuse
them when traced (tests/jax/test_straight_through_contract.py)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import torch

from bitorch_common.comparison import compare_sample
from parity_tests import compare

X = np.array([-1.0, 0.5, 2.0], np.float32)


def _check_fail(report, problem: str) -> None:  # type: ignore[no-untyped-def]
    (row,) = report.results
    assert not report.ok and row.verdict == "FAIL" and row.error is None
    assert row.problems == [problem]
    assert row.row()[4:] == ("-", "-", "-", "FAIL")  # nothing was measured
    text = str(report)
    assert f"FAIL {row.title}: {problem}" in text
    assert "differing element" not in text
    data = json.loads(report.to_json())["results"][0]
    assert data["verdict"] == "FAIL" and data["problems"] == [problem]


def test_jax_output_of_another_dtype() -> None:
    report = compare(
        torch.sign, lambda x: jnp.sign(x).astype(jnp.float32), inputs=X, dtypes="bfloat16"
    )
    _check_fail(report, "forward dtype: torch bfloat16, jax float32")


def test_torch_output_of_another_dtype() -> None:
    report = compare(lambda x: torch.sign(x).float(), jnp.sign, inputs=X, dtypes="float16")
    _check_fail(report, "forward dtype: torch float32, jax float16")


def test_jax_output_of_another_shape() -> None:
    report = compare(torch.sign, lambda x: jnp.sign(x)[:, None], inputs=X)
    _check_fail(report, "forward shape: torch (3,), jax (3, 1)")


def test_both_outputs_of_another_shape_than_the_input() -> None:
    report = compare(lambda x: torch.sign(x)[:, None], lambda x: jnp.sign(x)[:, None], inputs=X)
    _check_fail(report, "forward shape: both (3, 1), input (3,)")


def test_dtype_and_shape_both_named() -> None:
    report = compare(
        torch.sign, lambda x: jnp.sign(x).astype(jnp.float32)[None], inputs=X, dtypes="float16"
    )
    assert report[0].problems == [
        "forward dtype: torch float16, jax float32",
        "forward shape: torch (3,), jax (1, 3)",
    ]
    assert report[0].verdict == "FAIL"


def test_one_line_per_mismatch_over_many_input_arrays() -> None:
    """shape= makes several input arrays (random values, edge values): the same dtype
    mismatch in each is named once."""
    report = compare(
        torch.sign, lambda x: jnp.sign(x).astype(jnp.float32), shape=(50,), dtypes="bfloat16"
    )
    assert report[0].problems == ["forward dtype: torch bfloat16, jax float32"]
    assert report[0].verdict == "FAIL" and report[0].failures == 0


def test_a_raising_function_is_still_an_error() -> None:
    def broken(x):  # type: ignore[no-untyped-def]
        raise RuntimeError("broken on purpose")

    report = compare(torch.sign, broken, inputs=X)
    assert report[0].verdict == "ERROR" and "broken on purpose" in report[0].error
    assert report[0].problems == []


def test_compare_sample_words_the_mismatch() -> None:
    x = X
    g = np.ones(3, np.float32)
    y = np.sign(x)
    res = compare_sample(x, g, (y, g), (y.astype(np.float64), g))
    assert res.problems == ["forward dtype: left float32, right float64"] and res.failures == 1
    res = compare_sample(x, g, (y, g), (y[:, None], g))
    assert res.problems == ["forward shape: left (3,), right (3, 1)"]
    res = compare_sample(x, g, (y[:2], g[:2]), (y[:2], g[:2]))
    assert res.problems == [
        "forward shape: both (2,), input (3,)",
        "gradient shape: both (2,), input (3,)",
    ]
