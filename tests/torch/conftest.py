"""Case table, inputs and oracle checks shared by the bitorch (PyTorch) unit tests.

One case table, :data:`CASES`, drives every parametrized test here: a test function that
takes an argument named ``case`` runs once per entry, one that takes ``dtype`` once per
supported float dtype, one that takes ``input_set`` once per input set of
:func:`make_input` (see :func:`pytest_generate_tests`). Expected values always come
from the NumPy closed forms in :mod:`bitorch_common.oracles`, never from bitorch itself.

Example (what a test in this folder looks like)::

    def test_bit_width(case):
        assert case.make().bit_width == case.bit_width
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import bitorch.quantizations as bq
from bitorch_common.oracles import Oracle, oracle

BF16 = np.dtype(ml_dtypes.bfloat16)

# torch dtype -> NumPy dtype of the same format.
DTYPES: dict[torch.dtype, np.dtype] = {
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: BF16,
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
}


@dataclass(frozen=True)
class Case:
    """One quantizer with fixed hyperparameters.

    ``bit_width`` is the value SPEC.md gives; ``grad_ulps`` is 0 where the gradient must
    equal the oracle's exactly (pass-through and masks) and the allowed error in ulps where
    it is computed with transcendental functions or arithmetic (approxsign, swishsign).
    """

    key: str
    cls: type[bq.Quantization]
    bit_width: int
    params: dict[str, Any] = field(default_factory=dict)
    grad_ulps: int = 0

    @property
    def id(self) -> str:
        extra = "-".join(f"{k}{v:g}" for k, v in self.params.items())
        return f"{self.key}-{extra}" if extra else self.key

    def make(self) -> bq.Quantization:
        """A fresh quantizer object built from the case's parameters."""
        return self.cls(**self.params)

    def oracle(self) -> Oracle:
        return oracle(self.key, **self.params)

    @property
    def gradient_scale(self) -> float:
        """Largest |dq/dx| of the quantizer, to scale absolute gradient tolerances."""
        return float(self.params.get("beta", 2.0))


CASES: list[Case] = [
    Case("sign", bq.Sign, 1),
    Case("approxsign", bq.ApproxSign, 1, grad_ulps=2),
    *[Case("swishsign", bq.SwishSign, 1, {"beta": b}, grad_ulps=8) for b in (1.0, 5.0, 10.0)],
    Case("steheaviside", bq.SteHeaviside, 1),
    *[Case("inputdorefa", bq.InputDoReFa, b, {"bits": b}) for b in (1, 2, 4, 8)],
    *[Case("weightdorefa", bq.WeightDoReFa, b, {"bits": b}) for b in (1, 2, 4, 8)],
    Case("identity", bq.Identity, 32),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "case_keys(*keys): run the test only for the case-table entries of these keys"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``case`` over :data:`CASES` (or the keys of a ``case_keys`` marker),
    ``dtype`` over :data:`DTYPES` and ``input_set`` over :data:`INPUT_SETS`."""
    if "case" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("case_keys")
        cases = [c for c in CASES if marker is None or c.key in marker.args]
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", list(DTYPES), ids=[str(d)[6:] for d in DTYPES])
    if "input_set" in metafunc.fixturenames:
        metafunc.parametrize("input_set", INPUT_SETS)


# --------------------------------------------------------------------------- conversions


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Exact NumPy copy of a tensor (bfloat16 through float32 to ``ml_dtypes.bfloat16``)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(BF16)
    return t.numpy().copy()


def to_torch(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Exact tensor copy of ``a`` (already in the NumPy twin of ``dtype``)."""
    a = np.asarray(a)
    assert a.dtype == DTYPES[dtype], "test bug: array and tensor dtypes differ"
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a.copy())


# --------------------------------------------------------------------------- inputs


def edge_values(np_dtype: np.dtype, *, with_nan: bool = True) -> np.ndarray:
    """SPEC.md's edge values in ``np_dtype``: 0, -0.0, ±1 and their neighbours, values past
    every threshold (|x| = 1, the clip range [0, 1], exact halves of the rounding grid),
    huge values, the dtype's extremes, subnormals, ±inf and (optionally) NaN."""
    one = np.array(1, np_dtype)
    info = ml_dtypes.finfo(np_dtype)
    up = np.nextafter(one, np.array(2, np_dtype))
    down = np.nextafter(one, np.array(0, np_dtype))
    values = [
        0.0, 1.0, up, down, 1.0000001, 0.5, 0.25, 0.75, 0.3, 0.7, 1.5, 2.0, 100.0, 1e30,
        info.smallest_subnormal, info.smallest_normal, info.max, np.inf,
    ]  # fmt: skip
    with np.errstate(over="ignore"):
        pos = np.array([np.asarray(v, np.float64) for v in values]).astype(np_dtype)
    out = np.concatenate([pos, -pos])
    if with_nan:
        out = np.concatenate([out, np.array([np.nan], np_dtype)])
    return out


