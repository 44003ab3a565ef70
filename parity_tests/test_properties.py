"""Hypothesis property tests: shapes, dtypes and values drawn at random, parity must hold.

Subnormal inputs are not drawn: XLA flushes subnormals to zero (on CPU and GPU) where
PyTorch keeps them, so they have their own tests (``test_subnormal*`` in
``test_parity_matrix.py`` and the flip tests in ``test_detects_bugs.py``) instead of
turning up here at random.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitorch_common.tolerances import DTYPES
from parity_tests.api import compare, run_case
from parity_tests.cases import registry_cases

CASES = registry_cases()
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WIDTH = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}


def _values(dtype, shape, *, small=False):
    """A strategy of arrays of ``dtype`` (bfloat16: float32 values rounded to it)."""
    if small:
        elements = st.floats(-3, 3, width=WIDTH[dtype], allow_subnormal=False)
    else:
        elements = st.floats(width=WIDTH[dtype], allow_subnormal=False)
    base = np.float32 if dtype == "bfloat16" else np.dtype(dtype)
    return hnp.arrays(base, shape, elements=elements).map(
        lambda a: a.astype(ml_dtypes.bfloat16) if dtype == "bfloat16" else a
    )


@SETTINGS
@given(data=st.data())
def test_parity_on_drawn_shapes_dtypes_and_values(data):
    case = data.draw(st.sampled_from(CASES), label="case")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    x = data.draw(_values(dtype, shape, small=data.draw(st.booleans())), label="x")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    (result,) = run_case(case, dtype=dtype, devices=["cpu"], inputs=[x], seed=seed)
    assert result.ok, str(result)
    assert result.elements == x.size


@SETTINGS
@given(data=st.data())
def test_user_api_on_drawn_inputs(data):
    """The public compare() on drawn data: a built-in pair through the user-facing path."""
    case = data.draw(st.sampled_from(CASES), label="case")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=64))
    report = compare(
        case.torch_fn,
        case.jax_fn,
        shape=shape,
        dtypes=[dtype],
        seed=data.draw(st.integers(0, 1000)),
        discrete=case.discrete,
        pre_round=case.pre_round,
        boundaries=case.boundaries,
        grad_scale=case.grad_scale,
        tensor_wide=case.tensor_wide,
        name=case.name,
        params=case.params,
    )
    assert report.ok, str(report)
