"""LeNet (every ``lenet_version``) and ResNet-E in both frameworks.

For each case of the table: the torch model builds and gives ``(N, num_classes)``, loads
its own ``state_dict`` with ``strict=True``; the NNX twin (same constructor call) takes
the torch weights with ``torch_to_nnx`` and no name map; in float64 (scoped ``x64``
fixture) eval-mode logits agree to 1e-12 relative, one training-mode forward updates
every BatchNorm's running statistics to torch's values, and ``nnx_to_torch`` gives the
torch ``state_dict`` back bit for bit. The ImageNet-stem ResNet-E is checked for keys and
conversion only (a 224x224 forward is too slow for CI here), and so are ResnetE34 and
the generic ``ResnetE(18, ...)`` (more of ResnetE18's blocks; ``scripts/zoo041_diff.py``
compares their logits against bitorch 0.4.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import bitorch.models as tm
import bitorch_jax.models as jm
from bitorch_jax.convert import nnx_to_torch, torch_to_nnx
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
    args: tuple = ()  # positional arguments before input_shape (ResnetE's layer count)
    kwargs: dict[str, Any] = field(default_factory=dict)
    forward: bool = True  # False: keys and conversion only
    num_classes: int = 10


CASES = {
    **{f"lenet_v{v}": Case("LeNet", (2, 1, 28, 28), kwargs={"lenet_version": v}) for v in range(5)},
    "resnete18": Case("ResnetE18", (2, 3, 16, 16)),
    # the same blocks as ResnetE18, more of them: keys, shapes and conversion only (a
    # forward would compile for about a minute on a loaded CI machine)
    "resnete34": Case("ResnetE34", (2, 3, 16, 16), num_classes=3, forward=False),
    "resnete_generic_18": Case("ResnetE", (2, 2, 16, 16), args=(18,), num_classes=4, forward=False),
    "resnete18_imagenet_stem": Case("ResnetE18", (1, 3, 224, 224), forward=False),
}


def build(case: Case, double: bool) -> tuple[torch.nn.Module, nnx.Module]:
    torch.manual_seed(0)
    torch_model = tm.model_from_name(case.name)(
        *case.args, case.input_shape, case.num_classes, **case.kwargs
    )
    # built abstractly (shapes only: eager random initialisation is slow on CPU); every
    # variable is then written by torch_to_nnx, which refuses a model it leaves unset
    nnx_model = nnx.eval_shape(
        lambda: jm.model_from_name(case.name)(
            *case.args,
            case.input_shape,
            case.num_classes,
            **case.kwargs,
            rngs=nnx.Rngs(0),
            param_dtype=jnp.float64 if double else jnp.float32,
        )
    )
    if double:
        torch_model = torch_model.double()
    return torch_model, nnx_model


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_twins_agree(case_id: str, x64: None) -> None:
    case = CASES[case_id]
    torch_model, nnx_model = build(case, double=True)
    randomise_batchnorms(torch_model, seed=2)
    state = {k: v.clone() for k, v in torch_model.state_dict().items()}
    assert torch_model.load_state_dict(state, strict=True)  # keys and shapes are its own

    torch_to_nnx(torch_model, nnx_model)  # no name map
    assert_state_dicts_equal(nnx_to_torch(nnx_model, template=state), state, exact=True, rtol=RTOL)
    if not case.forward:
        return

    x = torch.randn(*case.input_shape, generator=torch.Generator().manual_seed(1))
    x = x.double()
    torch_model.eval()
    nnx_model.eval()
    with torch.no_grad():
        expected = torch_model(x).numpy()
    assert expected.shape == (case.input_shape[0], case.num_classes)
    actual = np.asarray(forward(nnx_model, nhwc(x)))
    assert actual.dtype == np.float64
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())

    # one training-mode forward: outputs and every running statistic agree
    torch_model.train()
    nnx_model.train()
    with torch.no_grad():
        expected = torch_model(x).numpy()
    actual = np.asarray(forward(nnx_model, nhwc(x)))
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    after = torch_model.state_dict()
    assert not torch.equal(after[_first_running_var(after)], state[_first_running_var(after)])
    assert_state_dicts_equal(nnx_to_torch(nnx_model, template=after), after, exact=False, rtol=RTOL)


def _first_running_var(state: dict) -> str:
    return next(k for k in state if k.endswith("running_var"))


def test_lenet_keeps_0_4_1_layer_indices() -> None:
    """Index 7 of the quantized LeNet is a parameter-free ``ShapePrintDebug`` in both, so
    the ``QLinear`` is ``_model.10`` and the last ``Linear`` ``_model.13``."""
    torch_model, nnx_model = build(CASES["lenet_v0"], double=False)
    assert type(torch_model._model[7]).__name__ == type(nnx_model._model[7]).__name__
    assert type(torch_model._model[7]).__name__ == "ShapePrintDebug"
    keys = [k for k in torch_model.state_dict() if not k.endswith("num_batches_tracked")]
    assert "_model.10.weight" in keys and "_model.13.bias" in keys
    assert len(torch_model._model) == len(nnx_model._model) == 14
    full = build(CASES["lenet_v4"], double=False)
    assert len(full[0]._model) == len(full[1]._model) == 13


@pytest.mark.parametrize("package", [tm, jm], ids=["torch", "jax"])
def test_resnete_refuses_an_unknown_depth(package: Any) -> None:
    extra = {} if package is tm else {"rngs": nnx.Rngs(0)}
    with pytest.raises(ValueError, match="No resnet spec for 20"):
        package.ResnetE(20, (1, 3, 32, 32), 10, **extra)