def random_values(np_dtype: np.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Normal values (scale 1.5, so some lie past |x| = 1) in ``np_dtype``."""
    return np.random.default_rng(seed).normal(0.0, 1.5, size=shape).astype(np_dtype)


def cotangent(shape: tuple[int, ...], np_dtype: np.dtype, seed: int) -> np.ndarray:
    """Random output gradient, never ±1 and never 0: magnitudes in [0.3, 3], random signs.

    Non-unit cotangents make a gradient that ignores ``g`` (or returns ``1`` at 0) fail.
    """
    rng = np.random.default_rng(seed + 1000)
    mag = rng.uniform(0.3, 3.0, size=shape)
    mag = np.where(np.abs(mag - 1.0) < 0.05, 1.7, mag)
    return (mag * rng.choice([-1.0, 1.0], size=shape)).astype(np_dtype)


INPUT_SETS = ("edges", "finite_edges", "random_3d")


def make_input(name: str, np_dtype: np.dtype) -> np.ndarray:
    if name == "edges":
        return edge_values(np_dtype)
    if name == "finite_edges":  # no NaN, so weightdorefa is not all-NaN
        return edge_values(np_dtype, with_nan=False)
    if name == "random_3d":
        return random_values(np_dtype, (3, 4, 5), seed=7)
    raise KeyError(name)


# --------------------------------------------------------------------------- checks


def _eps(np_dtype: np.dtype) -> float:
    return float(ml_dtypes.finfo(np_dtype).eps)


def compute_eps(np_dtype: np.dtype) -> float:
    """eps of the dtype the math runs in (float32 for the half types, SPEC.md)."""
    return _eps(np.float32) if np.dtype(np_dtype).itemsize == 2 else _eps(np_dtype)


def assert_same_nans(actual: np.ndarray, expected: np.ndarray, what: str) -> np.ndarray:
    """Assert NaN positions are equal; return the mask of non-NaN positions."""
    a_nan = np.isnan(actual.astype(np.float64))
    e_nan = np.isnan(expected.astype(np.float64))
    bad = np.flatnonzero(a_nan != e_nan)
    assert bad.size == 0, f"{what}: NaN positions differ at flat indices {bad.tolist()}"
    return ~e_nan


def _near_half_boundary(pre: np.ndarray, x: np.ndarray, n: int, eps: float) -> np.ndarray:
    """Elements whose pre-round value lies within a few ulps of a ``k + 0.5`` boundary.

    ``x == 0`` is excluded: ``tanh(0) = 0`` exactly, so its pre-round value ``n / 2``
    sits exactly on a boundary in every library and must round half to even.
    """
    frac = pre - np.floor(pre)
    tol = 16 * eps * max(n, 1)
    return (np.abs(frac - 0.5) <= tol) & (x.astype(np.float64) != 0)


def assert_forward(case: Case, x: np.ndarray, out: torch.Tensor, tdtype: torch.dtype) -> None:
    """Forward of ``case`` on ``x`` matches the oracle: exact values and NaN positions,
    the input's dtype and shape. For weightdorefa, an element within a few ulps of a
    rounding boundary may land on either neighbouring level (a boundary flip)."""
    assert out.dtype == tdtype, f"{case.id}: output dtype {out.dtype}, input {tdtype}"
    assert tuple(out.shape) == x.shape, f"{case.id}: output shape {tuple(out.shape)} != {x.shape}"
    actual = to_numpy(out).astype(np.float64)
    orc = case.oracle()
    with np.errstate(all="ignore"):  # NumPy warns on NaN comparisons in bfloat16
        expected = orc.forward(x).astype(np.float64)
    ok = assert_same_nans(actual, expected, f"{case.id} forward")
    if case.key == "weightdorefa" and ok.any():
        n = 2 ** case.params["bits"] - 1
        with np.errstate(all="ignore"):
            pre = orc.pre_round(x)  # in the compute dtype; levels are formed as bitorch does
        near = _near_half_boundary(pre.astype(np.float64), x, n, compute_eps(x.dtype)) & ok
        n_ct = pre.dtype.type(n)
        lo = (2 * np.floor(pre) / n_ct - 1).astype(x.dtype).astype(np.float64)
        hi = (2 * np.ceil(pre) / n_ct - 1).astype(x.dtype).astype(np.float64)
        flips_ok = (actual == lo) | (actual == hi)
        assert flips_ok[near].all(), f"{case.id}: near-boundary element left both levels"
        ok = ok & ~near
    bad = np.flatnonzero(ok & (actual != expected))
    assert bad.size == 0, (
        f"{case.id} forward differs at {bad.tolist()[:8]}: inputs {x.ravel()[bad][:8]}, "
        f"bitorch {actual.ravel()[bad][:8]}, oracle {expected.ravel()[bad][:8]}"
    )
    if case.key == "identity":  # a pass-through keeps the sign of zero too (NaN's is moot)
        assert np.array_equal(np.signbit(actual[ok]), np.signbit(x.astype(np.float64)[ok]))


def assert_grad(
    case: Case, x: np.ndarray, g: np.ndarray, grad: torch.Tensor, tdtype: torch.dtype
) -> None:
    """Input gradient of ``case`` matches the oracle (exact, or within ``case.grad_ulps``),
    NaN positions equal, dtype and shape of the input."""
    assert grad.dtype == tdtype, f"{case.id}: gradient dtype {grad.dtype}, input {tdtype}"
    assert tuple(grad.shape) == x.shape, f"{case.id}: gradient shape differs from input"
    actual = to_numpy(grad).astype(np.float64)
    with np.errstate(all="ignore"):
        expected = case.oracle().grad(x, g).astype(np.float64)
    ok = assert_same_nans(actual, expected, f"{case.id} gradient")
    a, e = actual[ok], expected[ok]
    if case.grad_ulps == 0:
        diff = np.flatnonzero(a != e)
    else:
        # Relative part: rounding of the result to the output dtype; absolute part: error
        # of the float32/float64 computation, relative to |g| * max|dq/dx| (cancellation in
        # swishsign's 2 - beta*x*tanh(beta*x/2) makes a purely relative bound meaningless).
        gabs = np.abs(g.astype(np.float64))[ok]
        tol = case.grad_ulps * (
            _eps(x.dtype) * np.abs(e) + compute_eps(x.dtype) * case.gradient_scale * gabs
        )
        diff = np.flatnonzero(np.abs(a - e) > tol)
    assert diff.size == 0, (
        f"{case.id} gradient differs at {diff.tolist()[:8]}: inputs {x[ok][diff][:8]}, "
        f"bitorch {a[diff][:8]}, oracle {e[diff][:8]}"
    )


def forward_and_grad(
    case: Case, x: np.ndarray, g: np.ndarray, tdtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the quantizer forward and backward (``sum(q(x) * g)``) with plain autograd."""
    xt = to_torch(x, tdtype).requires_grad_(True)
    out = case.make()(xt)
    out.backward(to_torch(g, tdtype))
    assert xt.grad is not None, f"{case.id}: no gradient reached the input"
    return out.detach(), xt.grad


@pytest.fixture
def restore_config() -> Iterator[bq.QuantizationConfig]:
    """The torch config object; its defaults are put back after the test."""
    saved = (bq.config.dorefa_bits, bq.config.beta)
    yield bq.config
    bq.config.dorefa_bits, bq.config.beta = saved


@pytest.fixture
def oracle_checks() -> Any:
    """The checking helpers of this conftest, for the test modules."""

    class _Checks:
        to_numpy = staticmethod(to_numpy)
        to_torch = staticmethod(to_torch)
        edge_values = staticmethod(edge_values)
        random_values = staticmethod(random_values)
        cotangent = staticmethod(cotangent)
        make_input = staticmethod(make_input)
        assert_forward = staticmethod(assert_forward)
        assert_grad = staticmethod(assert_grad)
        forward_and_grad = staticmethod(forward_and_grad)
        dtypes = DTYPES
        cases = CASES

        @staticmethod
        def case_by_id(case_id: str) -> Case:
            return next(c for c in CASES if c.id == case_id)

    return _Checks
