"""BinaryDenseNet and MeliusNet (bitorch 0.4.1's ``densenet``/``meliusnet``): torch models
against their NNX twins.

* ``FORWARD``: small widths and inputs; the torch model (float64, random BatchNorm
  statistics) converts into the NNX twin with ``torch_to_nnx`` (no name map); eval
  logits agree to 1e-12 relative; ``nnx_to_torch`` gives the torch ``state_dict`` back
  bit for bit, and it loads with ``strict=True``; one training step (no dropout) gives
  the same output and the same (unbiased) running statistics.
* ``NAMES``: every model of both families (MeliusNet29 too) at a reduced width: the NNX
  state paths and shapes are the torch keys (``torch_to_nnx`` refuses any mismatch) and
  the torch model runs one tiny forward. The 0.4.1 widths are checked against 0.4.1's
  own layout by ``test_zoo_keys041.py`` (``data041/DenseNet*.json``, ``MeliusNet*.json``).
* bad arguments: both frameworks refuse them with the same message.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

import bitorch.models as tm
import bitorch.models.densenet as tdense
import bitorch.models.meliusnet as tmelius
import bitorch_jax.models as jm
import bitorch_jax.models.densenet as jdense
import bitorch_jax.models.meliusnet as jmelius
from bitorch_jax.convert import nnx_to_torch, torch_to_nnx
from tests.models.zoo_helpers import forward, nhwc

RTOL = 1e-12
NAMES = [
    "DenseNet28",
    "DenseNet37",
    "DenseNet45",
    "MeliusNet22",
    "MeliusNet23",
    "MeliusNet29",
    "MeliusNet42",
    "MeliusNet59",
    "MeliusNetA",
    "MeliusNetB",
    "MeliusNetC",
]
SMALL = {"num_init_features": 16, "growth_rate": 8}


def torch_class(name: str) -> type:
    return getattr(tdense, name, None) or getattr(tmelius, name)


def jax_class(name: str) -> type:
    return getattr(jdense, name, None) or getattr(jmelius, name)


# id -> (model, constructor kwargs, NCHW input shape); batch 2 so that training works
FORWARD: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    # channel shuffle (16 groups) and a 1x1 convolution with 8 groups in the transitions
    "MeliusNet23": ("MeliusNet23", SMALL, (2, 3, 8, 8)),
    # dilation (1, 1, 2, 4): the last two transitions have no pooling; dropout (eval only)
    "DenseNetFlex-dilated-dropout": (
        "DenseNetFlex",
        {
            "flex_block_config": [1, 1, 1, 1],
            "dilated": True,
            "dropout": 0.2,
            "growth_rate": 16,
            "num_init_features": 32,
        },
        (2, 3, 10, 10),
    ),
    # the ImageNet stem (7x7 stride-2 convolution, BatchNorm, ReLU, max pool)
    "DenseNetFlex-imagenet": (
        "DenseNetFlex",
        {"flex_block_config": [2, 1, 1, 1], "growth_rate": 16, "num_init_features": 32},
        (2, 3, 224, 224),
    ),
}


def randomize_batchnorms(model: nn.Module, seed: int = 1) -> None:
    """Random affine parameters and running statistics, so that eval mode is not ~identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                for tensor, low, high in (
                    (module.weight, 0.5, 1.5),
                    (module.bias, -0.5, 0.5),
                    (module.running_mean, -0.5, 0.5),
                    (module.running_var, 0.5, 2.0),
                ):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


def build_pair(
    name: str, kwargs: dict[str, Any], shape: tuple[int, ...]
) -> tuple[nn.Module, nnx.Module]:
    """The float64 torch model (seeded, random BatchNorms) and its converted NNX twin.

    The twin is built abstractly (``nnx.eval_shape``: eager initialisation is slow and
    every weight is overwritten); the random state of its dropouts is then made real."""
    torch.manual_seed(0)
    torch_model = torch_class(name)(shape, 10, **kwargs).double()
    randomize_batchnorms(torch_model)
    nnx_model = nnx.eval_shape(
        lambda: jax_class(name)(shape, 10, **kwargs, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    )
    torch_to_nnx(torch_model, nnx_model)

    def concrete(leaf: Any) -> jax.Array:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key(0)
        return jnp.zeros(leaf.shape, leaf.dtype)

    nnx.update(nnx_model, jax.tree.map(concrete, nnx.state(nnx_model, nnx.RngState)))
    return torch_model, nnx_model


def assert_close(actual: Any, expected: Any) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())


