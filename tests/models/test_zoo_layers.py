"""The NNX pieces of the model zoo (``bitorch_jax.models.layers``) against torch, and the
two zoo registries.

Every layer case runs in float64 (the scoped ``x64`` fixture) on the same input in both
frameworks (NCHW for torch, NHWC for JAX) and must agree to 1e-12 relative; BatchNorm's
running statistics after one training step must equal torch's (unbiased) or
``nnx.BatchNorm``'s (biased) update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

import bitorch.models as tm
import bitorch_jax.models as jm
from bitorch.layers import QConv2d
from bitorch_jax.convert import nnx_to_torch, torch_to_nnx
from bitorch_jax.models import layers as L  # noqa: N812
from tests.models.zoo_helpers import nhwc

RTOL = 1e-12


def nhwc_to_nchw(y: Any) -> np.ndarray:
    y = np.asarray(y)
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def assert_close(actual: Any, expected: Any, rtol: float = RTOL) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


# name -> (torch module, NNX module, NCHW input shape); parameter-free or converted
STATELESS: dict[str, tuple[Callable[[], nn.Module], Callable[[], nnx.Module], tuple]] = {
    "maxpool_2": (lambda: nn.MaxPool2d(2, 2), lambda: L.MaxPool2d(2, 2), (2, 3, 6, 6)),
    "maxpool_3s2p1": (
        lambda: nn.MaxPool2d(3, 2, 1),
        lambda: L.MaxPool2d(3, 2, 1),
        (2, 3, 7, 8),
    ),
    "maxpool_ceil": (
        lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        lambda: L.MaxPool2d(3, 2, 1, ceil_mode=True),
        (1, 2, 8, 7),
    ),
    "maxpool_odd_floor": (lambda: nn.MaxPool2d(2), lambda: L.MaxPool2d(2), (1, 2, 5, 7)),
    "avgpool_2": (lambda: nn.AvgPool2d(2, 2), lambda: L.AvgPool2d(2, 2), (2, 3, 6, 6)),
    "avgpool_stride1_odd": (lambda: nn.AvgPool2d(2, 1), lambda: L.AvgPool2d(2, 1), (1, 2, 5, 5)),
    "avgpool_pad_include": (
        lambda: nn.AvgPool2d(3, 2, 1),
        lambda: L.AvgPool2d(3, 2, 1),
        (1, 2, 7, 6),
    ),
    "avgpool_pad_exclude": (
        lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        lambda: L.AvgPool2d(3, 2, 1, count_include_pad=False),
        (1, 2, 7, 6),
    ),
    "avgpool_ceil": (
        lambda: nn.AvgPool2d(2, 2, ceil_mode=True),
        lambda: L.AvgPool2d(2, 2, ceil_mode=True),
        (1, 2, 5, 7),
    ),
    "avgpool_ceil_pad": (
        lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
        lambda: L.AvgPool2d(3, 2, 1, ceil_mode=True),
        (1, 2, 6, 8),
    ),
    "adaptive_1": (lambda: nn.AdaptiveAvgPool2d(1), lambda: L.AdaptiveAvgPool2d(1), (2, 3, 5, 4)),
    "adaptive_2x3": (
        lambda: nn.AdaptiveAvgPool2d((2, 3)),
        lambda: L.AdaptiveAvgPool2d((2, 3)),
        (1, 2, 5, 7),
    ),
    "flatten_nchw_order": (nn.Flatten, L.Flatten, (2, 3, 2, 4)),
    "relu": (nn.ReLU, L.ReLU, (2, 3, 2, 2)),
    "tanh": (nn.Tanh, L.Tanh, (2, 3, 2, 2)),
}


@pytest.mark.parametrize("case", sorted(STATELESS))
def test_parameter_free_layer_matches_torch(case: str, x64: None) -> None:
    make_torch, make_nnx, shape = STATELESS[case]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = make_torch()(x).numpy()
    actual = make_nnx()(nhwc(x))
    assert actual.dtype == jnp.float64
    assert_close(nhwc_to_nchw(actual), expected)


def _rngs() -> nnx.Rngs:
    return nnx.Rngs(0)


# name -> (torch module, NNX twin, NCHW input shape); weights converted torch -> NNX
WEIGHTED: dict[str, tuple[Callable[[], nn.Module], Callable[[], nnx.Module], tuple]] = {
    "conv_3x3_pad1": (
        lambda: nn.Conv2d(3, 4, 3, padding=1),
        lambda: L.Conv2d(3, 4, 3, padding=1, param_dtype=jnp.float64, rngs=_rngs()),
        (2, 3, 6, 5),
    ),
    "conv_7x7_s2_nobias": (
        lambda: nn.Conv2d(3, 4, 7, stride=2, padding=3, bias=False),
        lambda: L.Conv2d(
            3, 4, 7, stride=2, padding=3, bias=False, param_dtype=jnp.float64, rngs=_rngs()
        ),
        (1, 3, 9, 8),
    ),
    "conv_grouped": (
        lambda: nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False),
        lambda: L.Conv2d(
            4, 8, 3, padding=1, groups=4, bias=False, param_dtype=jnp.float64, rngs=_rngs()
        ),
        (1, 4, 5, 5),
    ),
    "linear": (
        lambda: nn.Linear(6, 3),
        lambda: L.Linear(6, 3, param_dtype=jnp.float64, rngs=_rngs()),
        (4, 6),
    ),
    "qconv_sign": (
        lambda: QConv2d(3, 4, 3, stride=2, padding=1),
        lambda: L.QConv2d(3, 4, 3, stride=2, padding=1, param_dtype=jnp.float64, rngs=_rngs()),
        (1, 3, 6, 6),
    ),
    "flatten_then_linear": (
        lambda: nn.Sequential(nn.Conv2d(2, 3, 1), nn.Flatten(), nn.Linear(3 * 2 * 4, 5)),
        lambda: L.Sequential(
            L.Conv2d(2, 3, 1, param_dtype=jnp.float64, rngs=_rngs()),
            L.Flatten(),
            L.Linear(3 * 2 * 4, 5, param_dtype=jnp.float64, rngs=_rngs()),
        ),
        (2, 2, 2, 4),
    ),
}


@pytest.mark.parametrize("case", sorted(WEIGHTED))
def test_converted_layer_matches_torch_and_converts_back(case: str, x64: None) -> None:
    make_torch, make_nnx, shape = WEIGHTED[case]
    torch.manual_seed(0)
    module = make_torch().double()
    twin = torch_to_nnx(module, make_nnx())  # no name map: the paths are torch's keys
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        expected = module(x).numpy()
    assert_close(nhwc_to_nchw(twin(nhwc(x))), expected)
    back = nnx_to_torch(twin, template=module.state_dict())
    assert list(back) == list(module.state_dict())
    assert all(torch.equal(back[k], v) for k, v in module.state_dict().items())


# name -> (torch BatchNorm, NCHW (or (N, C)) input shape, momentum)
BATCHNORM: dict[str, tuple[Callable[..., nn.Module], tuple, float]] = {
    "bn1d_batch4": (nn.BatchNorm1d, (4, 5), 0.1),
    "bn1d_momentum09": (nn.BatchNorm1d, (4, 3), 0.9),
    "bn2d": (nn.BatchNorm2d, (2, 3, 3, 2), 0.1),
    "bn2d_momentum09": (nn.BatchNorm2d, (3, 4, 2, 2), 0.9),
}


@pytest.mark.parametrize("case", sorted(BATCHNORM))
def test_batchnorm_train_step_and_eval_match_torch(case: str, x64: None) -> None:
    make_torch, shape, momentum = BATCHNORM[case]
    channels = shape[1]
    torch.manual_seed(0)
    module = make_torch(channels, momentum=momentum).double()
    with torch.no_grad():  # non-trivial affine parameters and running statistics
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.5, 0.5)
        module.running_mean.uniform_(-1, 1)
        module.running_var.uniform_(0.5, 2)
    twin = torch_to_nnx(module, L.BatchNorm(channels, momentum=momentum, param_dtype=jnp.float64))
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = x * 3 + 1
    with torch.no_grad():
        train_out = module(x).numpy()  # training mode: one update of the statistics
    assert_close(nhwc_to_nchw(twin(nhwc(x))), train_out)
    assert_close(twin.mean[...], module.running_mean.numpy())
    assert_close(twin.var[...], module.running_var.numpy())  # unbiased update, as torch
    module.eval()
    twin.eval()
    assert twin.use_running_average
    with torch.no_grad():
        eval_out = module(x).numpy()
    assert_close(nhwc_to_nchw(twin(nhwc(x))), eval_out)
    assert_close(twin.var[...], module.running_var.numpy())  # eval leaves them alone
    twin.train()
    assert not twin.use_running_average
    # a per-call override, as nnx.BatchNorm's: eval output, statistics unchanged
    assert_close(nhwc_to_nchw(twin(nhwc(x), use_running_average=True)), eval_out)
    assert_close(twin.var[...], module.running_var.numpy())


def test_batchnorm_running_var_on_a_4_row_batch(x64: None) -> None:
    """One training step on a (4, C) batch: the running variance is torch's
    ``BatchNorm1d`` one (unbiased batch variance, torch momentum) by default, and
    ``nnx.BatchNorm``'s (biased, ``momentum_nnx = 1 - momentum``) with
    ``unbiased_running_var=False``."""
    x = np.random.default_rng(0).normal(size=(4, 3)) * 2 + 0.5
    reference = nn.BatchNorm1d(3).double()
    reference(torch.from_numpy(x))
    ours = L.BatchNorm(3, param_dtype=jnp.float64)
    ours(jnp.asarray(x))
    assert_close(ours.var[...], reference.running_var.numpy())
    assert_close(ours.mean[...], reference.running_mean.numpy())
    # the expected value spelled out: 0.9 * 1 + 0.1 * var * 4 / 3
    assert_close(ours.var[...], 0.9 + 0.1 * x.var(axis=0) * 4 / 3)

    biased = L.BatchNorm(3, unbiased_running_var=False, param_dtype=jnp.float64)
    flax_bn = nnx.BatchNorm(3, momentum=0.9, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    flax_bn.mean = nnx.BatchStat(jnp.zeros(3, jnp.float64))
    flax_bn.var = nnx.BatchStat(jnp.ones(3, jnp.float64))
    assert_close(biased(jnp.asarray(x)), flax_bn(jnp.asarray(x)), rtol=1e-10)
    # nnx.BatchNorm's E[x^2] - E[x]^2 variance differs from the two-pass one in rounding
    assert_close(biased.var[...], flax_bn.var[...], rtol=1e-10)
    assert_close(biased.mean[...], flax_bn.mean[...])
    assert_close(biased.var[...], 0.9 + 0.1 * x.var(axis=0))
    assert not np.allclose(biased.var[...], ours.var[...])


def test_sequential_paths_are_torch_state_dict_keys() -> None:
    torch_net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten())
    nnx_net = L.Sequential(L.Conv2d(1, 2, 3, rngs=_rngs()), L.BatchNorm(2), L.ReLU(), L.Flatten())
    paths = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(nnx_net))}
    renamed = {"kernel": "weight", "scale": "weight", "mean": "running_mean", "var": "running_var"}
    as_torch = set()
    for path in paths:
        module, _, leaf = path.rpartition(".")
        as_torch.add(f"{module}.{renamed.get(leaf, leaf)}")
    expected = {k for k in torch_net.state_dict() if not k.endswith("num_batches_tracked")}
    assert as_torch == expected


# (callable that must raise, exception type, message fragment)
BAD_ARGUMENTS = {
    "bn_momentum_above_1": (lambda: L.BatchNorm(3, momentum=1.5), ValueError, "momentum"),
    "bn_momentum_str": (lambda: L.BatchNorm(3, momentum="0.1"), TypeError, "momentum"),
    "bn_eps_zero": (lambda: L.BatchNorm(3, eps=0.0), ValueError, "eps"),
    "bn_one_value_in_training": (
        lambda: L.BatchNorm(3)(jnp.ones((1, 3))),
        ValueError,
        "more than 1 value",
    ),
    "bn_wrong_channels": (lambda: L.BatchNorm(3)(jnp.ones((2, 4))), ValueError, "(N, ..., 3)"),
    "pool_padding_too_large": (lambda: L.MaxPool2d(2, 2, 2), ValueError, "at most half"),
    "pool_not_4d": (lambda: L.AvgPool2d(2)(jnp.ones((4, 4, 1))), ValueError, "NHWC"),
    "conv_bad_kernel": (lambda: L.Conv2d(1, 1, 0, rngs=_rngs()), ValueError, "kernel_size"),
    "dropout_p": (lambda: L.Dropout(1.5), ValueError, "probability"),
    "model_input_shape": (
        lambda: jm.LeNet((28, 28, "1"), 10, rngs=_rngs()),
        ValueError,
        "NCHW",
    ),
    "unknown_model_torch": (lambda: tm.model_from_name("nonet"), ValueError, "unknown model"),
    "unknown_model_jax": (lambda: jm.model_from_name("nonet"), ValueError, "known names"),
    "register_not_a_model": (lambda: tm.register_custom_model(int), TypeError, "Model subclass"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_are_refused_with_a_message(case: str) -> None:
    call, error, fragment = BAD_ARGUMENTS[case]
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


@pytest.mark.parametrize("package", [tm, jm], ids=["torch", "jax"])
def test_registry_lookup_is_case_insensitive_and_custom_models_register(package: Any) -> None:
    assert package.model_from_name("lenet") is package.LeNet
    assert package.model_from_name("RESNETE18") is package.ResnetE18
    names = package.model_names()
    assert names == sorted(names) and all(n == n.lower() for n in names)
    assert {"lenet", "resnete", "resnete18", "resnete34"} <= set(names)
    saved = package._REGISTRY.snapshot()
    try:
        custom = type("MyNet", (package.Model,), {"name": "MyNet"})
        assert package.register_custom_model(custom) is custom
        assert package.model_from_name("mynet") is custom
        other = type("Other", (package.Model,), {"name": "MYNET"})
        with pytest.raises(ValueError, match="model name 'mynet' is already registered"):
            package.register_custom_model(other)
    finally:
        package._REGISTRY.restore(saved)
    assert "mynet" not in package.model_names()


def test_both_frameworks_register_the_same_names() -> None:
    assert tm.model_names() == jm.model_names()
