"""bitorch.summary and bitorch_jax.summary: the same small net in torch, NNX and linen gives
the same totals (parameters per bit width, stored and packed bytes, MACs), checked by hand.

The net: QConv2d(3 -> 8, 3x3, padding 1) on 6x6, BatchNorm, QActivation, flatten,
QLinear(288 -> 16), Linear(16 -> 10). By hand, per example:

=============  =======================  ===========  ==============================
layer          1-bit params             32-bit       MACs
=============  =======================  ===========  ==============================
conv           8 * 3 * 3 * 3 = 216      0            binary 6 * 6 * 8 * 27 = 7,776
bn             0                        4 * 8 = 32   0
act            0                        0            0
fc             288 * 16 = 4,608         16           binary 4,608
head           0                        160 + 10     full precision 160
=============  =======================  ===========  ==============================

Totals: 4,824 1-bit and 218 32-bit parameters; stored ``5,042 * 4 = 20,168`` bytes; packed
``(4,824 + 218 * 32) / 8 = 1,475`` bytes (ratio 13.67); MACs 12,384 binary, 160 FP.
``nnx.tabulate`` (printed next to ours) counts 5,026 ``Param`` + 16 ``BatchStat`` = 5,042.
"""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
import torch
from flax import nnx
from torch import nn as tnn

import bitorch.summary as torch_summary
import bitorch_jax.summary as jax_summary
from bitorch.layers import QActivation, QConv2d, QLinear
from bitorch.quantizations import Quantization, Sign, WeightDoReFa
from bitorch_common.summary import ModelSummary
from bitorch_jax.layers import linen as qlinen
from bitorch_jax.layers import nnx as qnnx
from bitorch_jax.quantizations import WeightDoReFa as JaxWeightDoReFa

EXPECTED = {
    "params": {1: 4824, 32: 218},
    "stored_bytes": 20168,
    "packed_bytes": 1475.0,
    "binary_macs": 12384,
    "fp_macs": 160,
}


