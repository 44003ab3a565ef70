"""bitorch quantizers against the NumPy closed-form oracles of the quantizer table.

Every variant of the quantizer table x every float dtype x every input set (edge values
with and without NaN, random, random with edges, all-subnormal, all-zero, and finite
tensors whose largest magnitude is negative or positive): forward values and input
gradients under random non-unit cotangents, compared with the oracle by the parity
command's engine (``Variant.compare_to_oracle``); output/gradient dtype and shape; then
the functional forms, 0-d and empty tensors, and SPEC.md's special-point rules written
out by hand (independent of the oracles).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch

import bitorch.quantizations as bq
from bitorch_common.inputs import make_samples, random_inputs


def test_forward_and_gradient_match_oracle(case, dtype, input_set, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    x = oracle_checks.make_input(input_set, case, np_dtype)
    g = oracle_checks.cotangent(x.shape, np_dtype, seed=len(case.id))
    out, grad = oracle_checks.forward_and_grad(case, x, g, dtype)
    oracle_checks.check(case, x, g, out, grad, dtype)


def test_functional_form_matches_oracle(case, dtype, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    for x in (
        oracle_checks.edge_values(np_dtype, case.extra_edges, nan=not case.spec.tensor_wide),
        oracle_checks.make_input("peak_negative", case, np_dtype),
    ):
        g = oracle_checks.cotangent(x.shape, np_dtype, seed=3)
        xt = oracle_checks.to_torch(x, dtype).requires_grad_(True)
        out = case.apply(xt)
        out.backward(oracle_checks.to_torch(g, dtype))
        oracle_checks.check(case, x, g, out.detach(), xt.grad, dtype)


def test_zero_dim_tensors(case, dtype, oracle_checks):
    """Every edge value (NaN included) and two random values, each as a 0-d tensor."""
    np_dtype = oracle_checks.dtypes[dtype]
    rng = np.random.default_rng(5)
    values = [*oracle_checks.edge_values(np_dtype, case.extra_edges)]
    values += [random_inputs((), np_dtype, rng) for _ in range(2)]
    samples = [np.asarray(v, np_dtype) for v in values]
    samples += make_samples((), np_dtype, rng, tensor_wide=case.spec.tensor_wide)
    for i, x in enumerate(samples):
        assert x.shape == ()
        g = oracle_checks.cotangent((), np_dtype, seed=i)
        out, grad = oracle_checks.forward_and_grad(case, x, g, dtype)
        assert out.dim() == 0 and grad.dim() == 0, f"{case.id}: 0-d input lost its shape"
        oracle_checks.check(case, x, g, out, grad, dtype)


@pytest.mark.parametrize("shape", [(0,), (2, 0, 3)], ids=["0", "2x0x3"])
def test_empty_tensors(case, dtype, shape, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    x = np.zeros(shape, np_dtype)
    g = np.ones(shape, np_dtype)
    out, grad = oracle_checks.forward_and_grad(case, x, g, dtype)
    assert out.shape == shape and out.dtype == dtype
    assert grad.shape == shape and grad.dtype == dtype
    oracle_checks.check(case, x, g, out, grad, dtype)


def test_non_contiguous_input(case, oracle_checks):
    """A transposed view gives the same result as its contiguous copy (oracle values)."""
    np_dtype = np.dtype(np.float32)
    x = oracle_checks.random_values(np_dtype, (6, 5), seed=11)
    g = oracle_checks.cotangent((5, 6), np_dtype, seed=11)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = case.make()(xt.T)
    out.backward(torch.from_numpy(g))
    # forward on x.T with cotangent g; the gradient reaches x transposed back
    oracle_checks.check(case, x.T.copy(), g, out.detach(), xt.grad.T, torch.float32)


def test_unit_inputs_hold_what_they_claim(oracle_checks):
    """The input sets really hold what the tests claim (guards against edits)."""
    for np_dtype in oracle_checks.dtypes.values():
        tiny = float(ml_dtypes.finfo(np_dtype).smallest_normal)
        for case in oracle_checks.cases:
            make = oracle_checks.make_input
            sets = {n: make(n, case, np_dtype) for n in oracle_checks.input_sets}
            edges = sets["edges"].astype(np.float64)
            for v in (0.0, 1.0, -1.0, np.inf, -np.inf, 2.0, -2.0, 0.5, -0.5):
                assert (edges == v).any(), (case.id, np_dtype, v)
            assert np.isnan(edges).any() and not np.isnan(sets["finite_edges"].astype(float)).any()
            zeros = edges[edges == 0]
            assert np.signbit(zeros).any() and (~np.signbit(zeros)).any()
            sub = sets["subnormal"].astype(np.float64)
            assert ((sub != 0) & (np.abs(sub) < tiny)).all(), (case.id, np_dtype)
            assert (sub > 0).any() and (sub < 0).any()
            z = sets["zeros"].astype(np.float64)
            assert (z == 0).all() and np.signbit(z).any() and (~np.signbit(z)).any()
            for name, sign in (("peak_negative", -1), ("peak_positive", 1)):
                p = sets[name].astype(np.float64)
                assert np.isfinite(p).all() and np.abs(p).max() < 2
                peak = p.ravel()[np.argmax(np.abs(p))]
                assert np.sign(peak) == sign and np.abs(peak) > (-sign * p).max()
                assert (p > 0).any() and (p < 0).any()
            assert np.isfinite(sets["random_3d"].astype(np.float64)).all()
            assert sets["random_3d"].ndim == sets["mixed_3d"].ndim == 3


# --------------------------------------------------------------------------- SPEC rules
# SPEC.md's rules at the special points, written out by hand rather than taken from the
# oracles, so an oracle and an implementation that share a mistake still fail here.
# x = [0, -0, 1, -1, 1+ulp, -(1+ulp), inf, -inf, NaN]. Forward: expected q(x). Gradient:
# expected dq/dx as a multiple of g; None = not a special point for this quantizer.

POINTS = ("0", "-0", "1", "-1", "1+", "-1-", "inf", "-inf", "nan")
NAN = math.nan
SIGN_FWD = (1, 1, 1, -1, 1, -1, 1, -1, NAN)
PASS_GRAD = (1,) * 9
SPEC_RULES = {
    "sign": (SIGN_FWD, PASS_GRAD),
    "approxsign": (SIGN_FWD, (2, 2, 0, 0, 0, 0, 0, 0, NAN)),
    "swishsign": (SIGN_FWD, ("beta", "beta", None, None, None, None, 0, 0, NAN)),
    "steheaviside": ((-1, -1, 1, -1, 1, -1, 1, -1, NAN), (1, 1, 1, 1, 0, 0, 0, 0, NAN)),
    "inputdorefa": ((0, 0, 1, 0, 1, 0, 1, 0, NAN), PASS_GRAD),
    "identity": ((0, -0.0, 1, -1, "x", "x", math.inf, -math.inf, NAN), PASS_GRAD),
}


@pytest.mark.case_keys(*SPEC_RULES)  # weightdorefa's per-tensor rules: test_weightdorefa_*
def test_spec_rules_at_special_points(case, dtype, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    one = np.array(1, np_dtype)
    up = np.nextafter(one, np.array(2, np_dtype))
    x = np.array([0.0, -0.0, 1, -1, up, -up, np.inf, -np.inf, np.nan]).astype(np_dtype)
    g = oracle_checks.cotangent(x.shape, np_dtype, seed=5)
    out, grad = oracle_checks.forward_and_grad(case, x, g, dtype)
    out64 = oracle_checks.to_numpy(out).astype(np.float64)
    grad64 = oracle_checks.to_numpy(grad).astype(np.float64)
    fwd_rule, grad_rule = SPEC_RULES[case.key]
    for i, point in enumerate(POINTS):
        want = float(x[i]) if fwd_rule[i] == "x" else fwd_rule[i]
        got = out64[i]
        assert (math.isnan(want) and math.isnan(got)) or got == want, (
            f"{case.id} forward at {point}: got {got}, SPEC says {want}"
        )
        factor = case.params["beta"] if grad_rule[i] == "beta" else grad_rule[i]
        if factor is None:
            continue
        want_g = float((np.float64(factor) * g[i].astype(np.float64)).astype(np_dtype))
        got_g = grad64[i]
        assert (math.isnan(want_g) and math.isnan(got_g)) or got_g == want_g, (
            f"{case.id} gradient at {point}: got {got_g}, SPEC says {factor} * g = {want_g}"
        )


@pytest.mark.parametrize("beta", [1.0, 5.0, 10.0])
def test_swishsign_gradient_of_huge_finite_inputs_is_zero(beta, dtype):
    """Far past the threshold the SwishSign gradient is the limit 0, not NaN, even where
    beta * x overflows the compute dtype (the largest finite float32/float64/bfloat16)."""
    info = torch.finfo(dtype)
    x = torch.tensor([info.max, -info.max, 1e4, -1e4], dtype=dtype, requires_grad=True)
    g = torch.tensor([1.5, -0.7, 2.5, -0.4], dtype=dtype)
    bq.SwishSign(beta=beta)(x).backward(g)
    assert torch.all(x.grad == 0), f"swishsign(beta={beta}) gradient at huge x: {x.grad}"


# --------------------------------------------------------------------------- weightdorefa


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_weightdorefa_nan_anywhere_makes_all_nan(bits, dtype):
    x = torch.tensor([0.5, -2.0, math.nan, 0.0, 1.0], dtype=dtype, requires_grad=True)
    g = torch.tensor([0.3, -1.7, 2.2, 0.9, -0.6], dtype=dtype)
    out = bq.WeightDoReFa(bits=bits)(x)
    assert torch.isnan(out).all(), f"NaN in one element must make all NaN, got {out}"
    out.backward(g)
    assert torch.equal(x.grad, g), "the pass-through gradient stays g, NaN input or not"


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("zero", [0.0, -0.0], ids=["+0", "-0"])
def test_weightdorefa_all_zero_input(bits, zero, dtype, oracle_checks):
    """t / (2m) is taken as 0, so every element is the level of pre-round value n / 2,
    rounded half to even (n odd): 2 * round(n / 2) / n - 1 (upstream gives NaN)."""
    n = 2**bits - 1
    k = round(n / 2)  # Python's round is half-to-even too
    compute = torch.float64 if dtype == torch.float64 else torch.float32  # SPEC: halves in f32
    want = (2 * torch.full((2, 3), k, dtype=compute) / n - 1).to(dtype)
    x = torch.full((2, 3), zero, dtype=dtype, requires_grad=True)
    out = bq.WeightDoReFa(bits=bits)(x)
    assert torch.equal(out, want), f"all-zero weightdorefa(bits={bits}): {out}"
    g = torch.tensor([[0.3, -1.2, 2.0], [0.7, -0.2, 1.4]], dtype=dtype)
    out.backward(g)
    assert torch.equal(x.grad, g)
    case = oracle_checks.case_by_id(f"weightdorefa-bits{bits}")
    to_np = oracle_checks.to_numpy
    oracle_checks.check(case, to_np(x), to_np(g), out.detach(), x.grad, dtype)


def test_weightdorefa_scales_by_whole_tensor_max():
    """m is the maximum over the whole tensor, not per row: scaling one row's values down
    does not change their levels relative to the other row's maximum."""
    x = torch.tensor([[3.0, 0.2], [0.2, -0.1]])
    n = 3
    t = np.tanh(np.array([[3.0, 0.2], [0.2, -0.1]], np.float64))
    want = 2 * np.round((t / (2 * np.abs(t).max()) + 0.5) * n) / n - 1
    got = bq.WeightDoReFa(bits=2)(x).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    per_row = [bq.WeightDoReFa(bits=2)(row).numpy() for row in x]
    assert not np.allclose(np.stack(per_row), got), "the test input must tell the two apart"


