"""Helpers shared by the zoo tests (``tests/models/test_zoo_*.py``): the jitted NNX
forward, NCHW -> NHWC, non-trivial BatchNorm parameters and a ``state_dict`` check."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx


@nnx.jit
def forward(model: nnx.Module, x: jax.Array) -> jax.Array:
    return model(x)


def nhwc(x: torch.Tensor) -> jax.Array:
    """A torch NCHW tensor as a JAX NHWC array (other ranks as they are)."""
    return jnp.asarray(x.permute(0, 2, 3, 1).numpy()) if x.ndim == 4 else jnp.asarray(x.numpy())


def randomise_batchnorms(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm parameters and statistics (fresh ones are 1, 0, 0, 1: with
    them, integer-valued binary convolutions give exact ties at the sign): weight and
    running variance uniform in [0.5, 1.5), bias and running mean in [-0.5, 0.5)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def assert_state_dicts_equal(actual: dict, expected: dict, *, exact: bool, rtol: float) -> None:
    """Same keys in the same order, shapes and dtypes; values bit-equal when ``exact``
    (``num_batches_tracked`` always), else within ``rtol`` (and ``atol = rtol``)."""
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape and actual[key].dtype == value.dtype, key
        if exact or key.endswith("num_batches_tracked"):
            assert torch.equal(actual[key], value), key
        else:
            np.testing.assert_allclose(
                actual[key].numpy(), value.numpy(), rtol=rtol, atol=rtol, err_msg=key
            )
