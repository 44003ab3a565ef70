"""bitorch 0.4.1's other layers in JAX: parity with torch, conversion, training, arguments.

``PadModule``, ``Pact``, ``QEmbedding``, ``QEmbeddingBag``, ``BEmbedding``,
``BEmbeddingBag`` (and ``QConv2d_NoAct`` as linen/NNX ``QConv`` with an identity input
quantizer) against their linen and NNX counterparts with weights carried by
:mod:`bitorch_jax.convert`: outputs and every gradient (input, ``per_sample_weights``,
table, ``alpha``, kernel) for each case of :data:`parity_tests.layers.EXTRA_CASES`, in
float32 and float64; bit-exact conversion round trips; the binary embedding's training
protocol (decoded rows, optimizer step, bits written back) in both frameworks; the
arguments and their errors; and planted bugs the parity command must catch.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import bitorch.layers as tl
import bitorch_jax.layers.qembedding as jqembedding
from bitorch_common.tolerances import layer_tolerance
from bitorch_jax import layers as jl
from bitorch_jax.convert import linen_to_torch, nnx_to_torch, torch_to_linen, torch_to_nnx
from bitorch_jax.layers import linen as ql
from bitorch_jax.layers import nnx as qn
from parity_tests.__main__ import main
from parity_tests.layers import (
    EXTRA_CASE_IDS,
    EXTRA_CASES,
    ExtraLayerCase,
    make_extra_arrays,
    run_flax_extra,
    run_torch_extra,
)

RNGS = nnx.Rngs(0)


def assert_match(case: ExtraLayerCase, got: dict, want: dict, dtype: str, where: str) -> None:
    tol = layer_tolerance(dtype)
    assert sorted(got) == sorted(want), f"{where}: {sorted(got)} vs {sorted(want)}"
    for name in want:
        a, b = np.asarray(got[name]), np.asarray(want[name])
        assert (a.shape, a.dtype) == (b.shape, b.dtype), f"{where} {name}"
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{where} {name} NaN")
        if name == "y" and case.exact_forward:
            np.testing.assert_array_equal(a, b, err_msg=f"{where} {name}: not bit-exact")
        else:
            np.testing.assert_allclose(
                a, b, rtol=tol.rtol, atol=tol.atol, err_msg=f"{where} {name}"
            )


@pytest.mark.parametrize("case", EXTRA_CASES, ids=EXTRA_CASE_IDS)
def test_linen_and_nnx_match_torch(case: ExtraLayerCase, dtype: str) -> None:
    arrays = make_extra_arrays(case, dtype, seed=4)
    layer, want = run_torch_extra(case, arrays, dtype)
    got = run_flax_extra(case, layer, arrays, dtype)
    for api in ("linen", "nnx"):
        assert "converted" not in got[api], f"{api}: conversions differ"
        assert_match(case, got[api], want, dtype, f"{case.id} {api} {dtype}")
    # every gradient torch computed carries information
    for name, value in want.items():
        if name != "y":
            assert np.any(np.nan_to_num(value) != 0), f"{case.id}: torch {name} all zero"


def test_the_table_covers_every_layer_and_variant() -> None:
    layers = {c.layer for c in EXTRA_CASES}
    assert layers == {"PadModule", "Pact", "QEmbedding", "QEmbeddingBag", "BEmbedding",
                      "BEmbeddingBag", "QConv2d_NoAct", "RSign", "RPReLU"}  # fmt: skip
    bags = [c.kwargs for c in EXTRA_CASES if c.layer == "QEmbeddingBag"]
    assert {k["mode"] for k in bags} == {"sum", "mean", "max"}
    assert any(k.get("include_last_offset") for k in bags) and any(c.psw for c in EXTRA_CASES)
    assert any(c.offsets and len(set(c.offsets)) < len(c.offsets) for c in EXTRA_CASES)  # empty bag
    assert any(len(c.shape) == 2 and c.offsets is None for c in EXTRA_CASES if "Bag" in c.layer)
    pad = next(c for c in EXTRA_CASES if c.layer == "PadModule").kwargs
    assert min(v for k, v in pad.items() if k != "padding_value") < 0  # a crop


def test_pure_functions_are_what_the_classes_call() -> None:
    x = jnp.asarray(np.random.default_rng(0).normal(scale=4, size=(2, 3, 4, 5)), jnp.float32)
    np.testing.assert_array_equal(
        ql.PadModule(padding_left=1, padding_bottom=-1, padding_value=2.0).apply({}, x),
        jl.pad_2d(x, (1, 0, 0, -1), 2.0),
    )
    pact = qn.Pact(bits=3)
    np.testing.assert_array_equal(pact(x), jl.q_pact(x, jnp.asarray(10.0), 3))
    table = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)
    idx = jnp.array([[0, 4, 4], [2, 1, 0]])
    emb = qn.QEmbed(5, 3, padding_idx=4, rngs=RNGS)
    emb.embedding[...] = table
    np.testing.assert_array_equal(emb(idx), jl.q_embedding(idx, table, padding_idx=4))
    bag = qn.QEmbedBag(5, 3, mode="max", rngs=RNGS)
    bag.embedding[...] = table
    np.testing.assert_array_equal(bag(idx), jl.q_embedding_bag(idx, table, mode="max"))


# ----------------------------------------------------------------------------- conversion


class TorchModel(torch.nn.Module):
    """Every new layer with parameters, and a plain embedding."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.emb = tl.QEmbedding(6, embedding_dim=3, padding_idx=0, dtype=dtype)
        self.bag = tl.QEmbeddingBag(5, embedding_dim=4, mode="sum", dtype=dtype)
        self.plain = torch.nn.Embedding(4, 2, dtype=dtype)
        self.act = tl.Pact(3).to(dtype)
        self.bits = tl.BEmbedding(7, 3, padding_idx=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.bitbag = tl.BEmbeddingBag(5, 2)
        self.pad = tl.PadModule(1, 1)
        self.fc = tl.QLinear(3, 2, dtype=dtype)


class NNXModel(nnx.Module):
    def __init__(self, dtype: Any) -> None:
        zeros = nnx.initializers.zeros_init()
        p = {"param_dtype": dtype, "rngs": RNGS}
        self.emb = qn.QEmbed(6, 3, padding_idx=0, embedding_init=zeros, **p)
        self.bag = qn.QEmbedBag(5, 4, mode="sum", embedding_init=zeros, **p)
        self.plain = nnx.Embed(4, 2, **p)
        self.act = qn.Pact(bits=3, param_dtype=dtype)
        self.bits = qn.BEmbed(7, 3, padding_idx=2, rngs=RNGS)
        self.bitbag = qn.BEmbedBag(5, 2, rngs=RNGS)
        self.pad = qn.PadModule(padding_left=1, padding_right=1)
        self.fc = qn.QLinear(3, 2, kernel_init=zeros, **p)


def _filled(model: torch.nn.Module, seed: int) -> OrderedDict:
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.dtype == torch.bool:
                tensor.copy_(torch.from_numpy(rng.random(tuple(tensor.shape)) > 0.5))
                continue
            values = torch.from_numpy(rng.normal(size=tuple(tensor.shape))).to(tensor.dtype)
            flat = values.view(-1)
            flat[: min(3, flat.numel())] = torch.tensor([-0.0, float("nan"), float("inf")])[
                : min(3, flat.numel())
            ].to(tensor.dtype)
            tensor.copy_(values)
    return OrderedDict((k, v.clone()) for k, v in model.state_dict().items())


def _identical(got: OrderedDict, want: OrderedDict) -> None:
    assert list(got) == list(want)
    for key in want:
        a, b = got[key], want[key]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), key
        if a.dtype == torch.bool:
            assert torch.equal(a, b), key
        else:
            bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
            assert torch.equal(a.view(bits), b.view(bits)), key


