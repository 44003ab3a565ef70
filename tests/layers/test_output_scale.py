"""Learnable output scales (``output_scale=True``) on the torch layers and through
:mod:`bitorch_jax.convert`, and torch's answer to ``padding="same"`` with a stride.

The torch-vs-Flax parity of the scaled layers (outputs, input/weight/bias/scale
gradients) is in the layer case table (``*-outputscale-*`` cases of
:data:`parity_tests.layers.CASES`), run by ``tests/layers/test_layer_parity.py``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest
import torch
from flax import nnx

import bitorch.layers as tl
from bitorch_jax.convert import linen_to_torch, nnx_to_torch, torch_to_linen, torch_to_nnx
from bitorch_jax.layers import nnx as qn

TORCH_LAYERS = {
    "QLinear": lambda **kw: tl.QLinear(5, 4, **kw),
    "QConv1d": lambda **kw: tl.QConv1d(5, 4, 3, padding=1, **kw),
    "QConv2d": lambda **kw: tl.QConv2d(5, 4, 3, padding=1, **kw),
    "QConv2d_NoAct": lambda **kw: tl.QConv2d_NoAct(5, 4, 3, **kw),
}
INPUTS = {"QLinear": (3, 5), "QConv1d": (2, 5, 6), "QConv2d": (2, 5, 4, 4),
          "QConv2d_NoAct": (2, 5, 4, 4)}  # fmt: skip


@pytest.mark.parametrize("name", TORCH_LAYERS)
@pytest.mark.parametrize("bias", [False, True])
def test_torch_output_scale_multiplies_before_the_bias(name: str, bias: bool) -> None:
    torch.manual_seed(0)
    scaled = TORCH_LAYERS[name](bias=bias, output_scale=True)
    plain = TORCH_LAYERS[name](bias=bias)
    assert "scale" not in plain.state_dict() and plain.scale is None
    assert scaled.state_dict()["scale"].shape == (4,)
    assert torch.equal(scaled.scale, torch.ones(4))
    plain.load_state_dict({k: v for k, v in scaled.state_dict().items() if k != "scale"})
    x = torch.randn(INPUTS[name])
    with torch.no_grad():
        scaled.scale.copy_(torch.tensor([0.5, -2.0, 3.0, 0.25]))
    channel = (-1,) if name == "QLinear" else (-1, *[1] * (len(INPUTS[name]) - 2))
    shift = plain.bias.view(channel) if bias else 0
    want = (plain(x) - shift) * scaled.scale.view(channel) + shift
    torch.testing.assert_close(scaled(x), want, rtol=1e-6, atol=1e-6)
    scaled(x).sum().backward()
    assert scaled.scale.grad is not None and torch.any(scaled.scale.grad != 0)
    scaled.reset_parameters()
    assert torch.equal(scaled.scale.detach(), torch.ones(4)), "reset_parameters: scale to ones"


def test_041_positional_signatures_still_work() -> None:
    layer = tl.QLinear(3, 2, False, None, torch.float64)
    assert layer.weight.dtype == torch.float64 and layer.scale is None
    conv = tl.QConv2d(2, 4, 3, 1, 1, 1, 2, False)
    assert conv.groups == 2 and conv.scale is None
    scaled = tl.QConv2d(2, 4, 3, dtype=torch.float64, output_scale=True)
    assert scaled.scale.dtype == torch.float64


@pytest.mark.parametrize("name", ["QLinear", "QConv2d"])
def test_bad_output_scale_is_a_type_error(name: str) -> None:
    with pytest.raises(TypeError, match="output_scale must be a bool"):
        TORCH_LAYERS[name](output_scale=1)


def test_torch_refuses_same_padding_with_a_stride() -> None:
    """torch's ``nn.ConvNd`` refuses it (bitorch_jax's ``QConv`` accepts it)."""
    with pytest.raises(ValueError, match="same"):
        tl.QConv2d(2, 3, 3, stride=2, padding="same")
    assert qn.QConv(2, 3, (3, 3), strides=2, padding="same", rngs=nnx.Rngs(0)).padding == "same"


class _Net(torch.nn.Module):
    """A scaled QLinear and QConv2d beside BatchNorm and LayerNorm (whose 1-d ``weight``
    is Flax's ``scale``): the two meanings of ``scale`` must not be confused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = tl.QConv2d(2, 3, 3, padding=1, output_scale=True)
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = tl.QLinear(4, 3, output_scale=True)
        self.ln = torch.nn.LayerNorm(3)


def _randomised(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.randn_like(value).abs() + 0.1)
    return module.state_dict()


def test_conversion_keeps_scale_apart_from_norm_weights() -> None:
    net = _Net()
    state = _randomised(net)
    params = torch_to_linen(net)["params"]
    assert sorted(params["conv"]) == ["kernel", "scale"]
    assert sorted(params["fc"]) == ["bias", "kernel", "scale"]
    assert sorted(params["bn"]) == ["bias", "scale"] and sorted(params["ln"]) == ["bias", "scale"]
    np.testing.assert_array_equal(params["fc"]["scale"], state["fc.scale"].numpy())
    np.testing.assert_array_equal(params["ln"]["scale"], state["ln.weight"].numpy())
    back = linen_to_torch(torch_to_linen(net), template=state)
    assert list(back) == list(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key
    # a state_dict alone (no module) converts the same way
    assert jax.tree.map(np.asarray, torch_to_linen(dict(state))["params"]["fc"]).keys() == {
        "bias", "kernel", "scale"
    }  # fmt: skip


def test_nnx_round_trip_of_scaled_layers() -> None:
    source: dict[str, Any] = {
        "fc": tl.QLinear(4, 3, output_scale=True),
        "conv": tl.QConv1d(2, 3, 2, bias=True, output_scale=True),
    }
    for name, layer in source.items():
        state = _randomised(layer)
        if name == "fc":
            model = qn.QLinear(4, 3, output_scale=True, rngs=nnx.Rngs(0))
        else:
            model = qn.QConv(2, 3, (2,), use_bias=True, output_scale=True, rngs=nnx.Rngs(0))
        torch_to_nnx(layer, model)
        np.testing.assert_array_equal(model.scale[...], state["scale"].numpy())
        back = nnx_to_torch(model, template=state)
        assert all(torch.equal(back[k], v) for k, v in state.items()), name
        without = qn.QLinear(4, 3, rngs=nnx.Rngs(0)) if name == "fc" else None
        if without is not None:
            with pytest.raises(ValueError, match="scale"):
                torch_to_nnx(layer, without)  # a scale the model lacks is refused
