"""Layer parity: bitorch layers (torch) vs bitorch_jax layers with converted weights.

For every case of :data:`parity_tests.layers.CASES` (QLinear, QConv1d/2d/3d with stride,
dilation, groups and padding variants, QActivation; the table ``python -m parity_tests``
runs too) the output, the input gradient and the weight and bias gradients agree, for
float32 and float64:

- outputs of sign-like quantizers are sums of +-1 products (plus one bias addition), so
  they must be equal bit for bit; other outputs and every gradient within the layer
  tolerance of ``bitorch_common.tolerances`` (the reason is written there);
- NaN positions are identical, and where ``|x| > threshold`` the input gradient is
  exactly 0 in both frameworks;
- the pure function, the linen class and the NNX class all give these results.

These assertions are written with ``np.testing`` on purpose, independently of the
comparison engine of the command (:func:`parity_tests.layers.compare_layer`).
"""

from __future__ import annotations

import numpy as np
import pytest

from bitorch_common.tolerances import layer_tolerance
from parity_tests.backends import jax_x64
from parity_tests.layers import (
    CASE_IDS,
    CASES,
    Case,
    make_arrays,
    run_flax,
    run_jax,
    run_torch,
)


def assert_layer_match(
    case: Case, got: dict, want: dict, dtype: str, where: str, *, exact_forward: bool = True
) -> None:
    """Compare every result; ``exact_forward=False`` uses the tolerance for outputs too."""
    tol = layer_tolerance(dtype)
    assert sorted(got) == sorted(want), f"{where}: compared {sorted(got)} vs {sorted(want)}"
    for name in want:
        a, b = np.asarray(got[name]), np.asarray(want[name])
        assert a.shape == b.shape, f"{where} {name}: shape {a.shape} vs torch {b.shape}"
        assert a.dtype == b.dtype, f"{where} {name}: dtype {a.dtype} vs torch {b.dtype}"
        np.testing.assert_array_equal(
            np.isnan(a), np.isnan(b), err_msg=f"{where} {name}: NaN positions differ"
        )
        if name == "y" and case.exact_forward and exact_forward:
            np.testing.assert_array_equal(a, b, err_msg=f"{where} {name}: not bit-exact")
        else:
            np.testing.assert_allclose(
                a, b, rtol=tol.rtol, atol=tol.atol, err_msg=f"{where} {name} ({tol.reason})"
            )


def assert_cancelled(case: Case, arrays: dict, result: dict, where: str) -> None:
    """Where ``|x| > threshold > 0`` the input gradient is exactly zero."""
    if case.threshold == 0:
        return
    cancelled = np.abs(arrays["x"]) > case.threshold
    assert cancelled.any(), "the case table must put inputs past the threshold"
    assert np.all(result["x_grad"][cancelled] == 0), f"{where}: gradient not cancelled"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pure_function_matches_torch(case: Case, dtype: str) -> None:
    arrays = make_arrays(case, dtype)
    layer, want = run_torch(case, arrays, dtype)
    got = run_jax(case, layer, arrays)
    assert_layer_match(case, got, want, dtype, f"{case.id} pure jit {dtype}")
    assert_cancelled(case, arrays, want, "torch")
    assert_cancelled(case, arrays, got, "jax")
    # the gradients really depend on the cotangent (random, non-unit)
    assert np.any(want["x_grad"] != 0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_flax_classes_match_torch(case: Case) -> None:
    """linen and NNX classes hold the parameters; the math is the same pure function."""
    arrays = make_arrays(case, "float32", seed=1)
    layer, want = run_torch(case, arrays, "float32")
    got = run_flax(case, layer, arrays, "float32")
    for api in ("linen", "nnx"):
        assert_layer_match(case, got[api], want, "float32", f"{case.id} {api}")
        assert_cancelled(case, arrays, got[api], api)


@pytest.mark.parametrize("case", [c for c in CASES if c.n >= 0][::4], ids=lambda c: c.id)
def test_flax_classes_match_torch_float64(case: Case) -> None:
    """A sample of the table in float64 (the command runs all of it): NNX parameters are
    built in float64 (``param_dtype``), linen's come from the conversion."""
    arrays = make_arrays(case, "float64", seed=3)
    layer, want = run_torch(case, arrays, "float64")
    with jax_x64("float64"):
        got = run_flax(case, layer, arrays, "float64")
    for api in ("linen", "nnx"):
        assert_layer_match(case, got[api], want, "float64", f"{case.id} {api} float64")


def test_gpu_layers_match_torch_and_cpu(gpu, dtype: str) -> None:
    """On a GPU: torch CUDA vs JAX GPU, and each framework's GPU vs its own CPU result."""
    torch_device, jax_device = gpu
    failures = []
    for case in CASES:
        arrays = make_arrays(case, dtype, seed=2)
        layer, want_cpu = run_torch(case, arrays, dtype)
        _, want_gpu = run_torch(case, arrays, dtype, torch_device)
        got_gpu = run_jax(case, layer, arrays, jax_device)
        got_cpu = run_jax(case, layer, arrays)
        for label, got, want in (
            ("jax-gpu vs torch-gpu", got_gpu, want_gpu),
            ("torch-gpu vs torch-cpu", want_gpu, want_cpu),
            ("jax-gpu vs jax-cpu", got_gpu, got_cpu),
        ):
            try:
                # GPU convolution algorithms (Winograd, FFT) round even integer-valued sums,
                # so GPU outputs are compared within the tolerance, not bit for bit
                assert_layer_match(
                    case, got, want, dtype, f"{case.id} {label}", exact_forward=False
                )
            except AssertionError as error:
                failures.append(str(error))
    assert not failures, "\n\n".join(failures)


def test_case_table_covers_every_layer_and_variant() -> None:
    """The table holds every layer kind and the argument variants the issue names."""
    kinds = {case.n for case in CASES}
    assert kinds == {-1, 0, 1, 2, 3}
    convs = [c for c in CASES if c.n > 0]
    assert any(c.stride != 1 for c in convs)
    assert any(c.dilation != 1 for c in convs)
    assert any(c.groups > 1 for c in convs)
    assert {"same", "valid"} <= {c.padding for c in convs if isinstance(c.padding, str)}
    assert any(c.pad_value != -1.0 for c in convs)
    assert any(c.threshold == 0 for c in CASES) and any(c.bias for c in CASES)
    assert any(c.batch == () for c in convs)
    # what the command's bug checks rely on (parity_tests/test_layers_command.py)
    assert any(c.pad_value not in (0.0, -1.0, 1.0) for c in convs)  # neither 0 nor q(pad)
    odd_same = [c for c in convs if c.padding == "same" and _odd_total_pad(c)]
    assert {c.n for c in odd_same} == {1, 2, 3}  # "same" pads one more after than before
    assert any(c.threshold > 0 and c.exact_forward for c in CASES)
    assert any(not c.exact_forward for c in CASES)  # outputs within the tolerance


def _odd_total_pad(case: Case) -> bool:
    n = case.n
    dilation = (case.dilation,) * n if isinstance(case.dilation, int) else case.dilation
    return any((d * (k - 1)) % 2 for k, d in zip(case.kernel_size, dilation, strict=True))


def test_special_values_reach_every_input_kind() -> None:
    """|x| == threshold (``>`` vs ``>=``), values just past it and +-inf are in the input."""
    for case in CASES:
        x = make_arrays(case, "float32")["x"]
        t = np.float32(case.threshold)
        assert np.count_nonzero(np.abs(x) == t) >= 2, case.id
        assert np.isinf(x).any() and (np.abs(x) > t).any(), case.id
