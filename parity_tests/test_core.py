"""The comparison core and the tolerance table, on hand-made arrays (no frameworks)."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from bitorch_common.comparison import compare_sample, flip_eligible, flip_window
from bitorch_common.tolerances import (
    DTYPES,
    FLIP_REASON,
    FLIP_ULPS,
    GRAD_TOLERANCES,
    LAYER_TOLERANCES,
    dtype_name,
    grad_tolerance,
    layer_tolerance,
    ulp,
)
from parity_tests.report import COLUMNS, ParityReport, ParityResult

BF16 = ml_dtypes.bfloat16


def test_every_dtype_has_a_reasoned_tolerance():
    assert set(GRAD_TOLERANCES) == set(DTYPES) == set(LAYER_TOLERANCES)
    for dtype in DTYPES:
        assert len(grad_tolerance(dtype).reason) > 80
        assert len(layer_tolerance(dtype).reason) > 80
    assert isinstance(FLIP_ULPS, int) and FLIP_ULPS == 4 and str(FLIP_ULPS) in FLIP_REASON
    # halves: one ulp of the half dtype; full precision: no elementwise slack
    assert grad_tolerance("float16").dtype_ulps == grad_tolerance("bfloat16").dtype_ulps == 1
    assert grad_tolerance("float32").dtype_ulps == grad_tolerance("float64").dtype_ulps == 0


@pytest.mark.parametrize("spelling", ["bfloat16", BF16, "torch.bfloat16", np.dtype(BF16)])
def test_dtype_names(spelling):
    assert dtype_name(spelling) == "bfloat16"


def test_bad_dtypes_are_rejected():
    with pytest.raises(ValueError, match="unsupported dtype 'int32'"):
        dtype_name("int32")
    with pytest.raises(TypeError):
        dtype_name("no-such-dtype")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ulp_matches_numpy_spacing(dtype):
    rng = np.random.default_rng(0)
    v = (rng.standard_normal(1000) * 10.0 ** rng.integers(-3, 4, 1000)).astype(dtype)
    v = np.concatenate([v, np.array([0, 1, 2, 0.5, np.finfo(dtype).tiny], dtype)])
    np.testing.assert_array_equal(ulp(v, dtype), np.spacing(np.abs(v)).astype(np.float64))


def test_ulp_of_bfloat16():
    assert ulp(1.0, "bfloat16") == 2.0**-7
    assert ulp(0.0, "bfloat16") == float(ml_dtypes.finfo(BF16).smallest_subnormal)


def test_flip_window_and_eligibility():
    tiny = np.finfo(np.float32).tiny
    # zero boundary: only within K smallest normals, and never exactly 0
    p = np.array([0.0, -0.0, 1e-45, -2 * tiny, -5 * tiny, 1e-7, np.nan], np.float32)
    w = flip_window(p, "zero", "float32")
    assert w == FLIP_ULPS * tiny
    assert flip_eligible(p, "zero", w).tolist() == [False, False, True, True, False, False, False]
    # half boundary: K ulps at the largest pre-round value; a tie is eligible
    p = np.array([255.0, 0.5, 127.5 + 2 * 2.0**-16, 127.5 + 9 * 2.0**-16, 3.0, np.inf])
    w = flip_window(p, "half", "float32")
    assert w == FLIP_ULPS * 2.0**-16  # ulp of float32 at 255
    assert flip_eligible(p, "half", w).tolist() == [False, True, True, False, False, False]
    # halves use the compute dtype (float32) for the window
    assert flip_window(p.astype(np.float32), "half", "bfloat16") == w


def _same(y):
    return (y, np.ones_like(y))


def test_discrete_outputs_must_be_equal_and_signed_zero_is_equal():
    x = np.array([0.0, 1.0, 2.0], np.float32)
    g = np.ones(3, np.float32)
    a = (np.array([0.0, 1.0, 1.0], np.float32), g)
    b = (np.array([-0.0, 1.0, 1.0], np.float32), g)
    assert compare_sample(x, g, a, b).failures == 0
    c = (np.array([0.0, 1.0, 1.0000001], np.float32), g)
    res = compare_sample(x, g, a, c)
    assert res.failures == 1 and res.failure_list[0].index == (2,)
    assert res.max_forward_diff == pytest.approx(1.1920929e-07)


def test_nan_positions_must_match_in_forward_and_gradient():
    x = np.array([np.nan, 1.0], np.float32)
    g = np.array([0.5, 2.0], np.float32)
    y = np.array([np.nan, 1.0], np.float32)
    assert compare_sample(x, g, (y, g), (y, g)).failures == 0
    res = compare_sample(x, g, (y, g), (np.array([1.0, 1.0], np.float32), g))
    assert [e.kind for e in res.failure_list] == ["forward NaN"]
    gn = np.array([0.5, np.nan], np.float32)
    res = compare_sample(x, g, (y, g), (y, gn))
    assert [(e.kind, e.index) for e in res.failure_list] == [("gradient NaN", (1,))]


def test_gradient_tolerance_float32():
    x = np.zeros(3, np.float32)
    g = np.array([1.0, -2.0, 0.5], np.float32)
    ga = np.array([1.0, 0.001, -0.25], np.float32)
    # S = 1 (the largest |grad/g|): allowed = 4 * eps * |g|
    ok = ga + np.array([3, 7, 1], np.float32) * np.float32(2.0**-23)
    bad = ga + np.array([0, 9, 0], np.float32) * np.float32(2.0**-23)
    y = np.zeros(3, np.float32)
    assert compare_sample(x, g, (y, ga), (y, ok)).failures == 0
    res = compare_sample(x, g, (y, ga), (y, bad))
    assert res.failures == 1 and res.failure_list[0].index == (1,)
    assert res.failure_list[0].allowed == pytest.approx(4 * 2.0**-23 * 2)
    # an exactly specified gradient gets no tolerance at all
    exact = compare_sample(x, g, (y, ga), (y, ok), grad_exact=True)
    assert exact.failures == 3 and [e.index for e in exact.failure_list] == [(0,), (1,), (2,)]


def test_gradient_tolerance_scale_is_an_upper_bound_of_the_factor():
    x = np.zeros(1, np.float32)
    g = np.ones(1, np.float32)
    y = np.zeros(1, np.float32)
    a, b = np.float32([1e-3]), np.float32([1e-3 + 4e-6])
    assert compare_sample(x, g, (y, a), (y, b), grad_scale=10.0).failures == 0  # 4*eps*10
    assert compare_sample(x, g, (y, a), (y, b), grad_scale=1.0).failures == 1


def test_half_gradients_may_differ_by_one_ulp_of_the_half_dtype():
    x = np.zeros(2, BF16)
    g = np.ones(2, BF16)
    y = np.zeros(2, BF16)
    a = np.array([1.0, 1.0], BF16)
    b = np.array([1.0 + 2.0**-7, 1.0 + 2.0**-6], BF16)  # 1 ulp, 2 ulps
    res = compare_sample(x, g, (y, a), (y, b))
    assert res.failures == 1 and res.failure_list[0].index == (1,)


def test_non_finite_gradients_must_be_equal():
    x = np.zeros(2, np.float64)
    g = np.ones(2, np.float64)
    y = np.zeros(2, np.float64)
    a = np.array([np.inf, -np.inf])
    assert compare_sample(x, g, (y, a), (y, a.copy())).failures == 0
    res = compare_sample(x, g, (y, a), (y, np.array([np.inf, 1e308])))
    assert res.failures == 1 and res.max_grad_diff == np.inf


def test_continuous_forward_uses_the_tolerance_and_shape_dtype_mismatch_fails():
    x = np.array([1.0, 2.0], np.float32)
    g = np.ones(2, np.float32)
    y = x.copy()
    near = x + np.float32(2.0**-22)  # within 8 eps * 2
    far = x + np.float32(1e-3)
    assert compare_sample(x, g, (y, g), (near, g), discrete=False).failures == 0
    assert compare_sample(x, g, (y, g), (far, g), discrete=False).failures == 2
    res = compare_sample(x, g, (y, g), (y.astype(np.float64), g))
    assert res.failures and "dtype" in res.problems[0]


def test_report_renders_the_table_and_json():
    good = ParityResult("sign", "-", "float32", "cpu", elements=10)
    bad = ParityResult("x", "bits=2", "float16", "cpu", failures=1, max_grad_diff=np.inf)
    err = ParityResult("y", "-", "float64", "cpu", error="RuntimeError: boom")
    report = ParityReport([good, bad, err], skipped=["GPU: not present, skipped (test)"])
    table = report.table().splitlines()
    assert table[0].split("  ")[0] == "quantizer"
    for column in COLUMNS:
        assert column in table[0]
    assert table[2].split() == ["sign", "-", "float32", "cpu", "0", "0", "0", "PASS"]
    assert table[3].split()[-3:] == ["inf", "0", "FAIL"]
    assert table[4].split()[-1] == "ERROR"
    assert not report.ok and len(report.failed) == 2
    text = str(report)
    assert "GPU: not present, skipped" in text and "RuntimeError: boom" in text
    data = json.loads(report.to_json(seed=3))
    assert data["seed"] == 3 and data["ok"] is False
    assert data["results"][1]["max_grad_diff"] == "inf"
    assert ParityReport([good]).ok and not ParityReport([]).ok
