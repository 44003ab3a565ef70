"""Every bitorch quantizer under torch.func: grad, vmap, vmap of grad and jacrev.

Expected values come from the NumPy oracles, per row for vmap (a vmapped quantizer sees
one row at a time, so WeightDoReFa's per-tensor maximum is per row there).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import grad, jacrev, vmap


def _batch(np_dtype: np.dtype, oracle_checks) -> np.ndarray:
    """Rows: SPEC.md's edge values with NaN, without NaN, then two random rows."""
    edges = oracle_checks.edge_values(np_dtype)
    finite = np.append(oracle_checks.edge_values(np_dtype, with_nan=False), edges[0])
    rnd = oracle_checks.random_values(np_dtype, (2, edges.size), seed=3)
    return np.concatenate([edges[None], finite[None], rnd])


def test_func_grad(case, dtype, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    x = oracle_checks.edge_values(np_dtype)
    g = oracle_checks.cotangent(x.shape, np_dtype, seed=13)
    q = case.make()
    gt = oracle_checks.to_torch(g, dtype)
    got = grad(lambda xi: (q(xi) * gt).sum())(oracle_checks.to_torch(x, dtype))
    oracle_checks.assert_grad(case, x, g, got, dtype)


def test_func_vmap(case, dtype, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    xs = _batch(np_dtype, oracle_checks)
    out = vmap(case.make())(oracle_checks.to_torch(xs, dtype))
    assert out.shape == xs.shape and out.dtype == dtype
    for row in range(xs.shape[0]):
        oracle_checks.assert_forward(case, xs[row], out[row], dtype)


def test_func_vmap_of_grad(case, dtype, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    xs = _batch(np_dtype, oracle_checks)
    gs = oracle_checks.cotangent(xs.shape, np_dtype, seed=17)
    q = case.make()
    per_row = vmap(grad(lambda xi, gi: (q(xi) * gi).sum()))
    got = per_row(oracle_checks.to_torch(xs, dtype), oracle_checks.to_torch(gs, dtype))
    for row in range(xs.shape[0]):
        oracle_checks.assert_grad(case, xs[row], gs[row], got[row], dtype)


def test_func_jacrev_is_diagonal(case, oracle_checks):
    """For an elementwise quantizer the Jacobian is diag(dq/dx); jacrev vmaps the backward
    over one-hot cotangents, so this also checks the vmap rule of each backward."""
    x = np.array([-1.5, -1.0, -0.3, 0.0, -0.0, 0.3, 1.0, 1.5], np.float64)
    jac = jacrev(case.make())(torch.from_numpy(x)).numpy()
    want = np.diag(case.oracle().grad(x, np.ones_like(x)))
    np.testing.assert_allclose(jac, want, rtol=1e-14, atol=0)


def test_func_grad_of_grad_is_zero_for_straight_through(oracle_checks):
    """Second derivative through a quantizer: the backward of the STE family is linear in
    g with no dependence on x, so differentiating the gradient again gives zeros."""
    x = torch.tensor([-0.4, 0.0, 0.9])
    for case in oracle_checks.cases:
        if case.key not in ("sign", "inputdorefa", "weightdorefa", "identity"):
            continue
        q = case.make()
        second = grad(lambda xi, q=q: grad(lambda z: q(z).sum())(xi).sum())(x)
        assert torch.equal(second, torch.zeros(3)), f"{case.id}: {second}"
