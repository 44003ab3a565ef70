"""The worked example: the same binary network trains alike in PyTorch and in Flax.

A short smoke test of ``examples.binary_net``'s public builders (the benchmarks use the
same names): identical initial weights, three training steps on the same batches with the
same optimizer, close losses.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from examples.binary_net import (
    DigitsData,
    batch_indices,
    build_flax_net_from_torch,
    build_torch_net,
    jax_accuracy,
    jax_logits,
    load_digits_data,
    make_jax_optimizer,
    make_jax_train_step,
    make_torch_optimizer,
    torch_accuracy,
    torch_logits,
    torch_train_step,
)

# Per-step loss tolerances, with reasons:
# - step 1 runs on identical weights: only rounding of one forward pass differs (float32:
#   ~1e-7 relative on a loss of ~2.3, so 1e-5 is 40x margin; float64: 1e-12).
# - later float32 steps: the two Adams see gradients that differ by rounding; where a
#   gradient is itself rounding noise (a weight whose input is constant over the batch),
#   Adam's normalised step turns that noise into lr-sized (1e-3) weight differences, which
#   move the loss by up to ~1e-3 within a few steps. float64 pushes the noise down by 1e-9.
STEP1_TOL = {"float32": 1e-5, "float64": 1e-12}
LATER_TOL = {"float32": 5e-3, "float64": 1e-10}


@pytest.fixture(scope="module")
def data() -> DigitsData:
    return load_digits_data(seed=0)


def test_digits_data_split(data: DigitsData) -> None:
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_test.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() <= data.x_train.max() <= 1
    assert set(np.unique(data.y_test)) == set(range(10))
    assert DigitsData.nhwc(data.x_test).shape == (360, 8, 8, 1)


def test_three_steps_match(data: DigitsData, dtype: str) -> None:
    torch_dtype, np_dtype = getattr(torch, dtype), np.dtype(dtype)
    torch_net = build_torch_net(7, dtype=torch_dtype)
    flax_net = build_flax_net_from_torch(torch_net)

    # identical start: evaluation-mode logits agree before any step
    x_eval = data.x_test[:32].astype(np_dtype)
    logits_t = torch_logits(torch_net, torch.from_numpy(x_eval)).numpy()
    assert torch_net.training, "torch_logits must not change the mode"
    logits_j = np.asarray(jax_logits(flax_net, jnp.asarray(DigitsData.nhwc(x_eval))))
    np.testing.assert_allclose(logits_j, logits_t, rtol=STEP1_TOL[dtype], atol=STEP1_TOL[dtype])

    torch_opt = make_torch_optimizer(torch_net)
    step = make_jax_train_step(flax_net, make_jax_optimizer(flax_net))
    losses = []
    for index in batch_indices(len(data.y_train), 64, 3, seed=7):
        xb = data.x_train[index].astype(np_dtype)
        yb = data.y_train[index]
        lt = torch_train_step(torch_net, torch_opt, torch.from_numpy(xb), torch.from_numpy(yb))
        lj = float(step(jnp.asarray(DigitsData.nhwc(xb)), jnp.asarray(yb.astype(np.int32))))
        losses.append((lt, lj))
    losses = np.array(losses)
    assert np.all(np.isfinite(losses))
    assert abs(losses[0, 0] - losses[0, 1]) <= STEP1_TOL[dtype]
    np.testing.assert_allclose(losses[1:, 1], losses[1:, 0], rtol=0, atol=LATER_TOL[dtype])
    assert losses[-1, 0] < losses[0, 0] and losses[-1, 1] < losses[0, 1], "loss must fall"
    # the step really changed the Flax weights (and left the module in training mode)
    assert not flax_net.bn1.use_running_average
    acc_t = torch_accuracy(torch_net, torch.from_numpy(x_eval), torch.from_numpy(data.y_test[:32]))
    acc_j = jax_accuracy(flax_net, jnp.asarray(DigitsData.nhwc(x_eval)), data.y_test[:32])
    assert 0 <= acc_t <= 1 and 0 <= acc_j <= 1
    assert not flax_net.bn1.use_running_average, "jax_accuracy must not change the mode"


def test_batches_are_shared_and_complete() -> None:
    batches = list(batch_indices(100, 32, 7, seed=3))
    assert len(batches) == 7 and all(len(b) == 32 for b in batches)
    # 3 full batches per epoch, each epoch a permutation without repeats
    assert len(set(np.concatenate(batches[:3]))) == 96
    again = list(batch_indices(100, 32, 7, seed=3))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