@pytest.mark.parametrize("sign", [-1.0, 1.0], ids=["negative-peak", "positive-peak"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weightdorefa_scales_by_max_abs_of_tanh(sign, bits):
    """m = max|tanh x|: the absolute value matters when the largest magnitude is negative,
    and tanh comes before the maximum (max|x| is larger). Finite input, no saturation."""
    x = sign * np.array([1.75, 0.6, -0.8, 0.1, -0.35, 0.0, 0.45])
    t = np.tanh(x)
    n = 2**bits - 1

    def levels(m):
        return 2 * np.round((t / (2 * m) + 0.5) * n) / n - 1

    want = levels(np.abs(t).max())
    wrong = levels(t.max()) if sign < 0 else levels(np.abs(x).max())
    assert not np.array_equal(want, wrong), "the test input must tell the two apart"
    got = bq.WeightDoReFa(bits=bits)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_large_half_precision_tensors_match_oracle(oracle_checks):
    """A larger float16 / bfloat16 tensor still matches the float32-computed oracle."""
    for dtype in (torch.float16, torch.bfloat16):
        np_dtype = oracle_checks.dtypes[dtype]
        x = oracle_checks.random_values(np_dtype, (4096,), seed=21)
        g = oracle_checks.cotangent(x.shape, np_dtype, seed=21)
        for case in oracle_checks.cases:
            out, grad = oracle_checks.forward_and_grad(case, x, g, dtype)
            oracle_checks.check(case, x, g, out, grad, dtype)
