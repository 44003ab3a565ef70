"""Deliberately wrong JAX quantizers make the API and the command fail and name the elements;
boundary flips are detected, counted and shown; a flip far from a boundary fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bitorch.quantizations as bt
from bitorch_common.oracles import oracle
from bitorch_common.tolerances import FLIP_ULPS
from bitorch_jax.quantizations import straight_through
from parity_tests import compare
from parity_tests.__main__ import main
from parity_tests.cases import Case

REPO = Path(__file__).resolve().parents[1]


# --- deliberately wrong JAX quantizers -------------------------------------------------


@jax.custom_vjp
def approxsign_double_inside(x):
    """ApproxSign whose gradient is off by a factor of 2 inside |x| < 0.5."""
    return jnp.where(jnp.isnan(x), x, jnp.where(x < 0, -1.0, 1.0).astype(x.dtype))


def _fwd(x):
    return approxsign_double_inside(x), x


def _bwd(x, g):
    a = jnp.abs(x)
    grad = jnp.where(a > 1, 0.0, g * (2 - 2 * a))
    return (jnp.where(a < 0.5, 2 * grad, grad).astype(x.dtype),)


approxsign_double_inside.defvjp(_fwd, _bwd)


@straight_through
def sign_zero_is_minus_one(x):
    """Sign that maps 0 (and -0.0) to -1 instead of +1."""
    return jnp.where(jnp.isnan(x), x, jnp.where(x > 0, 1.0, -1.0).astype(x.dtype))


@straight_through
def sign_nan_is_one(x):
    """Sign that maps NaN to +1 (bitorch 0.4.1's behaviour, not SPEC's)."""
    return jnp.where(x < 0, -1.0, 1.0).astype(x.dtype)


X = np.array([-2.0, -0.7, -0.3, -0.0, 0.0, 0.2, 0.45, 0.5, 0.9, 1.0, np.nan], np.float32)


def test_api_names_the_elements_of_a_wrong_gradient():
    orc = oracle("approxsign")
    report = compare(
        bt.ApproxSign(),
        approxsign_double_inside,
        inputs=X,
        pre_round=orc.pre_round,
        boundaries="zero",
        name="approxsign-wrong",
    )
    assert not report.ok
    (result,) = report.results
    assert result.verdict == "FAIL"
    bad = [e for e in result.failure_list if e.kind == "gradient"]
    inside = np.flatnonzero(np.abs(X) < 0.5)
    assert sorted(e.index[0] for e in bad) == sorted(inside.tolist())
    for e in bad:
        assert e.input == float(X[e.index[0]])
        assert e.right == pytest.approx(2 * e.left)  # jax = 2 x torch
    assert result.failures == inside.size
    text = str(report)
    assert "FAIL approxsign-wrong" in text
    for e in bad:
        assert e.describe() in text
    assert "gradient at [2]: input=-0.30000001192092896" in text
    assert "torch=" in text and "jax=" in text


def test_api_names_the_elements_of_a_wrong_sign_at_zero():
    report = compare(bt.Sign(), sign_zero_is_minus_one, inputs=X, boundaries="zero")
    assert not report.ok
    (result,) = report.results
    assert [e.index for e in result.failure_list] == [(3,), (4,)]  # -0.0 and 0.0
    assert all(e.kind == "forward" and e.left == 1 and e.right == -1 for e in result.failure_list)
    assert result.flips == 0  # a tie at 0 is decided by the convention, never a flip
    assert "forward at [4]: input=0.0" in str(report)


def test_api_fails_on_nan_positions():
    report = compare(bt.Sign(), sign_nan_is_one, inputs=X, boundaries="zero")
    (result,) = report.results
    assert not result.ok
    assert [e.kind for e in result.failure_list] == ["forward NaN"]
    assert result.failure_list[0].index == (10,)


def test_api_wrong_quantizer_fails_with_generated_inputs_too():
    report = compare(
        bt.ApproxSign(),
        approxsign_double_inside,
        shape=(2, 50),
        dtypes=["float32", "bfloat16"],
        boundaries="zero",
    )
    assert [r.verdict for r in report] == ["FAIL", "FAIL"]
    for result in report:
        for e in result.failure_list:
            assert abs(e.input) < 0.5 and len(e.index) == 2


# --- the command --------------------------------------------------------------------------

PLUGIN = """
import jax.numpy as jnp
import bitorch.quantizations as bt
from bitorch_jax.quantizations import straight_through
from parity_tests.cases import Case


@straight_through
def _wrong_sign(x):
    return jnp.where(jnp.isnan(x), x, jnp.where(x > 0, 1.0, -1.0).astype(x.dtype))


CASES = [Case(name="wrongsign", torch_fn=bt.Sign(), jax_fn=_wrong_sign,
              pre_round=lambda x: x, boundaries="zero")]
