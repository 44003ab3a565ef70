"""Every bitorch quantizer under torch.func: grad, vmap, vmap of grad and jacrev.

Expected values come from the NumPy oracles of the quantizer table, compared by the
parity command's engine; per row for vmap (a vmapped quantizer sees one row at a time,
so WeightDoReFa's per-tensor maximum is per row there).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import grad, jacrev, vmap


def _batch(case, np_dtype: np.dtype, oracle_checks) -> np.ndarray:
    """Rows: the edge values with NaN, without NaN, two random rows, then an all-subnormal
    row, an all-zero row and rows whose largest magnitude is negative / positive."""
    edges = oracle_checks.edge_values(np_dtype, case.extra_edges)
    finite = np.append(oracle_checks.edge_values(np_dtype, case.extra_edges, nan=False), edges[0])
    n = edges.size
    rng = np.random.default_rng(3)
    rows = [
        edges,
        finite,
        *oracle_checks.random_values(np_dtype, (2, n), seed=3),
        oracle_checks.subnormal_array((n,), np_dtype, rng),
        oracle_checks.signed_zeros((n,), np_dtype, rng),
        oracle_checks.asymmetric((n,), np_dtype, rng, -1),
        oracle_checks.asymmetric((n,), np_dtype, rng, +1),
    ]
    return np.stack(rows).astype(np_dtype)


def test_func_grad(case, dtype, oracle_checks):
    np_dtype = oracle_checks.dtypes[dtype]
    x = oracle_checks.edge_values(np_dtype, case.extra_edges)
    g = oracle_checks.cotangent(x.shape, np_dtype, seed=13)
    q = case.make()
    gt = oracle_checks.to_torch(g, dtype)

    def loss(xi):
        y = q(xi)
        return (y * gt).sum(), y

    got, y = grad(loss, has_aux=True)(oracle_checks.to_torch(x, dtype))
    oracle_checks.check(case, x, g, y.detach(), got, dtype)


def test_func_vmap_and_vmap_of_grad(case, dtype, oracle_checks):
    """``vmap(q)`` forward and ``vmap(grad)`` input gradients, row by row."""
    np_dtype = oracle_checks.dtypes[dtype]
    xs = _batch(case, np_dtype, oracle_checks)
    gs = oracle_checks.cotangent(xs.shape, np_dtype, seed=17)
    q = case.make()
    xt, gt = oracle_checks.to_torch(xs, dtype), oracle_checks.to_torch(gs, dtype)
    out = vmap(q)(xt)
    assert out.shape == xs.shape and out.dtype == dtype

    def loss(xi, gi):
        y = q(xi)
        return (y * gi).sum(), y

    got, y = vmap(grad(loss, has_aux=True))(xt, gt)
    for row in range(xs.shape[0]):
        oracle_checks.check(case, xs[row], gs[row], out[row], got[row], dtype)
        oracle_checks.check(case, xs[row], gs[row], y[row].detach(), got[row], dtype)


def test_func_jacrev_is_diagonal(case, oracle_checks):
    """For an elementwise quantizer the Jacobian is diag(dq/dx); jacrev vmaps the backward
    over one-hot cotangents, so this also checks the vmap rule of each backward."""
    x = np.array([-1.5, -1.0, -0.3, 0.0, -0.0, 0.3, 1.0, 1.5], np.float64)
    q = case.make()
    jac = jacrev(q)(torch.from_numpy(x))
    diag = torch.diagonal(jac)
    assert torch.equal(jac, torch.diag(diag)), f"{case.id}: off-diagonal Jacobian entries"
    ones = np.ones_like(x)
    oracle_checks.check(case, x, ones, q(torch.from_numpy(x)), diag, torch.float64)


def _is_pass_through(case, oracle_checks) -> bool:
    """Whether the row's oracle gradient is ``g`` itself (checked on the edge values)."""
    x = oracle_checks.edge_values(np.dtype(np.float64), case.extra_edges, nan=False)
    g = oracle_checks.cotangent(x.shape, np.dtype(np.float64), seed=19)
    with np.errstate(all="ignore"):
        return bool(np.array_equal(case.oracle().grad(x, g), g))


def test_func_grad_of_grad_is_zero_for_straight_through(oracle_checks):
    """Second derivative through a quantizer: the backward of the STE family is linear in
    g with no dependence on x, so differentiating the gradient again gives zeros."""
    x = torch.tensor([-0.4, 0.0, 0.9])
    checked = set()
    for case in oracle_checks.cases:
        if not _is_pass_through(case, oracle_checks):
            continue
        q = case.make()
        second = grad(lambda xi, q=q: grad(lambda z: q(z).sum())(xi).sum())(x)
        assert torch.equal(second, torch.zeros(3)), f"{case.id}: {second}"
        checked.add(case.key)
    assert {"sign", "inputdorefa", "weightdorefa", "identity"} <= checked, checked
