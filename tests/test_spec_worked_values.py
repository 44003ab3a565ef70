"""SPEC.md's worked values, checked against the NumPy oracles, bitorch and bitorch_jax.

The expected numbers below are copied from SPEC.md (the contract), not computed by any of
the code under test. Each framework runs the same table: the oracle, bitorch (PyTorch
autograd) and bitorch_jax eagerly and under ``jax.jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import bitorch.quantizations as bq
import bitorch_jax.quantizations as jq
from bitorch_common.oracles import oracle

# SPEC.md: "Worked values on x = [-1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5] (float32)".
X = np.array([-1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5], np.float32)
SIGN = [-1, -1, -1, 1, 1, 1, 1]  # approxsign and swishsign forward "as sign"


@dataclass(frozen=True)
class Worked:
    """One line of SPEC.md's worked values. ``grad`` holds the gradient factors dq/dx (the
    gradient for a cotangent of ones); ``grad_rtol`` reflects how many digits SPEC.md
    prints (swishsign's factors are rounded to three or four significant digits)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)
    forward: list[float] | None = None
    grad: list[float] | None = None
    grad_rtol: float = 1e-6

    @property
    def id(self) -> str:
        extra = "-".join(f"{k}{v:g}" for k, v in self.params.items())
        return f"{self.key}-{extra}" if extra else self.key


WORKED = [
    Worked("sign", forward=SIGN),
    Worked("steheaviside", forward=[-1, -1, -1, -1, 1, 1, 1], grad=[0, 1, 1, 1, 1, 1, 0]),
    Worked("approxsign", forward=SIGN, grad=[0, 0, 1.4, 2, 1.4, 0, 0]),
    Worked(
        "swishsign",
        {"beta": 5.0},
        forward=SIGN,
        grad=[-0.0303, -0.195, 1.562, 5, 1.562, -0.195, -0.0303],
        grad_rtol=2e-3,
    ),
    Worked("inputdorefa", {"bits": 2}, forward=[0, 0, 0, 0, 1 / 3, 1, 1]),
    Worked("weightdorefa", {"bits": 2}, forward=[-1, -1, -1 / 3, 1 / 3, 1 / 3, 1, 1]),
    Worked("weightdorefa", {"bits": 1}, forward=[-1, -1, -1, -1, 1, 1, 1]),
]

# A random, non-unit cotangent: the gradient must be g times the factor, at 0 too.
G = np.array([0.37, -1.9, 2.6, -0.55, 1.3, -2.2, 0.8], np.float32)


# --------------------------------------------------------------------------- frameworks
# Each runner maps (key, params, x, g) -> (forward, input gradient) as NumPy arrays.


def _run_oracle(key: str, params: dict, x: np.ndarray, g: np.ndarray) -> tuple:
    orc = oracle(key, **params)
    return orc.forward(x), orc.grad(x, g)


def _torch_to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


def _numpy_to_torch(a: np.ndarray) -> torch.Tensor:
    if a.dtype == np.dtype(ml_dtypes.bfloat16):
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a.copy())


def _run_bitorch(key: str, params: dict, x: np.ndarray, g: np.ndarray) -> tuple:
    q = bq.quantization_from_name(key)(**params)
    xt = _numpy_to_torch(x).requires_grad_(True)
    out = q(xt)
    out.backward(_numpy_to_torch(g))
    return _torch_to_numpy(out), _torch_to_numpy(xt.grad)


def _jax_runner(jit: bool) -> Callable:
    def run(key: str, params: dict, x: np.ndarray, g: np.ndarray) -> tuple:
        q = jq.quantization_from_name(key)(**params)

        def fwd(xa):
            return q(xa)

        def grad(xa, ga):
            return jax.grad(lambda z: jnp.sum(q(z) * ga))(xa)

        if jit:
            fwd, grad = jax.jit(fwd), jax.jit(grad)
        xa, ga = jnp.asarray(x), jnp.asarray(g)
        out, dx = fwd(xa), grad(xa, ga)
        assert out.dtype == xa.dtype and dx.dtype == xa.dtype
        return np.asarray(out), np.asarray(dx)

    return run


FRAMEWORKS = {
    "oracle": _run_oracle,
    "bitorch": _run_bitorch,
    "bitorch_jax": _jax_runner(jit=False),
    "bitorch_jax_jit": _jax_runner(jit=True),
}


@pytest.fixture(params=list(FRAMEWORKS))
def run(request) -> Callable:
    return FRAMEWORKS[request.param]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("worked", WORKED, ids=[w.id for w in WORKED])
def test_worked_values(worked, run):
    out, dx = run(worked.key, worked.params, X, G)
    assert out.dtype == X.dtype and out.shape == X.shape
    assert dx.dtype == X.dtype and dx.shape == X.shape
    # Levels such as 1/3 are written as fractions; the float32 level may differ from
    # float32(1/3) in the last place. Distinct levels are >= 1/3 apart here.
    np.testing.assert_allclose(out, np.array(worked.forward), rtol=0, atol=1e-6)
    if worked.grad is not None:
        want = G.astype(np.float64) * np.array(worked.grad)
        np.testing.assert_allclose(dx, want, rtol=worked.grad_rtol, atol=0)


# SPEC.md's worked values cover its seven quantizers; the quantizers added since (table
# rows beyond bitorch 0.4.1's, and ProgressiveSign) have hand-written rules in
# tests/test_new_quantizers.py and tests/test_progressive_sign.py instead.
SPEC_SEVEN = {"sign", "approxsign", "swishsign", "steheaviside", "inputdorefa",
              "weightdorefa", "identity"}  # fmt: skip


def test_worked_values_cover_every_key():
    assert {w.key for w in WORKED} | {"identity"} == SPEC_SEVEN
    assert SPEC_SEVEN <= set(bq.quantization_names())


def test_half_precision_rule_bfloat16_inputdorefa(run):
    """SPEC.md: inputdorefa(bits=4) of bfloat16 0.3 is 5/15 rounded to bfloat16 (computed
    in float32, rounded once), not the 4/15 that rounding after every operation gives."""
    bf16 = ml_dtypes.bfloat16
    x = np.array([0.3], bf16)
    g = np.array([0.75], bf16)
    out, dx = run("inputdorefa", {"bits": 4}, x, g)
    assert out.dtype == np.dtype(bf16) and dx.dtype == np.dtype(bf16)
    assert out[0] == bf16(5 / 15), f"got {out[0]} (4/15 would be {bf16(4 / 15)})"
    assert dx[0] == g[0]


def test_half_precision_example_discriminates():
    """The example above really separates the two rules: NumPy's bfloat16 arithmetic
    (each operation rounded to bfloat16, as PyTorch eager does) lands on 4/15."""
    bf16 = ml_dtypes.bfloat16

    def r(v: Any) -> np.ndarray:  # round to bfloat16 (NumPy may promote scalars to f32)
        return np.asarray(v).astype(bf16)

    x = r(0.3)
    per_op = r(r(np.round(r(r(np.clip(x, 0, 1)) * r(15)))) / r(15))
    assert per_op == bf16(4 / 15) and bf16(4 / 15) != bf16(5 / 15)
    once = r(np.round(np.clip(x.astype(np.float32), 0, 1) * np.float32(15)) / np.float32(15))
    assert once == bf16(5 / 15)
