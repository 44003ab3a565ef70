"""Forward and gradient parity: case table × dtypes × shapes × devices.

Every row of the case table (built from both registries, with the parameter variants)
is compared for float32, float64, float16 and bfloat16, for a 0-d, an empty, a 1-d, a
4-d and a large array, on CPU and (when present) GPU. Inputs are random values plus
SPEC.md's edge values; cotangents are random and non-unit.
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np
import pytest

from bitorch_common.inputs import ZERO_D_EDGES, edge_values
from bitorch_common.tolerances import DTYPES
from parity_tests.api import run_case_groups
from parity_tests.backends import DEVICES, gpu_status
from parity_tests.cases import registry_cases

CASES = registry_cases()
SHAPES = {"0d": (), "empty": (0,), "1d": (257,), "4d": (2, 3, 4, 5), "large": (2**16,)}

# Subnormals get their own arrays: XLA flushes them to zero (on CPU and GPU) where
# PyTorch keeps them, so they are checked here on purpose, not left to chance.
SUBNORMALS = {
    "float32": {
        "subnormal-mixed": np.array([1e-45, -1e-45, 3e-39, -3e-39, 0.7, -1.3, 0.0], np.float32),
        "subnormal-only": np.array([1e-45, -3e-45, 1e-40, 0.0], np.float32),
    },
    "float64": {
        "subnormal-mixed": np.array([5e-324, -5e-324, 1e-310, -1e-310, 0.7, -1.3, 0.0]),
        "subnormal-only": np.array([5e-324, -1e-320, 1e-310, 0.0]),
    },
}


def require_device(device: str) -> None:
    """Skip, saying why, when ``device`` is the GPU and there is none."""
    if device == "gpu":
        present, reason = gpu_status()
        if not present:
            pytest.skip(f"no CUDA GPU: {reason}")


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


@functools.cache
def _matrix_rows(case_index: int, dtype: str, device: str) -> dict:
    """Every shape of one case/dtype/device, plus the edge values alone, in one run (a few
    JAX compilations instead of one per shape), cached so the tests below share it."""
    case = CASES[case_index]
    groups = {name: shape for name, shape in SHAPES.items()}
    groups["edges"] = [edge_values(dtype, case.extra_edges, nan=not case.tensor_wide)]
    if device == "cpu":
        groups.update({k: [v] for k, v in SUBNORMALS.get(dtype, {}).items()})
    return run_case_groups(
        case, dtype=dtype, groups=groups, devices=[device], seed=_seed(case.label, dtype)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.label for c in CASES])
def test_forward_and_gradient_parity(index, dtype, shape, device):
    require_device(device)
    case = CASES[index]
    results = _matrix_rows(index, dtype, device)[shape]
    shape = SHAPES[shape]
    expected_rows = {"cpu": ["cpu"], "gpu": ["gpu", "torch cpu/gpu", "jax cpu/gpu"]}[device]
    assert [r.device for r in results] == expected_rows
    n_edges = edge_values(dtype, case.extra_edges, nan=not case.tensor_wide).size
    if shape == ():
        expected = min(n_edges, ZERO_D_EDGES) + 1 + (1 if case.tensor_wide else 0)
    else:
        # the main array, an all-subnormal and an all-zero one; tensor-wide cases also one
        # with NaN and two asymmetric finite ones (bitorch_common.inputs.make_samples)
        n = math.prod(shape)
        expected = n * (1 + (2 if n else 0) + (3 if case.tensor_wide and n else 0))
    for result in results:
        assert result.ok, str(result)
        assert result.elements == expected  # every element of every input was compared


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.label for c in CASES])
def test_edge_values_alone(index, dtype):
    """Every edge value in one small array (nothing random)."""
    case = CASES[index]
    (result,) = _matrix_rows(index, dtype, "cpu")["edges"]
    assert result.ok, str(result)
    assert result.elements == edge_values(dtype, case.extra_edges, nan=not case.tensor_wide).size


@pytest.mark.parametrize("dtype", list(SUBNORMALS))
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.label for c in CASES])
def test_subnormals_next_to_normal_values(index, dtype):
    """Subnormals among normal values: every quantizer agrees (sign-like thresholds read
    the sign bit; a flip at 0 would be counted, never a failure)."""
    (result,) = _matrix_rows(index, dtype, "cpu")["subnormal-mixed"]
    assert result.ok, str(result)


@pytest.mark.parametrize("dtype", list(SUBNORMALS))
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.label for c in CASES])
def test_subnormal_only_inputs(index, dtype):
    """Only subnormals (and 0): weightdorefa takes subnormal tanh values as 0 in every
    framework, so the all-zero rule applies in both."""
    (result,) = _matrix_rows(index, dtype, "cpu")["subnormal-only"]
    assert result.ok, str(result)


def test_inputs_contain_every_edge_value():
    """The arrays the matrix uses really hold 0, -0.0, ±1, NaN, ±inf and the thresholds."""
    from bitorch_common.inputs import make_samples

    x, subnormal, zeros = make_samples((257,), "float32", np.random.default_rng(0))
    tiny = np.finfo(np.float32).tiny
    assert ((np.abs(subnormal) < tiny) & (subnormal != 0)).all() and (subnormal < 0).any()
    assert not zeros.any() and np.signbit(zeros).any() and not np.signbit(zeros).all()
    assert (x == 0).sum() >= 2 and np.signbit(x[x == 0]).any()
    for v in (1.0, -1.0, np.inf, -np.inf, np.nextafter(np.float32(1), np.float32(2))):
        assert (x == np.float32(v)).any(), v
    assert np.isnan(x).any()
    assert (np.abs(x) > 1).sum() > 50 and (np.abs(x) < 1).sum() > 50


def test_tensor_wide_cases_compare_nan_zero_and_asymmetric_arrays():
    from bitorch_common.inputs import make_samples

    main, _, zeros, with_nan, negative_peak, positive_peak = make_samples(
        (100,), "float32", np.random.default_rng(0), tensor_wide=True
    )
    assert not np.isnan(main).any() and np.isnan(with_nan).sum() == 1
    assert not zeros.any()
    for arr, sign in ((negative_peak, -1), (positive_peak, 1)):
        assert np.isfinite(arr).all()
        peak = arr[np.argmax(np.abs(arr))]
        assert np.sign(peak) == sign and (np.abs(arr) == abs(peak)).sum() == 1
