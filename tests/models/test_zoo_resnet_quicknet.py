"""ResNet V1/V2 and QuickNet in both frameworks (bitorch 0.4.1's ``resnet``/``quicknet``).

For each case of the table: the torch model builds and loads its own ``state_dict`` with
``strict=True``; the NNX twin (the same constructor call, built abstractly) takes the
torch weights with ``torch_to_nnx`` and no name map (which refuses any key or shape
mismatch), and ``nnx_to_torch`` gives the ``state_dict`` back bit for bit. With
``forward``: in float64 (scoped ``x64`` fixture) eval-mode logits agree to 1e-12
relative; with ``train`` also one training-mode forward gives torch's outputs and every
BatchNorm's running statistics (unbiased variance; QuickNet's momentum 0.9).

The bottleneck networks (ResNet-50/152) get keys, shapes, conversion and one torch
forward; their blocks are compared one by one (a whole-network NNX forward compiles for
long on a loaded CI machine). ``scripts/zoo041_diff.py`` compares every model's logits
with bitorch 0.4.1 itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import bitorch.models as tm
import bitorch_jax.models as jm
from bitorch.models import quicknet as t_quicknet
from bitorch.models import resnet as t_resnet
from bitorch_jax.convert import nnx_to_torch, torch_to_nnx
from bitorch_jax.models import quicknet as j_quicknet
from bitorch_jax.models import resnet as j_resnet
from tests.models.zoo_helpers import (
    assert_state_dicts_equal,
    forward,
    nhwc,
    randomise_batchnorms,
)

RTOL = 1e-12


@dataclass(frozen=True)
class Case:
    name: str  # registry name
    input_shape: tuple[int, ...]  # NCHW, batch included
    args: tuple = ()  # positional arguments before input_shape (Resnet's version, depth)
    num_classes: int = 10
    forward: bool = True  # False: keys, shapes and conversion only
    train: bool = True  # one training-mode forward as well


CASES = {
    "resnet18v1": Case("Resnet18V1", (2, 3, 8, 8)),
    "resnet18v2": Case("Resnet18V2", (2, 3, 8, 8), train=False),
    # bottleneck networks: keys, shapes, conversion and a torch forward (a NNX forward
    # compiles for long on a loaded CI machine; the blocks are compared one by one in
    # test_bottleneck_blocks_agree, and zoo041_diff.py checks the whole nets against
    # 0.4.1). ResNet-34 and QuickNetLarge add nothing new here.
    "resnet50v1": Case("Resnet50V1", (2, 3, 8, 8), num_classes=3, forward=False),
    "resnet50v2": Case("Resnet50V2", (2, 3, 8, 8), num_classes=3, forward=False),
    "resnet152v2": Case("Resnet152V2", (2, 3, 8, 8), forward=False),
    # ImageNet stem (input_shape[-2:] == (224, 224))
    "resnet18v2_imagenet": Case("Resnet18V2", (1, 3, 224, 224), num_classes=2, forward=False),
    # QuickNet needs 32x32 at least (stem /4, then three stride-2 transitions); QuickNet
    # and QuickNetLarge are the same class with other sizes (zoo041_diff.py checks them)
    "quicknetsmall": Case("QuickNetSmall", (2, 3, 32, 32)),
}


def build(case: Case, double: bool) -> tuple[torch.nn.Module, nnx.Module]:
    torch.manual_seed(0)
    # QuickNetSmall/Large take num_classes by keyword only (0.4.1's signatures)
    torch_model = tm.model_from_name(case.name)(
        *case.args, case.input_shape, num_classes=case.num_classes
    )
    # built abstractly (eager random initialisation compiles per shape: slow on CPU);
    # torch_to_nnx writes every variable and refuses a model it would leave unset
    nnx_model = nnx.eval_shape(
        lambda: jm.model_from_name(case.name)(
            *case.args,
            case.input_shape,
            num_classes=case.num_classes,
            rngs=nnx.Rngs(0),
            param_dtype=jnp.float64 if double else jnp.float32,
        )
    )
    return (torch_model.double() if double else torch_model), nnx_model


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("case_id", list(CASES))
def test_twins_agree(case_id: str, x64: None) -> None:
    case = CASES[case_id]
    torch_model, nnx_model = build(case, double=True)
    randomise_batchnorms(torch_model, seed=3)
    state = {k: v.clone() for k, v in torch_model.state_dict().items()}
    assert torch_model.load_state_dict(state, strict=True)  # its own keys and shapes

    torch_to_nnx(torch_model, nnx_model)  # no name map
    assert_state_dicts_equal(nnx_to_torch(nnx_model, template=state), state, exact=True, rtol=1e-10)
    x = torch.randn(*case.input_shape, generator=torch.Generator().manual_seed(1)).double()
    torch_model.eval()
    with torch.no_grad():
        expected = torch_model(x).numpy()
    assert expected.shape == (case.input_shape[0], case.num_classes)
    if not case.forward:
        return

    nnx_model.eval()
    actual = np.asarray(forward(nnx_model, nhwc(x)))
    assert actual.dtype == np.float64
    assert_close(actual, expected, RTOL)
    if not case.train:
        return

    torch_model.train()
    nnx_model.train()
    with torch.no_grad():
        expected = torch_model(x).numpy()
    actual = np.asarray(forward(nnx_model, nhwc(x)))
    assert_close(actual, expected, 1e-10)
    after = torch_model.state_dict()
    var_key = next(k for k in after if k.endswith("running_var"))
    assert not torch.equal(after[var_key], state[var_key])  # the statistics did move
    back = nnx_to_torch(nnx_model, template=after)
    assert_state_dicts_equal(back, after, exact=False, rtol=1e-10)


@pytest.mark.parametrize("version", [1, 2])
def test_bottleneck_blocks_agree(version: int, x64: None) -> None:
    """One bottleneck block with a downsampling residual and one without: eval- and
    training-mode outputs and running statistics of the twins agree in float64."""
    t_block = getattr(t_resnet, f"BottleneckV{version}")
    j_block = getattr(j_resnet, f"BottleneckV{version}")
    torch.manual_seed(0)
    torch_net = torch.nn.Sequential(t_block(4, 16, -1), t_block(16, 16, 1)).double()
    nnx_net = nnx.eval_shape(
        lambda: j_resnet.Sequential(
            j_block(4, 16, -1, rngs=nnx.Rngs(0), param_dtype=jnp.float64),
            j_block(16, 16, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float64),
        )
    )
    randomise_batchnorms(torch_net, seed=3)
    torch_to_nnx(torch_net, nnx_net)
    x = torch.randn(4, 4, 6, 6, generator=torch.Generator().manual_seed(1)).double()
    for train in (False, True):
        torch_net.train(train)
        nnx_net.train() if train else nnx_net.eval()
        with torch.no_grad():
            expected = torch_net(x).numpy()
        assert expected.shape == (4, 16, 3, 3)
        actual = np.asarray(forward(nnx_net, nhwc(x))).transpose(0, 3, 1, 2)
        assert_close(actual, expected, 1e-10)
    after = torch_net.state_dict()
    assert_state_dicts_equal(nnx_to_torch(nnx_net, template=after), after, exact=False, rtol=1e-10)


# ----------------------------------------------------------------------------- structure


def test_registries_list_the_family_in_both_frameworks() -> None:
    names = [
        "Resnet", "Resnet18V1", "Resnet34V1", "Resnet50V1", "Resnet152V1", "Resnet18V2",
        "Resnet34V2", "Resnet50V2", "Resnet152V2", "QuickNet", "QuickNetSmall", "QuickNetLarge",
    ]  # fmt: skip
    for name in names:
        for package in (tm, jm):
            cls = package.model_from_name(name.upper())
            assert cls.__name__ == cls.name == name
            assert getattr(package, name) is cls
            assert name.lower() in package.model_names()


@pytest.mark.parametrize(
    ("name", "blocks", "downsampling_stages"),
    [("Resnet18V1", (2, 2, 2, 2), (1, 2, 3)), ("Resnet50V2", (3, 4, 6, 3), (0, 1, 2, 3))],
)
def test_resnet_layout_keeps_0_4_1_strides(
    name: str, blocks: tuple[int, ...], downsampling_stages: tuple[int, ...]
) -> None:
    """Stage ``i`` is feature ``3 + i`` (V1: input BN, conv, BN first) or ``2 + i`` (V2); its
    first block has stride 2 and a ``downsample`` exactly when the channels change (the
    first bottleneck stage too), as in 0.4.1."""
    torch_model = tm.model_from_name(name)((1, 3, 8, 8), num_classes=2)
    nnx_model = nnx.eval_shape(
        lambda: jm.model_from_name(name)((1, 3, 8, 8), num_classes=2, rngs=nnx.Rngs(0))
    )
    first = 3 if name.endswith("V1") else 2
    for stage, count in enumerate(blocks):
        t_stage = torch_model._model.features[first + stage]
        j_stage = nnx_model._model.features[first + stage]
        assert len(t_stage) == len(j_stage) == count
        for model_stage in (t_stage, j_stage):
            head = model_stage[0]
            assert head.shall_downsample == (stage in downsampling_stages)
            assert head.stride == (2 if stage in downsampling_stages else 1)
            assert all(block.stride == 1 for block in list(model_stage)[1:])


def test_imagenet_stem_only_for_a_224_tuple() -> None:
    """0.4.1 compares ``input_shape[-2:]`` with the tuple ``(224, 224)``: a list
    ``[1, 3, 224, 224]`` gets the small 3x3 stem, in both frameworks."""
    for shape, kernel in (((1, 3, 224, 224), 7), ([1, 3, 224, 224], 3)):
        torch_model = tm.Resnet18V1(shape, num_classes=2)
        nnx_model = nnx.eval_shape(
            lambda s=shape: jm.Resnet18V1(s, num_classes=2, rngs=nnx.Rngs(0))
        )
        assert torch_model._model.features[1].kernel_size == (kernel, kernel)
        assert nnx_model._model.features[1].kernel.shape[:2] == (kernel, kernel)


def test_bottleneck_convolutions_do_not_binarise_the_input() -> None:
    """Basic blocks use ``QConv2d`` (sign input), bottlenecks ``QConv2d_NoAct``."""
    basic = t_resnet.BasicBlockV1(4, 8, -1).body[0]
    bottleneck = t_resnet.BottleneckV1(4, 8, -1).body[0]
    assert hasattr(basic, "activation") and not hasattr(bottleneck, "activation")
    j_basic = nnx.eval_shape(lambda: j_resnet.BasicBlockV1(4, 8, -1, rngs=nnx.Rngs(0))).body[0]
    j_bottleneck = nnx.eval_shape(lambda: j_resnet.BottleneckV1(4, 8, -1, rngs=nnx.Rngs(0))).body[0]
    assert j_basic.input_quantization.name == "sign"
    assert j_bottleneck.input_quantization.name == "identity"
    assert j_bottleneck.gradient_cancellation_threshold == 0


def test_quicknet_blur_is_fixed_and_clip_weights_clips() -> None:
    """The transition's depthwise conv is the blur filter in both, not trained in torch
    (``requires_grad`` off) and without gradient in NNX (a ``FrozenParam``);
    ``clip_weights`` clips the residual blocks' binary kernels to +-1.25."""
    blur = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16
    for size in (2, 3, 5):
        np.testing.assert_array_equal(
            t_quicknet.blur_kernel(size).numpy(), j_quicknet.blur_kernel(size)
        )
    np.testing.assert_array_equal(j_quicknet.blur_kernel(3), blur)
    torch_model = tm.QuickNetSmall((1, 3, 32, 32), num_classes=2)
    depth = torch_model._model.body.Transition_1.depth_conv.weight
    assert not depth.requires_grad and depth.shape == (32, 1, 3, 3)
    np.testing.assert_allclose(depth.detach().numpy()[:, 0], np.broadcast_to(blur, (32, 3, 3)))

    transition = j_quicknet.TransitionBlock(4, 8, 2, rngs=nnx.Rngs(0))
    kernel = transition.depth_conv.kernel
    assert isinstance(kernel, j_quicknet.FrozenParam) and isinstance(kernel, nnx.Param)
    np.testing.assert_allclose(np.asarray(kernel[...])[:, :, 0, 1], blur, rtol=1e-7)
    grads = nnx.grad(lambda m: m(jnp.ones((1, 6, 6, 4))).sum())(transition)
    assert not np.any(np.asarray(grads["depth_conv"]["kernel"][...]))
    assert np.any(np.asarray(grads["conv"]["kernel"][...]))
    trainable = nnx.state(transition, nnx.All(nnx.Param, nnx.Not(j_quicknet.FrozenParam)))
    assert "depth_conv" not in trainable

    block = torch_model._model.body.ResidualBlocks_1[0]
    with torch.no_grad():
        block.qconv.weight.fill_(3.0)
    torch_model.apply(torch_model.on_train_batch_end)
    assert float(block.qconv.weight.detach().max()) == 1.25

    nnx_model = nnx.eval_shape(
        lambda: jm.QuickNetSmall((1, 3, 32, 32), num_classes=2, rngs=nnx.Rngs(0))
    )
    torch_to_nnx(torch_model, nnx_model)
    j_block = nnx_model._model.body.ResidualBlocks_1[0]
    j_block.qconv.kernel[...] = jnp.full_like(j_block.qconv.kernel[...], -3.0)
    nnx_model.clip_weights()
    assert float(j_block.qconv.kernel[...].min()) == -1.25