@pytest.mark.parametrize("name", ["float32", "float64", "bfloat16"])
def test_round_trips_are_bit_exact(name: str) -> None:
    torch_dtype = getattr(torch, name)
    model = TorchModel(torch_dtype)
    original = _filled(model, seed=1)
    with jax.enable_x64(name == "float64"):
        variables = torch_to_linen(model)
        params = variables["params"]
        assert params["act"]["alpha"].shape == () and "embedding" in params["emb"]
        np.testing.assert_array_equal(  # the table as it is (no transpose)
            np.asarray(params["emb"]["embedding"], np.float64),
            original["emb.weight"].double().numpy(),
        )
        assert variables["binary_weights"]["bits"]["weight"].dtype == jnp.bool_
        _identical(linen_to_torch(variables, template=original), original)
        nnx_model = NNXModel(jnp.dtype(name))
        torch_to_nnx(model, nnx_model)
        assert nnx_model.bits.weight[...].dtype == jnp.bool_
        _identical(nnx_to_torch(nnx_model, template=original), original)
    # without a template: sorted keys, same tensors
    with jax.enable_x64(name == "float64"):
        back = linen_to_torch(torch_to_linen(model))
    _identical(OrderedDict((k, back[k]) for k in original), original)


def test_state_dict_alone_recognises_alpha_and_bool_tables() -> None:
    model = TorchModel(torch.float32)
    variables = torch_to_linen(model.state_dict())
    assert variables["params"]["act"]["alpha"].shape == ()
    assert variables["binary_weights"]["bitbag"]["weight"].shape == (5, 2)
    # an embedding table alone reads as a Linear weight (documented): pass the module
    assert "kernel" in variables["params"]["emb"]
    with pytest.raises(ValueError, match="alpha"):
        torch_to_linen({"act.alpha": torch.ones(3)})