"""


def test_cli_fails_and_names_elements_for_an_extra_case(capsys, tmp_path):
    case = Case(
        name="approxsign-wrong",
        torch_fn=bt.ApproxSign(),
        jax_fn=approxsign_double_inside,
        pre_round=lambda x: x,
        boundaries="zero",
        grad_scale=2.0,
    )
    out_json = tmp_path / "r.json"
    code = main(
        ["--quantizers", "approxsign-wrong", "approxsign", "--dtypes", "float32",
         "--size", "300", "--quiet", "--json", str(out_json)],
        extra_cases=[case],
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL approxsign-wrong - float32 cpu (torch vs jax)" in out
    assert "gradient at [" in out and "cotangent=" in out
    rows = {r["quantizer"]: r for r in json.loads(out_json.read_text())["results"]}
    assert rows["approxsign"]["verdict"] == "PASS"
    bad = rows["approxsign-wrong"]
    assert bad["verdict"] == "FAIL" and bad["failures"] > 0
    for e in bad["failing_elements"]:
        assert abs(e["input"]) < 0.5 and e["right"] == pytest.approx(2 * e["left"])
    assert "FAIL: see above" in out


def test_cli_plugin_in_a_subprocess(tmp_path):
    """The real command line, with a wrong pair loaded by ``--plugin``."""
    (tmp_path / "wrong_plugin.py").write_text(textwrap.dedent(PLUGIN))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "parity_tests", "--plugin", "wrong_plugin:CASES",
         "--quantizers", "wrongsign", "sign", "--dtypes", "float32", "--size", "200"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "wrongsign" in proc.stdout and "FAIL" in proc.stdout
    assert "forward at [" in proc.stdout and "input=0.0" in proc.stdout
    assert "input=-0.0" in proc.stdout
    assert proc.stderr == ""  # no progress indicator when stderr is not a terminal


# --- boundary flips -----------------------------------------------------------------------


def _nudged_input_dorefa(bits, shift):
    """input_dorefa whose pre-round value is moved by ``shift`` (a function of it)."""
    n = 2**bits - 1

    @straight_through
    def q(x):
        pre = jnp.clip(x, 0, 1) * n
        return (jnp.round(shift(pre)) / n).astype(x.dtype)

    return q


def test_a_flip_at_a_boundary_is_counted_and_shown():
    bits = 1
    x = np.array([0.5, 0.25, 0.5, 0.75, -1.0, 2.0, 0.49], np.float32)  # 0.5 is a tie
    up_one_ulp = _nudged_input_dorefa(bits, lambda p: jnp.nextafter(p, jnp.inf))
    report = compare(
        bt.InputDoReFa(bits=bits),
        up_one_ulp,
        inputs=x,
        pre_round=oracle("inputdorefa", bits=bits).pre_round,
        boundaries="half",
        name="inputdorefa-nudged",
        params={"bits": bits},
    )
    (result,) = report.results
    assert result.ok and result.verdict == "PASS"
    assert result.flips == 2
    assert [e.index for e in result.flip_list] == [(0,), (2,)]
    assert all(e.left == 0.0 and e.right == 1.0 and e.pre_round == 0.5 for e in result.flip_list)
    row = result.table().splitlines()[2]
    assert row.split()[-2:] == ["2", "PASS"]  # the flips column and the verdict
    assert "boundary flips in inputdorefa-nudged bits=1" in str(result)
    assert "flip at [0]: input=0.5, pre-round=0.5" in str(result)
    assert "2 boundary flip(s) in 1 row(s)" in report.summary()


def test_a_flip_just_outside_the_window_fails():
    bits = 8
    n = 2**bits - 1
    # pre-round value (K + 2) ulps above the boundary at 0.5 (ulps at the scale n):
    window_ulp = 2.0**-23 * 128  # ulp of float32 at [128, 256)
    pre = np.float32(0.5 + (FLIP_ULPS + 2) * window_ulp)
    x = np.array([pre / n, 1.0], np.float32)  # 1.0 makes the largest pre-round value n
    down = _nudged_input_dorefa(bits, lambda p: jnp.where(p < 1, p - 0.001, p))
    report = compare(
        bt.InputDoReFa(bits=bits),
        down,
        inputs=x,
        pre_round=oracle("inputdorefa", bits=bits).pre_round,
        boundaries="half",
    )
    (result,) = report.results
    assert result.flips == 0 and result.failures == 1
    assert result.failure_list[0].index == (0,)


def test_a_flip_far_from_a_boundary_fails():
    bits = 2
    x = np.array([0.0, 0.34, 0.35, 0.5, 0.9], np.float32)
    far = _nudged_input_dorefa(bits, lambda p: jnp.where((p > 0.9) & (p < 1.2), p + 0.5, p))
    report = compare(
        bt.InputDoReFa(bits=bits),
        far,
        inputs=x,
        pre_round=oracle("inputdorefa", bits=bits).pre_round,
        boundaries="half",
    )
    (result,) = report.results
    assert not result.ok and result.flips == 0
    assert [e.index for e in result.failure_list] == [(1,), (2,)]
    assert "forward at [1]: input=0.3400000035762787, pre-round=1.0199999809265137" in str(result)


def test_a_subnormal_that_flushes_to_zero_is_a_failure_not_a_flip():
    """Sign thresholds the input itself, exactly: no element may flip, subnormals included."""
    x = np.array([-1e-45, -1e-39, -1e-30, 0.5], np.float32)

    @straight_through
    def flushes_below_1e_25(x):  # treats |x| < 1e-25 as +0, like a flush-to-zero backend
        return jnp.where(x < -1e-25, -1.0, 1.0).astype(x.dtype)

    report = compare(bt.Sign(), flushes_below_1e_25, inputs=x, boundaries="zero")
    (result,) = report.results
    assert result.flips == 0 and result.failures == 3
    assert [e.index for e in result.failure_list] == [(0,), (1,), (2,)]
    assert "computed exactly" in str(result)
