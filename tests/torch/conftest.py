"""Parametrisation, inputs and the oracle check shared by the bitorch (PyTorch) unit tests.

Everything about a quantizer comes from the quantizer table
(:mod:`bitorch_common.quantizers`): the variants a test runs (``variants()``), the
functional form (``getattr(bitorch.quantizations, spec.function)``), the bit width, the
edge values (:mod:`bitorch_common.inputs`) and the comparison with the NumPy oracle
(``Variant.compare_to_oracle``, the comparison engine of the parity command). Nothing
here restates a quantizer's rules; the hand-written SPEC checks live in the test modules.

A test function that takes an argument named ``case`` runs once per table variant (or
per variant of the keys of a ``case_keys`` marker), one that takes ``dtype`` once per
supported float dtype, one that takes ``input_set`` once per input set of
:func:`make_input` (see :func:`pytest_generate_tests`).

Example (what a test in this folder looks like)::

    def test_bit_width(case):
        assert case.make().bit_width == case.bit_width
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import bitorch.quantizations as bq
from bitorch_common import inputs, oracles
from bitorch_common.comparison import SampleComparison
from bitorch_common.inputs import cotangents, edge_values, make_samples, np_dtype, random_inputs
from bitorch_common.quantizers import Variant, variants
from parity_tests.cases import torch_quantizer

# torch dtype -> NumPy dtype of the same format.
DTYPES: dict[torch.dtype, np.dtype] = {
    d: np_dtype(d) for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


@dataclass(frozen=True)
class TorchVariant(Variant):
    """A variant of the quantizer table plus how bitorch builds it (all derived: the class
    registered under the row's key, and the functional form named by the row)."""

    @property
    def cls(self) -> type[bq.Quantization]:
        return bq.quantization_from_name(self.key)

    def make(self) -> bq.Quantization:
        """A fresh quantizer object built from the variant's parameters (a ``training``
        parameter is the module's mode, set with ``.train()``; see ``torch_quantizer``)."""
        return torch_quantizer(self.key, **self.params)

    @property
    def functional(self) -> Any:
        """The functional form, ``bitorch.quantizations.<spec.function>``."""
        return getattr(bq, self.spec.function)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The functional form called with the variant's parameters."""
        return self.functional(x, **self.params)


def table_variants(keys: Iterable[str] | None = None) -> list[TorchVariant]:
    """Every variant of the quantizer table (of ``keys``), as :class:`TorchVariant`."""
    return [TorchVariant(v.spec, dict(v.params)) for v in variants(keys)]


def variant_by_id(variant_id: str) -> TorchVariant:
    return next(v for v in table_variants() if v.id == variant_id)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "case_keys(*keys): run the test only for the table variants of these keys"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``case`` over the table's variants (or those of the keys of a
    ``case_keys`` marker), ``dtype`` over :data:`DTYPES`, ``input_set`` over
    :data:`INPUT_SETS`."""
    if "case" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("case_keys")
        cases = table_variants(None if marker is None else marker.args)
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
        return t.float().numpy().astype(DTYPES[torch.bfloat16])
    return t.numpy().copy()


def to_torch(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Exact tensor copy of ``a`` (already in the NumPy twin of ``dtype``)."""
    a = np.asarray(a)
    assert a.dtype == DTYPES[dtype], "test bug: array and tensor dtypes differ"
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a.copy())


# --------------------------------------------------------------------------- inputs
# Every input comes from bitorch_common.inputs (the parity command's builders): edge
# values, random values, and the arrays that reach the remaining rules: subnormal-only
# (flush rules, the sign of tiny values), all-zero with -0.0 mixed in (weightdorefa's
# t / (2m) taken as 0), and finite arrays whose largest magnitude is negative or positive
# (weightdorefa's m = max|tanh x|: the absolute value, and tanh before the maximum).


INPUT_SETS = (
    "edges",
    "finite_edges",
    "random_3d",
    "mixed_3d",
    "subnormal",
    "zeros",
    "peak_negative",
    "peak_positive",
)