@pytest.mark.parametrize("case", sorted(FORWARD))
def test_eval_logits_match_torch_and_weights_convert_back(case: str, x64: None) -> None:
    name, kwargs, shape = FORWARD[case]
    torch_model, nnx_model = build_pair(name, kwargs, shape)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch_model.eval()
    nnx_model.eval()
    with torch.no_grad():
        expected = torch_model(x)
    assert_close(forward(nnx_model, nhwc(x)), expected.numpy())

    reference = torch_model.state_dict()
    back = nnx_to_torch(nnx_model, template=reference)
    assert list(back) == list(reference)
    for key, value in reference.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    reloaded = torch_class(name)(shape, 10, **kwargs).double().eval()
    reloaded.load_state_dict(back, strict=True)
    with torch.no_grad():
        assert torch.equal(reloaded(x), expected)


@pytest.mark.parametrize("case", sorted(c for c in FORWARD if "dropout" not in FORWARD[c][1]))
def test_training_step_output_and_running_statistics_match_torch(case: str, x64: None) -> None:
    name, kwargs, shape = FORWARD[case]
    torch_model, nnx_model = build_pair(name, kwargs, shape)
    x = 2 * torch.randn(*shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    stats = [k for k in torch_model.state_dict() if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 2 * sum(isinstance(m, nn.BatchNorm2d) for m in torch_model.modules())
    before = {k: torch_model.state_dict()[k].clone() for k in stats}
    torch_model.train()
    nnx_model.train()
    with torch.no_grad():
        expected = torch_model(x)
    assert_close(forward(nnx_model, nhwc(x)), expected.numpy())
    after = torch_model.state_dict()
    back = nnx_to_torch(nnx_model, template=after)
    for key in stats:
        assert not torch.equal(after[key], before[key]), f"{key} did not change"
        assert_close(back[key].numpy(), after[key].numpy())


@pytest.mark.parametrize("name", NAMES)
def test_nnx_paths_are_the_torch_keys_and_torch_runs(name: str) -> None:
    shape = (2, 3, 8, 8)
    torch.manual_seed(0)
    # growth 16: channel shuffles with 16 groups need channel counts divisible by 16
    kwargs = {"num_init_features": 32, "growth_rate": 16}
    torch_model = torch_class(name)(shape, 10, **kwargs)
    nnx_model = nnx.eval_shape(lambda: jax_class(name)(shape, 10, **kwargs, rngs=nnx.Rngs(0)))
    torch_to_nnx(torch_model, nnx_model)  # every key on a variable of the right shape
    reference = torch_model.state_dict()
    back = nnx_to_torch(nnx_model, template=reference)
    assert list(back) == list(reference)
    assert all(torch.equal(back[k], v) for k, v in reference.items())
    with torch.no_grad():
        assert torch_model.eval()(torch.randn(*shape)).shape == (2, 10)


def test_registries_hold_both_families_but_not_meliusnet29() -> None:
    expected = {n.lower() for n in NAMES if n != "MeliusNet29"}
    expected |= {"densenet", "densenetflex", "meliusnet", "meliusnetflex"}
    for package in (tm, jm):
        names = set(package.model_names())
        assert expected <= names
        assert "meliusnet29" not in names
        assert package.model_from_name("MELIUSNETA").__name__ == "MeliusNetA"


def test_spec_tables_are_the_same_in_both_frameworks() -> None:
    assert tdense.DenseNet.densenet_spec == jdense.DenseNet.densenet_spec
    assert tmelius.MeliusNet.meliusnet_spec == jmelius.MeliusNet.meliusnet_spec
    assert tdense.DOWNSAMPLE_STRUCT == jdense.DOWNSAMPLE_STRUCT


@pytest.mark.parametrize(
    ("input_shape", "stem_kernel"),
    [((1, 3, 224, 224), 7), ([1, 3, 224, 224], 3), ((1, 3, 32, 32), 3)],
)
def test_stem_follows_input_shape_as_in_041(input_shape: Any, stem_kernel: int) -> None:
    # 0.4.1 compares input_shape[-2:] with the tuple (224, 224): a list gives the 3x3 stem
    kwargs = {"flex_block_config": [1, 1, 1, 1], "growth_rate": 16, "num_init_features": 32}
    torch_model = tdense.DenseNetFlex(input_shape, 10, **kwargs)
    nnx_model = nnx.eval_shape(
        lambda: jdense.DenseNetFlex(input_shape, 10, **kwargs, rngs=nnx.Rngs(0))
    )
    assert torch_model.state_dict()["_model.features.0.weight"].shape[-1] == stem_kernel
    assert getattr(nnx_model._model.features, "0").kernel.shape[0] == stem_kernel


@pytest.mark.parametrize("groups", [2, 3, 4])
def test_channel_shuffle_matches_torch(groups: int) -> None:
    x = torch.randn(2, 12, 3, 5)
    expected = nn.ChannelShuffle(groups)(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(jdense.ChannelShuffle(groups)(nhwc(x)), expected)


@pytest.mark.parametrize(("channels", "in_channels", "dilation"), [(8, 8, 1), (8, 24, 2)])
def test_improvement_block_matches_torch(
    channels: int, in_channels: int, dilation: int, x64: None
) -> None:
    torch.manual_seed(0)
    block = tmelius.ImprovementBlock(channels, in_channels, dilation).double()
    randomize_batchnorms(block)
    twin = nnx.eval_shape(
        lambda: jmelius.ImprovementBlock(
            channels, in_channels, dilation, rngs=nnx.Rngs(0), param_dtype=jnp.float64
        )
    )
    torch_to_nnx(block, twin)
    block.eval()
    twin.eval()
    x = torch.randn(2, in_channels, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x).permute(0, 2, 3, 1).numpy()
    assert_close(forward(twin, nhwc(x)), expected)


def test_bottleneck_keeps_041_shapes_and_fails_to_run_in_both() -> None:
    # 0.4.1 builds the second BatchNorm of a bottleneck layer for the layer's input
    # channels: the state_dict shapes are kept, and the forward fails in both frameworks
    shape = (2, 3, 8, 8)
    torch_model = tdense.DenseNet28(shape, 10, bn_size=2, **SMALL)
    nnx_model = nnx.eval_shape(
        lambda: jdense.DenseNet28(shape, 10, bn_size=2, **SMALL, rngs=nnx.Rngs(0))
    )
    torch_to_nnx(torch_model, nnx_model)
    key = "_model.features.DenseBlock_1.DenseLayer_2.features.2.weight"
    assert torch_model.state_dict()[key].shape == (24,)  # its input: 16 + 8 channels
    # in the first block layer 1 runs (16 == 2 * 8 channels), layer 2 (24) fails
    kwargs = {"flex_block_config": [3, 1, 1, 1], "bn_size": 2, **SMALL}
    with pytest.raises(RuntimeError):
        tdense.DenseNetFlex(shape, 10, **kwargs)(torch.zeros(shape))
    twin = nnx.eval_shape(lambda: jdense.DenseNetFlex(shape, 10, **kwargs, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="BatchNorm: expected input"):
        nnx.eval_shape(lambda model, x: model(x), twin, jnp.zeros((2, 8, 8, 3)))


SHAPE = (1, 3, 8, 8)
# (model, positional args, kwargs, error type, message fragment)
BAD: dict[str, tuple[str, tuple, dict[str, Any], type, str]] = {
    "densenet_num_layers": ("DenseNet", (99, SHAPE), {}, ValueError, "num_layers=99"),
    "meliusnet_num_layers": ("MeliusNet", ("17", SHAPE), {}, ValueError, "num_layers='17'"),
    "flex_without_blocks": ("DenseNetFlex", (SHAPE,), {}, ValueError, "block config"),
    "flex_bad_blocks": (
        "MeliusNetFlex",
        (SHAPE,),
        {"flex_block_config": [2, 0, 1, 1]},
        ValueError,
        "block config",
    ),
    "flex_wrong_length": (
        "DenseNetFlex",
        (SHAPE,),
        {"flex_block_config": [1, 2, 3]},
        ValueError,
        "wrong number of reductions",
    ),
    "growth_rate_float": ("DenseNet28", (SHAPE,), {"growth_rate": 2.5}, TypeError, "growth_rate"),
    "bn_size_negative": ("MeliusNet22", (SHAPE,), {"bn_size": -1}, ValueError, "bn_size"),
    "dropout_one": ("DenseNet28", (SHAPE,), {"dropout": 1.0}, ValueError, "dropout"),
    "no_channels_left": (
        "DenseNetFlex",
        (SHAPE,),
        {"flex_block_config": [1, 1, 1, 1], "num_init_features": 8, "growth_rate": 1},
        ValueError,
        "transition 1 would have 0 channels",
    ),
    "unknown_downsample": (
        "BaseNetDense",
        (32, 16, [1, 1, 1, 1], [2.0, 2.0, 2.0], 0, "bn,conv"),
        {},
        ValueError,
        "unknown downsample entry 'conv'",
    ),
    "bad_groups": (
        "BaseNetDense",
        (32, 16, [1, 1, 1, 1], [2.0, 2.0, 2.0], 0, "bn,cs:x"),
        {},
        ValueError,
        "groups of 'cs:x'",
    ),
    "improvement_block": ("ImprovementBlock", (64, 32), {}, ValueError, "at most in_channels"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arguments_are_refused_alike(case: str) -> None:
    name, args, kwargs, error, fragment = BAD[case]
    with pytest.raises(error, match=fragment) as torch_error:
        torch_class(name)(*args, **kwargs)
    with pytest.raises(error, match=fragment) as jax_error:  # abstractly: no initialisation
        nnx.eval_shape(lambda: jax_class(name)(*args, **kwargs, rngs=nnx.Rngs(0)))
    assert str(jax_error.value) == str(torch_error.value)