def test_nnx_mismatches_of_a_binary_table_are_refused() -> None:
    model = qn.BEmbed(3, 2, rngs=RNGS)
    with pytest.raises(ValueError, match=r"bool\[3, 3\] from torch but bool\[3, 2\]"):
        torch_to_nnx({"weight": torch.ones(3, 3, dtype=torch.bool)}, model)
    with pytest.raises(ValueError, match="not in the model"):  # a float table is a kernel
        torch_to_nnx({"weight": torch.ones(3, 2)}, model)


# ----------------------------------------------------------------------------- training


def test_binary_embedding_training_step_matches_torch() -> None:
    """torch: rows to the optimizer, SGD step, ``step()`` writes bits. JAX: decoded table,
    gradient, SGD step, ``step`` (linen method / NNX method). Same bits afterwards."""
    rng = np.random.default_rng(2)
    bits = rng.random((8, 3)) > 0.5
    indices = np.array([[1, 5, 5, 2], [0, 2, 7, 1]])
    g = rng.normal(size=(2, 4, 3)).astype(np.float32)
    lr = 0.75
    emb = tl.BEmbedding(8, 3, padding_idx=2, sign_bool=True)
    emb.set_weight(torch.from_numpy(bits))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    emb.set_optimizer(opt)
    emb(torch.from_numpy(indices)).backward(torch.from_numpy(g))
    opt.step()
    emb.step()
    want = emb.weight.numpy()

    layer = qn.BEmbed(8, 3, padding_idx=2, sign_bool=True, rngs=RNGS)
    layer.weight[...] = jnp.asarray(bits)
    vectors = layer.vectors()
    _, vjp = jax.vjp(lambda v: layer(jnp.asarray(indices), v), vectors)
    (grad,) = vjp(jnp.asarray(g))
    layer.step(jnp.asarray(indices), vectors - lr * grad)
    np.testing.assert_array_equal(np.asarray(layer.weight[...]), want)

    linen = ql.BEmbed(8, 3, padding_idx=2, sign_bool=True)
    variables = {"binary_weights": {"weight": jnp.asarray(bits)}}
    vectors = linen.apply(variables, method="vectors")
    _, vjp = jax.vjp(lambda v: linen.apply(variables, jnp.asarray(indices), v), vectors)
    (grad,) = vjp(jnp.asarray(g))
    _, updated = linen.apply(variables, jnp.asarray(indices), vectors - lr * grad,
                             method="step", mutable=["binary_weights"])  # fmt: skip
    np.testing.assert_array_equal(np.asarray(updated["binary_weights"]["weight"]), want)
    assert not want[2].all() or bits[2].all()  # the padding row kept its bits
    np.testing.assert_array_equal(want[2], bits[2])


