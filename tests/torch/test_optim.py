"""bitorch.optim: Bop, the binary parameters, binarize_, clip_weights_ (the torch reference).

Bit equality with the JAX port is in ``parity_tests/test_optim_parity.py``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bitorch.layers import QConv2d, QLinear
from bitorch.optim import Bop, binarize_, binary_parameters, clip_weights_, split_binary_parameters
from bitorch.quantizations import WeightDoReFa

# --------------------------------------------------------------------------- Bop


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"threshold": -1e-8}, ValueError),
        ({"threshold": float("nan")}, ValueError),
        ({"threshold": True}, TypeError),
        ({"gamma": 0.0}, ValueError),
        ({"gamma": 1.01}, ValueError),
        ({"gamma": "0.1"}, TypeError),
    ],
)
def test_bop_refuses_bad_hyperparameters(kwargs: dict, error: type) -> None:
    name = next(iter(kwargs))
    w = nn.Parameter(torch.ones(2))
    with pytest.raises(error, match=f"Bop: {name}"):
        Bop([w], **kwargs)
    with pytest.raises(error, match=f"Bop: {name}"):
        Bop([{"params": [w], **kwargs}])  # a param group's own value is checked too


def test_bop_defaults_are_larqs() -> None:
    opt = Bop([nn.Parameter(torch.ones(2))])
    assert opt.defaults == {"threshold": 1e-8, "gamma": 1e-4}


def test_bop_step_by_hand() -> None:
    w = nn.Parameter(torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, -1.0]))
    opt = Bop([w], threshold=0.25, gamma=0.5)
    w.grad = torch.tensor([1.0, 0.5, -1.0, 1.0, -2.0, 0.0])
    opt.step()
    assert torch.equal(opt.state[w]["momentum"], torch.tensor([0.5, 0.25, -0.5, 0.5, -1.0, 0.0]))
    # |m| = 0.25 is not > 0.25; m = 0 never flips; disagreeing signs never flip.
    assert torch.equal(w.detach(), torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0, -1.0]))


def test_bop_skips_parameters_without_gradient_and_refuses_sparse_ones() -> None:
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = Bop([a, b], threshold=0.0, gamma=1.0)
    a.grad = torch.ones(2)
    opt.step()
    assert b not in opt.state and torch.equal(a.detach(), -torch.ones(2))
    emb = nn.Embedding(4, 2, sparse=True)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        Bop(emb.parameters()).step()


def test_bop_closure_and_param_groups() -> None:
    a = nn.Parameter(torch.ones(3))
    b = nn.Parameter(torch.ones(3))
    opt = Bop([{"params": [a], "gamma": 1.0}, {"params": [b]}], threshold=0.5, gamma=0.25)
    assert [g["gamma"] for g in opt.param_groups] == [1.0, 0.25]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (a + b).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 6.0
    # gamma 1: m = g = 1 > 0.5 with w = 1: flips; gamma 0.25: m = 0.25, no flip.
    assert torch.equal(a.detach(), -torch.ones(3)) and torch.equal(b.detach(), torch.ones(3))


def test_bop_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    w = nn.Parameter(torch.sign(torch.randn(20)) + 0.0)
    opt = Bop([w], threshold=1e-3, gamma=0.2)
    grads = [torch.randn(20) for _ in range(6)]
    for g in grads[:3]:
        w.grad = g.clone()
        opt.step()
    w2 = nn.Parameter(w.detach().clone())
    opt2 = Bop([w2])
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for g in grads[3:]:
        w.grad, w2.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
    assert torch.equal(w, w2)
    assert torch.equal(opt.state[w]["momentum"], opt2.state[w2]["momentum"])


@pytest.mark.parametrize("torch_dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_bop_keeps_weights_pm1_in_their_dtype(torch_dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    w = nn.Parameter(torch.sign(torch.randn(5, 4)).to(torch_dtype) + 0)
    opt = Bop([w], threshold=1e-3, gamma=0.3)
    flipped = 0
    for _ in range(8):
        before = w.detach().clone()
        w.grad = torch.randn(5, 4).to(torch_dtype)
        opt.step()
        flipped += int((w != before).sum())
    assert w.dtype == opt.state[w]["momentum"].dtype == torch_dtype
    assert torch.all(w.abs() == 1) and flipped > 0


# --------------------------------------------------------------------------- parameters


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = QConv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = QLinear(64, 8)
        self.fc2 = QLinear(8, 8, weight_quantization="identity")
        self.fc3 = QLinear(8, 8, weight_quantization=WeightDoReFa(bits=2))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x)).flatten(1)
        return self.head(self.fc3(self.fc2(self.fc1(x))))


def test_binary_parameters_are_the_weights_of_1_bit_weight_quantizers() -> None:
    net = Net()
    assert [id(p) for p in binary_parameters(net)] == [id(net.conv.weight), id(net.fc1.weight)]
    binary, other = split_binary_parameters(net)
    assert len(binary) + len(other) == len(list(net.parameters()))
    assert not {id(p) for p in binary} & {id(p) for p in other}
    with pytest.raises(TypeError, match="torch.nn.Module"):
        binary_parameters([net.conv.weight])  # type: ignore[arg-type]


def test_shared_binary_weight_listed_once() -> None:
    a = QLinear(4, 4)
    b = QLinear(4, 4)
    b.weight = a.weight
    assert len(binary_parameters(nn.Sequential(a, b))) == 1


def test_binarize_and_clip() -> None:
    t = torch.tensor([-2.0, -0.0, 0.0, 0.3])
    binarize_([t])
    assert torch.equal(t, torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0).add_(5.0)
    clip_weights_(net, 0.5)  # a module: its binary weights only
    assert torch.all(net.conv.weight == 0.5) and torch.all(net.fc1.weight == 0.5)
    assert torch.all(net.head.weight == 5.0) and torch.all(net.fc2.weight == 5.0)
    clip_weights_(net.head.weight, 1.0)  # one tensor
    clip_weights_([net.fc2.weight, net.fc3.weight], 2.0)  # tensors
    assert torch.all(net.head.weight == 1.0) and torch.all(net.fc3.weight == 2.0)
    binarize_(net)
    assert torch.all(net.conv.weight == 1.0)
    with pytest.raises(ValueError, match="clip_value"):
        clip_weights_(net, 0.0)
    with pytest.raises(TypeError, match="clip_value"):
        clip_weights_(net, "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Module or tensors"):
        clip_weights_([1.0, 2.0], 1.0)  # type: ignore[list-item]


def test_bop_with_adam_trains_a_net() -> None:
    """The recipe of the module docstring: Bop on the binary weights, Adam on the rest."""
    torch.manual_seed(0)
    net = Net()
    binary, other = split_binary_parameters(net)
    binarize_(binary)
    optimizers = [Bop(binary, threshold=0.0, gamma=0.5), torch.optim.Adam(other, lr=1e-2)]
    start = copy.deepcopy(net.state_dict())
    x = torch.randn(2, 3, 4, 4)
    for _ in range(3):
        (net(x) ** 2).sum().backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
    assert all(torch.all(p.abs() == 1) for p in binary)
    assert not torch.equal(net.conv.weight, start["conv.weight"]), "Bop flipped none"
    assert not torch.equal(net.head.weight, start["head.weight"])
    assert not torch.equal(net.fc2.weight, start["fc2.weight"])
