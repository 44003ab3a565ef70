"""Masked gradients multiply the cotangent, in torch, JAX and the oracle alike (as bitorch
0.4.1 does): an infinite cotangent where the mask is 0 gives ``inf * 0 = NaN``, not 0."""

from __future__ import annotations

import numpy as np
import pytest

from bitorch_common.quantizers import Variant, row
from parity_tests.backends import jax_runner, run_jax, run_torch
from parity_tests.cases import case_for


@pytest.mark.parametrize("key", ["approxsign", "steheaviside"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_infinite_cotangent_times_a_zero_factor_is_nan(key, dtype):
    x = np.array([2.0, -3.0, 0.5, np.nan, 0.25], dtype)
    g = np.array([np.inf, -np.inf, np.inf, 1.0, 2.0], dtype)
    case = case_for(key)
    _, torch_grad = run_torch(case.torch_fn, x, g, "cpu")
    ((_, jax_grad),) = run_jax(jax_runner(case.jax_fn), [x], [g], "cpu")
    oracle_grad = Variant(row(key)).oracle().grad(x, g)
    for name, grad in (("torch", torch_grad), ("jax", jax_grad), ("oracle", oracle_grad)):
        assert np.isnan(grad[:2]).all(), (name, grad)  # inf * 0
        assert np.isinf(grad[2]), (name, grad)  # inf * a non-zero factor
        assert np.isnan(grad[3]), (name, grad)  # a NaN input
        assert np.isfinite(grad[4]), (name, grad)
    np.testing.assert_array_equal(torch_grad, jax_grad)
    np.testing.assert_array_equal(oracle_grad, jax_grad)