def test_flax_layers_init_as_torch_does() -> None:
    variables = ql.QEmbed(5, 3, padding_idx=1).init(jax.random.key(0), jnp.array([0]))
    table = np.asarray(variables["params"]["embedding"])
    assert np.all(table[1] == 0) and table[0].std() > 0
    assert ql.Pact().init(jax.random.key(0), jnp.ones(2))["params"]["alpha"] == 10.0
    bits = ql.BEmbed(50, 40).init(jax.random.key(0), jnp.array([0]))["binary_weights"]["weight"]
    assert bits.dtype == jnp.bool_ and 0.45 < float(bits.mean()) < 0.55
    assert qn.QEmbed(4, 2, padding_idx=-1, rngs=RNGS).embedding[...][3].tolist() == [0.0, 0.0]
    assert qn.Pact(param_dtype=jnp.bfloat16).alpha[...].dtype == jnp.bfloat16


# ----------------------------------------------------------------------------- arguments


def test_hyperparameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        qn.QEmbed(4, 2, 1, rngs=RNGS)  # type: ignore[misc]
    with pytest.raises(TypeError):
        qn.Pact(3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        qn.PadModule(1)  # type: ignore[misc]
    # linen: the fields after (num_embeddings, features) are keyword-only dataclass fields
    fields = ql.QEmbedBag.__dataclass_fields__
    assert all(fields[name].kw_only for name in ("mode", "padding_idx", "weight_quantization"))


@pytest.mark.parametrize(
    ("build", "error", "text"),
    [
        (
            lambda: tl.QEmbeddingBag(4, embedding_dim=2, weight_quantization="nope"),
            ValueError,
            "nope",
        ),
        (lambda: qn.QEmbedBag(4, 2, weight_quantization="nope", rngs=RNGS), ValueError, "nope"),
        (lambda: qn.QEmbedBag(4, 2, mode="median", rngs=RNGS), ValueError, "mode"),
        (lambda: ql.QEmbedBag(4, 2, mode="median"), ValueError, "mode"),
        (lambda: tl.BEmbedding(4, 2, padding_idx=4), ValueError, "padding_idx"),
        (lambda: qn.BEmbed(4, 2, padding_idx=4, rngs=RNGS), ValueError, "padding_idx"),
        (lambda: tl.BEmbedding(4, 2, sign_bool=1), TypeError, "sign_bool"),
        (lambda: ql.BEmbed(4, 2, sign_bool=1), TypeError, "sign_bool"),
        (lambda: tl.Pact(25), ValueError, "bits"),
        (lambda: ql.Pact(bits=25), ValueError, "bits"),
        (lambda: tl.Pact(2.0), TypeError, "bits"),
        (lambda: qn.Pact(bits=2.0), TypeError, "bits"),
        (lambda: tl.PadModule(1.5), TypeError, "padding_left"),
        (lambda: qn.PadModule(padding_top=True), TypeError, "padding_top"),
        (lambda: ql.PadModule(padding_value="0"), TypeError, "padding_value"),
    ],
)
def test_bad_arguments_same_errors_in_both_frameworks(build, error, text) -> None:
    with pytest.raises(error, match=text):
        build()


def test_bad_calls_are_clear() -> None:
    table = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="per_sample_weights need mode='sum'"):
        jl.q_embedding_bag(jnp.array([[0, 1]]), table, None, jnp.ones((1, 2)), mode="mean")
    with pytest.raises(ValueError, match="offsets"):
        jl.q_embedding_bag(jnp.array([0, 1]), table)
    with pytest.raises(ValueError, match="offsets must be None"):
        jl.q_embedding_bag(jnp.array([[0, 1]]), table, jnp.array([0]))
    with pytest.raises(TypeError, match="integer"):
        jl.q_embedding(jnp.array([0.0]), table)
    with pytest.raises(ValueError, match="0-d"):
        jl.q_pact(jnp.ones(3), jnp.ones(1))
    with pytest.raises(ValueError, match="channels-last"):
        jl.pad_2d(jnp.ones((2, 2)), (1, 1, 1, 1))
    with pytest.raises(TypeError, match="bool"):
        jl.decode_binary_weight(jnp.ones((2, 2)))