def make_input(name: str, variant: Variant, dtype: Any) -> np.ndarray:
    """Input set ``name`` in ``dtype`` for ``variant`` (its extra edges, its tensor rule).

    ``edges``/``finite_edges``: the edge values with and without NaN (1-d); ``random_3d``:
    random values of both scales; ``mixed_3d``: the parity command's main array (random
    values with the edge values planted); ``subnormal``: only subnormals, random signs;
    ``zeros``: ``0`` and ``-0.0``; ``peak_negative``/``peak_positive``: finite values whose
    largest magnitude is negative / positive.
    """
    dt = np_dtype(dtype)
    rng = np.random.default_rng(7 + INPUT_SETS.index(name))
    if name == "edges":
        return edge_values(dt, variant.extra_edges)
    if name == "finite_edges":  # no NaN, so weightdorefa is not all-NaN
        return edge_values(dt, variant.extra_edges, nan=False)
    if name == "random_3d":
        return random_inputs((3, 4, 5), dt, rng)
    if name == "mixed_3d":
        tensor_wide = variant.spec.tensor_wide
        return make_samples(
            (3, 4, 5), dt, rng, extra_edges=variant.extra_edges, tensor_wide=tensor_wide
        )[0]
    if name == "subnormal":
        return inputs.subnormal_array((4, 5), dt, rng)
    if name == "zeros":
        return inputs.signed_zeros((3, 4), dt, rng)
    if name == "peak_negative":
        return inputs.asymmetric((4, 5), dt, rng, -1)
    if name == "peak_positive":
        return inputs.asymmetric((4, 5), dt, rng, +1)
    raise KeyError(name)


def random_values(np_dtype: np.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random values of both scales (:func:`bitorch_common.inputs.random_inputs`)."""
    return random_inputs(shape, np_dtype, np.random.default_rng(seed))


def cotangent(shape: tuple[int, ...], np_dtype: np.dtype, seed: int) -> np.ndarray:
    """Random non-unit output cotangent, never 0 (:func:`bitorch_common.inputs.cotangents`)."""
    return cotangents(shape, np_dtype, np.random.default_rng(seed + 1000))


# --------------------------------------------------------------------------- checks


def failure_message(variant: Variant, result: SampleComparison, framework: str = "torch") -> str:
    """The comparison's problems and failing elements, oracle on the left."""
    lines = [f"{variant.label}: {result.failures} failure(s) against the NumPy oracle"]
    lines += [f"  {p}" for p in result.problems]
    lines += [f"  {e.describe('oracle', framework)}" for e in result.failure_list]
    return "\n".join(lines)


def check_against_oracle(
    variant: Variant,
    x: np.ndarray,
    g: np.ndarray,
    out: torch.Tensor,
    grad: torch.Tensor,
    dtype: torch.dtype,
) -> SampleComparison:
    """Forward value ``out`` and input gradient ``grad`` of ``variant`` at ``x`` (cotangent
    ``g``) against the oracle, by the parity command's rules; dtype and shape of the input.
    Rows whose oracle is the identity must also keep the sign of zero (bit for bit)."""
    for what, t in (("output", out), ("gradient", grad)):
        assert t.dtype == dtype, f"{variant.id}: {what} dtype {t.dtype}, input {dtype}"
        assert tuple(t.shape) == x.shape, (
            f"{variant.id}: {what} shape {tuple(t.shape)} != input shape {x.shape}"
        )
    y = to_numpy(out)
    result = variant.compare_to_oracle(x, g, y, to_numpy(grad))
    assert result.failures == 0 and not result.problems, failure_message(variant, result)
    if variant.spec.forward is oracles.identity_forward:
        y64, x64 = y.astype(np.float64), x.astype(np.float64)
        ok = ~np.isnan(x64)
        assert np.array_equal(np.signbit(y64[ok]), np.signbit(x64[ok])), (
            f"{variant.id}: the identity must keep the sign of zero"
        )
    return result


def forward_and_grad(
    case: TorchVariant, x: np.ndarray, g: np.ndarray, tdtype: torch.dtype
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
    """The helpers of this conftest, for the test modules."""

    class _Checks:
        to_numpy = staticmethod(to_numpy)
        to_torch = staticmethod(to_torch)
        edge_values = staticmethod(edge_values)
        random_values = staticmethod(random_values)
        cotangent = staticmethod(cotangent)
        make_input = staticmethod(make_input)
        subnormal_array = staticmethod(inputs.subnormal_array)
        signed_zeros = staticmethod(inputs.signed_zeros)
        asymmetric = staticmethod(inputs.asymmetric)
        check = staticmethod(check_against_oracle)
        forward_and_grad = staticmethod(forward_and_grad)
        dtypes = DTYPES
        input_sets = INPUT_SETS
        cases = table_variants()
        case_by_id = staticmethod(variant_by_id)

    return _Checks