class TorchNet(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = QConv2d(3, 8, 3, padding=1)
        self.bn = tnn.BatchNorm2d(8)
        self.act = QActivation("sign")
        self.fc = QLinear(288, 16)
        self.head = tnn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.act(self.bn(self.conv(x))).flatten(1)))


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = qnnx.QConv(3, 8, (3, 3), padding=1, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.act = qnnx.QActivation("sign")
        self.fc = qnnx.QLinear(288, 16, rngs=rngs)
        self.head = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.act(self.bn(self.conv(x)))
        return self.head(self.fc(x.reshape(x.shape[0], -1)))


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = qlinen.QConv(8, (3, 3), padding=1, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, name="bn")(x)
        x = qlinen.QActivation("sign", name="act")(x)
        x = qlinen.QDense(16, name="fc")(x.reshape(x.shape[0], -1))
        return nn.Dense(10, name="head")(x)


def totals(info: ModelSummary) -> dict:
    return {
        "params": info.params_by_bits,
        "stored_bytes": info.stored_bytes,
        "packed_bytes": info.packed_bytes,
        "binary_macs": info.binary_macs,
        "fp_macs": info.fp_macs,
    }


@pytest.fixture(scope="module")
def summaries() -> dict[str, ModelSummary]:
    return {
        "torch": torch_summary.summary(TorchNet(), torch.zeros(1, 3, 6, 6)),
        "nnx": jax_summary.summary(NNXNet(nnx.Rngs(0)), jnp.zeros((1, 6, 6, 3))),
        "linen": jax_summary.summary(LinenNet(), jnp.zeros((1, 6, 6, 3))),
    }


@pytest.mark.parametrize("framework", ["torch", "nnx", "linen"])
def test_totals_match_the_hand_count(summaries: dict, framework: str) -> None:
    info = summaries[framework]
    assert totals(info) == EXPECTED
    assert info.total_params == 5042
    assert round(info.compression_ratio, 2) == 13.67
    assert [layer.name for layer in info.layers] == ["conv", "bn", "act", "fc", "head"]


@pytest.mark.parametrize("framework", ["torch", "nnx", "linen"])
def test_rows_match_the_hand_count(summaries: dict, framework: str) -> None:
    rows = {layer.name: layer for layer in summaries[framework].layers}
    conv = rows["conv"]
    assert conv.params == {1: 216} and conv.stored_bytes == 864 and conv.packed_bytes == 27
    assert (conv.binary_macs, conv.fp_macs) == (7776, 0)
    assert conv.output_shape == ((1, 8, 6, 6) if framework == "torch" else (1, 6, 6, 8))
    assert rows["bn"].params == {32: 32} and rows["bn"].binary_macs == rows["bn"].fp_macs == 0
    assert rows["act"].params == {} and rows["act"].output_shape[-1] in (6, 8)
    assert rows["fc"].params == {1: 4608, 32: 16} and rows["fc"].binary_macs == 4608
    assert rows["fc"].packed_bytes == 4608 / 8 + 16 * 4
    head = rows["head"]
    assert head.params == {32: 170} and (head.fp_macs, head.binary_macs) == (160, 0)


def test_table_and_nnx_tabulate_side_by_side(summaries: dict) -> None:
    ours = str(summaries["nnx"])
    theirs = nnx.tabulate(
        NNXNet(nnx.Rngs(0)),
        jnp.zeros((1, 6, 6, 3)),
        console_kwargs={"width": 200, "force_terminal": False},
    )
    print("\n--- bitorch_jax.summary (NNX) ---\n" + ours)
    print("\n--- bitorch.summary (torch) ---\n" + str(summaries["torch"]))
    print("\n--- nnx.tabulate ---\n" + theirs)
    # nnx.tabulate's totals: 5,026 Param and 16 BatchStat, 5,042 together as ours.
    assert "5,026" in theirs and "Total Parameters: 5,042" in theirs
    assert "Total params                 5,042" in ours
    assert "| conv" in ours and "QConv" in ours and "# 1-bit" in ours and "# 32-bit" in ours
    assert "1,475 B (1.44 KiB)" in ours and "13.67x" in ours and "12,384 / 160" in ours


def test_to_dict_and_json(summaries: dict) -> None:
    info = summaries["torch"]
    data = json.loads(info.to_json())
    assert data == info.to_dict()
    assert data["model"] == "TorchNet" and data["framework"] == "torch"
    assert data["totals"]["params"] == {"1": 4824, "32": 218}
    assert data["totals"]["packed_bytes"] == 1475.0
    assert data["layers"][0] == {
        "name": "conv",
        "type": "QConv2d",
        "output_shape": [1, 8, 6, 6],
        "params": {"1": 216},
        "total_params": 216,
        "stored_bytes": 864,
        "packed_bytes": 27.0,
        "binary_macs": 7776,
        "fp_macs": 0,
    }
    assert json.loads(summaries["nnx"].to_json())["totals"] == data["totals"]


def test_grouped_strided_conv_and_non_binary_layers() -> None:
    """groups=2, stride 2: MACs = 8 * 3 * 3 * (3 * 3 * 4 / 2); a 32-bit input quantizer
    makes the MACs full precision; a 2-bit weight quantizer counts at 2 bits."""
    net = tnn.Sequential(
        QConv2d(4, 8, 3, stride=2, padding=1, groups=2),
        tnn.Flatten(),
        QLinear(72, 4, bias=False, input_quantization="identity"),
        QLinear(4, 4, bias=False, weight_quantization=WeightDoReFa(bits=2)),
    )
    info = torch_summary.summary(net, torch.zeros(2, 4, 6, 6))
    conv, flat, fp_input, two_bit = info.layers
    assert conv.params == {1: 144} and conv.binary_macs == 8 * 3 * 3 * 18
    assert flat.params == {} and flat.output_shape == (2, 72)
    assert (fp_input.binary_macs, fp_input.fp_macs) == (0, 72 * 4)
    assert two_bit.params == {2: 16} and two_bit.packed_bytes == 4.0 and two_bit.fp_macs == 16
    assert "# 2-bit" in str(info)

    class JaxNet(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv = qnnx.QConv(4, 8, (3, 3), strides=2, padding=1, feature_group_count=2,
                                   rngs=rngs)  # fmt: skip
            self.fc = qnnx.QLinear(72, 4, use_bias=False, input_quantization="identity", rngs=rngs)
            two_bits = JaxWeightDoReFa(bits=2)
            self.q2 = qnnx.QLinear(4, 4, use_bias=False, weight_quantization=two_bits, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            x = self.conv(x)
            return self.q2(self.fc(x.reshape(x.shape[0], -1)))

    jinfo = jax_summary.summary(
        JaxNet(nnx.Rngs(0)), jax.ShapeDtypeStruct((2, 6, 6, 4), jnp.float32)
    )
    jconv = jinfo.layers[0]
    assert jconv.params == conv.params and jconv.binary_macs == conv.binary_macs
    assert totals(jinfo) == totals(info)


def test_summary_leaves_the_models_as_they_were() -> None:
    net = TorchNet().train()
    net.act.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch_summary.summary(net, torch.randn(4, 3, 6, 6))
    assert net.training and not net.act.training and net.bn.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())

    model = NNXNet(nnx.Rngs(0))
    before = jax.tree.map(lambda a: a.copy(), nnx.state(model))
    classes = (qnnx.QConv, qnnx.QLinear, qnnx.QActivation, nnx.BatchNorm, nnx.Linear, NNXNet)
    calls = [vars(cls)["__call__"] for cls in classes]
    jax_summary.summary(model, jnp.ones((4, 6, 6, 3)))
    assert [vars(cls)["__call__"] for cls in classes] == calls, "__call__ not restored"
    after = nnx.state(model)
    assert all(
        bool(jnp.array_equal(a, b))
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    )


def test_calls_twice_count_macs_twice_and_uncalled_layers_last() -> None:
    class Twice(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = tnn.Linear(3, 3)
            self.fc = QLinear(4, 4, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x))

    info = torch_summary.summary(Twice(), torch.zeros(1, 4))
    assert [layer.name for layer in info.layers] == ["fc", "unused"]
    assert info.layers[0].binary_macs == 32 and info.layers[0].params == {1: 16}
    assert info.layers[1].output_shape is None and "| unused" in str(info) and " ? " in str(info)


def test_quantizers_are_part_of_their_layer_or_rows_on_their_own() -> None:
    """A quantizer inside a layer is folded into it, a learnable one's parameters too; a
    quantizer used on its own (an activation in a Sequential) is a row."""

    class ScaledSign(Quantization):
        name = "scaledsign_summary_test"  # not registered: passed as an instance
        bit_width = 1

        def __init__(self) -> None:
            super().__init__()
            self.scale = tnn.Parameter(torch.ones(()))

        def quantize(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sign(x) * self.scale

    net = tnn.Sequential(QLinear(4, 4, bias=False, weight_quantization=ScaledSign()), Sign())
    info = torch_summary.summary(net, torch.zeros(1, 4))
    assert [(layer.name, layer.type) for layer in info.layers] == [("0", "QLinear"), ("1", "Sign")]
    assert info.layers[0].params == {1: 16, 32: 1}, "the scale counts, at 32 bits"


def test_float64_counts_64_bits() -> None:
    info = torch_summary.summary(
        QLinear(4, 2, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64)
    )
    assert info.params_by_bits == {1: 8, 64: 2} and info.stored_bytes == 80


def test_bad_models_are_refused() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        torch_summary.summary(lambda x: x, torch.zeros(1))
    with pytest.raises(TypeError, match="flax.nnx.Module or a flax.linen.Module"):
        jax_summary.summary(lambda x: x, jnp.zeros(1))
    with pytest.raises(TypeError, match="variables= is for linen"):
        jax_summary.summary(NNXNet(nnx.Rngs(0)), jnp.zeros((1, 6, 6, 3)), variables={})


def test_the_packages_call_their_summary_modules() -> None:
    import bitorch
    import bitorch_jax

    assert bitorch.summary is torch_summary and bitorch_jax.summary is jax_summary
    info = bitorch.summary(TorchNet(), torch.zeros(1, 3, 6, 6))
    assert totals(info) == EXPECTED
    assert totals(bitorch_jax.summary(NNXNet(nnx.Rngs(0)), jnp.zeros((1, 6, 6, 3)))) == EXPECTED


def test_linen_with_given_variables() -> None:
    module = LinenNet()
    variables = module.init(jax.random.key(0), jnp.zeros((1, 6, 6, 3)))
    info = jax_summary.summary(module, jnp.zeros((1, 6, 6, 3)), variables=variables)
    assert totals(info) == EXPECTED and info.framework == "flax.linen"