# ----------------------------------------------------------------------------- planted bugs


def _command(capsys: Any, tmp_path: Any, ids: list[str]) -> tuple[int, dict]:
    path = tmp_path / "out.json"
    argv = ["--quantizers", "none", "--layers", ",".join(ids), "--dtypes", "float32",
            "--devices", "cpu", "--quiet", "--json", str(path)]  # fmt: skip
    code = main(argv)
    capsys.readouterr()
    return code, json.loads(path.read_text())


def _failing_kinds(data: dict) -> set[str]:
    return {e["kind"] for r in data["results"] if r["verdict"] != "PASS"
            for e in r["failing_elements"]}  # fmt: skip


def test_the_command_runs_the_extra_table(capsys, tmp_path) -> None:
    code, data = _command(capsys, tmp_path, ["pact-3bit", "qembedding-padidx"])
    assert code == 0 and len(data["results"]) == 4
    assert {r["verdict"] for r in data["results"]} == {"PASS"}


def test_catches_a_mean_that_counts_padding_entries(monkeypatch, capsys, tmp_path) -> None:
    original = jqembedding.bag_reduce

    def counts_padding(rows, segments, bags, mode, valid=None, weights=None):
        if mode == "mean" and valid is not None:  # the bug: padding rows zero but counted
            rows = jnp.where(valid[:, None], rows, 0)
            valid = None
        return original(rows, segments, bags, mode, valid, weights)

    monkeypatch.setattr(jqembedding, "bag_reduce", counts_padding)
    code, data = _command(capsys, tmp_path, ["qembeddingbag-mean-padidx-weightdorefa2"])
    assert code == 1 and "output" in _failing_kinds(data)


def test_catches_max_gradient_to_the_last_tie(monkeypatch, capsys, tmp_path) -> None:
    original = jqembedding.bag_reduce

    def last_tie(rows, segments, bags, mode, valid=None, weights=None):
        if mode != "max":
            return original(rows, segments, bags, mode, valid, weights)
        flipped = original(rows[::-1], segments[::-1], bags, mode,
                           None if valid is None else valid[::-1], weights)  # fmt: skip
        return flipped  # the bug: among equal values the last entry takes the gradient

    monkeypatch.setattr(jqembedding, "bag_reduce", last_tie)
    code, data = _command(capsys, tmp_path, ["qembeddingbag-max-2d-padidx"])
    assert code == 1 and _failing_kinds(data) == {"weight grad"}


def test_catches_pact_gradient_cut_at_alpha(monkeypatch, capsys, tmp_path) -> None:
    import bitorch_jax.layers.pact as jpact

    def bwd(bits, residuals, g):
        inside, clipped, alpha_zero = residuals
        inside = inside & ~clipped  # the bug: x == alpha passes nothing to x
        return jpact._pact_bwd(bits, (inside, clipped, alpha_zero), g)

    monkeypatch.setattr(jpact, "_pact", jax.custom_vjp(jpact._pact.fun, nondiff_argnums=(2,)))
    jpact._pact.defvjp(jpact._pact_fwd, bwd)
    code, data = _command(capsys, tmp_path, ["pact-3bit"])
    assert code == 1 and _failing_kinds(data) == {"input grad"}