def test_blocks_initialise_for_real() -> None:
    """A real (not abstract) initialisation builds and runs (float32, default mode). The
    models are built abstractly elsewhere (eager initialisation is slow on CPU); the
    blocks here and the transition block above cover the concrete path."""
    bottleneck = j_resnet.BottleneckV2(4, 8, -1, rngs=nnx.Rngs(0))
    out = forward(bottleneck, jnp.ones((2, 4, 4, 4)))
    assert out.shape == (2, 2, 2, 8) and out.dtype == jnp.float32
    residual = j_quicknet.ResidualBlock(4, 4, rngs=nnx.Rngs(0))
    out = forward(residual, jnp.ones((2, 3, 3, 4)))
    assert out.shape == (2, 3, 3, 4) and bool(jnp.isfinite(out).all())


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("package", [tm, jm], ids=["torch", "jax"])
def test_bad_arguments_are_refused(package: object) -> None:
    extra = {} if package is tm else {"rngs": nnx.Rngs(0)}
    with pytest.raises(ValueError, match="no resnet spec for 20 layers"):
        package.Resnet(1, 20, (1, 3, 8, 8), 10, **extra)
    with pytest.raises(ValueError, match="invalid resnet version 3"):
        package.Resnet(3, 18, (1, 3, 8, 8), 10, **extra)
    with pytest.raises(ValueError, match="same length"):
        package.QuickNet((1, 3, 32, 32), [32, 64], [1], num_classes=2, **extra)
    with pytest.raises(ValueError, match="divisible by 4"):
        package.QuickNet((1, 3, 32, 32), [30, 64], [1, 1], num_classes=2, **extra)
    # 0.4.1's signature: QuickNetSmall passes section_filters itself
    with pytest.raises(TypeError, match="section_filters"):
        package.QuickNetSmall((1, 3, 32, 32), [8, 8], **extra)


@pytest.mark.parametrize("module", [t_resnet, j_resnet], ids=["torch", "jax"])
def test_block_stride_is_checked(module: object) -> None:
    extra = {} if module is t_resnet else {"rngs": nnx.Rngs(0)}
    with pytest.raises(ValueError, match="stride must be -1"):
        module.BasicBlockV1(4, 4, 0, **extra)
    with pytest.raises(TypeError, match="stride must be an int"):
        module.BasicBlockV2(4, 4, 1.0, **extra)
