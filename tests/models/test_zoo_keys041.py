"""Every model of the zoo against bitorch 0.4.1's ``state_dict`` layout, without 0.4.1.

``tests/models/data041/<entry>.json`` is written by ``scripts/zoo041_diff.py
--write-data`` from the published bitorch 0.4.1: the constructor call of one model
(``args``, ``input_shape``, ``num_classes``, ``kwargs``) and the keys, shapes and dtypes
of its ``state_dict``, in order. For each file this repository's torch model, built with
the same call, must have exactly that layout (so a 0.4.1 checkpoint loads with
``strict=True``), and the NNX twin's state paths must be the same keys with the Flax
shapes (kernels transposed), so that ``torch_to_nnx`` needs no name map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import pytest
from flax import nnx

import bitorch.models as tm
import bitorch_jax.models as jm

DATA = sorted((Path(__file__).parent / "data041").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for field in ("model", "args", "input_shape", "num_classes", "kwargs", "state_dict"):
        if field not in data:
            raise ValueError(f"{path.name}: missing field {field!r}")
    return data


def torch_layout(data: dict[str, Any]) -> list[list[Any]]:
    cls = tm.model_from_name(data["model"])
    model = cls(
        *data["args"], tuple(data["input_shape"]), num_classes=data["num_classes"], **data["kwargs"]
    )
    return [
        [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
        for key, value in model.state_dict().items()
    ]


# Flax leaf -> torch name (BatchNorm's "scale" and a Linear/Conv "kernel" are "weight")
_LEAVES = {"kernel": "weight", "mean": "running_mean", "var": "running_var", "bias": "bias"}


def nnx_layout(data: dict[str, Any]) -> dict[str, list[int]]:
    """The NNX twin's variables as torch keys and torch shapes (built abstractly)."""
    cls = jm.model_from_name(data["model"])
    model = nnx.eval_shape(
        lambda: cls(
            *data["args"],
            tuple(data["input_shape"]),
            num_classes=data["num_classes"],
            **data["kwargs"],
            rngs=nnx.Rngs(0),
            param_dtype=jnp.float32,
        )
    )
    flat = [(tuple(map(str, p)), v) for p, v in nnx.to_flat_state(nnx.state(model))]
    with_kernel = {p[:-1] for p, _ in flat if p[-1] == "kernel"}
    layout = {}
    for path, variable in flat:
        if not isinstance(variable, (nnx.Param, nnx.BatchStat)):
            continue
        leaf, shape = path[-1], list(variable.get_value().shape)
        if leaf == "scale":  # a norm's weight, or a QLinear/QConv output scale
            name = "scale" if path[:-1] in with_kernel else "weight"
        else:
            name = _LEAVES.get(leaf, leaf)
        if leaf == "kernel":  # Flax (..., in, out) -> torch (out, in, ...)
            shape = [shape[-1], shape[-2], *shape[:-2]]
        layout[".".join((*path[:-1], name))] = shape
    return layout


@pytest.mark.parametrize("path", DATA, ids=[p.stem for p in DATA])
def test_torch_state_dict_layout_is_0_4_1s(path: Path) -> None:
    data = load(path)
    expected = data["state_dict"]
    actual = torch_layout(data)
    assert [k for k, *_ in actual] == [k for k, *_ in expected], "keys or their order differ"
    assert actual == expected, [(a, e) for a, e in zip(actual, expected, strict=True) if a != e]


@pytest.mark.parametrize("path", DATA, ids=[p.stem for p in DATA])
def test_nnx_state_paths_are_0_4_1s_keys(path: Path) -> None:
    data = load(path)
    expected = {
        key: shape
        for key, shape, _ in data["state_dict"]
        if not key.endswith("num_batches_tracked")
    }
    actual = nnx_layout(data)
    assert sorted(actual) == sorted(expected)
    assert actual == expected


def test_the_data_covers_the_lenet_and_resnete_families() -> None:
    """The files this family's checks rely on are there (others add their own)."""
    stems = {p.stem for p in DATA}
    assert {"LeNet", "LeNet-v4", "ResnetE", "ResnetE18", "ResnetE34"} <= stems, stems
