"""ProgressiveSign and the quantization scheduler, in bitorch (torch) and bitorch_jax.

* every variant of the ``progressive_sign`` table row, in both frameworks (object and
  functional form), against the NumPy oracle, in four dtypes, 0-d and empty included;
* bitorch 0.4.1's behaviour: global scaling read at each call, per-instance scale,
  custom transform, alpha/beta defaults from the config, train/eval mode, the
  straight-through gradient, ``ProgressiveSignFunctionTrain.apply(x, temperature)``;
* the argument checks (the same exception types in both frameworks) and the deviations
  from 0.4.1 that they are;
* the scheduler: bitorch's ``Quantization_Scheduler`` on a model of bitorch layers, its
  procedures, and bitorch_jax's functions, objects and NNX scheduler giving the same
  values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import bitorch.quantizations as bt
import bitorch_jax.quantizations as bj
from bitorch_common.inputs import cotangents, make_samples, np_dtype
from bitorch_common.oracles import progressive_sign_divisor
from bitorch_common.quantizers import row, variants
from bitorch_common.validation import GlobalScalingConflict
from parity_tests.cases import torch_quantizer

# The modules, as bitorch 0.4.1's example reaches them (``from ... import config``). In
# bitorch the package attribute is the module too (callable as the functional form); in
# bitorch_jax it is the function.
bt_ps = importlib.import_module("bitorch.quantizations.progressive_sign")
bj_ps = importlib.import_module("bitorch_jax.quantizations.progressive_sign")

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

DTYPES = ("float32", "float64", "float16", "bfloat16")
TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
VARIANTS = variants(["progressive_sign"])
WORKED_X = np.array([-1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5], np.float32)


@pytest.fixture(autouse=True)
def _restore_configs():
    """Every test starts and ends with the default ProgressiveSign configs."""
    bt_ps.config.reset()
    bj_ps.config.reset()
    yield
    bt_ps.config.reset()
    bj_ps.config.reset()


def to_torch(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    a = np.asarray(a)
    if a.dtype == np.dtype(ml_dtypes.bfloat16):
        t = torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    else:
        t = torch.from_numpy(a.copy())
    return t.requires_grad_(requires_grad)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy().copy()


def x64_for(dtype: str):
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def torch_results(fn, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xt = to_torch(x, requires_grad=True)
    y = fn(xt)
    y.backward(to_torch(g))
    return to_numpy(y), to_numpy(xt.grad)


def jax_results(fn, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, vjp = jax.vjp(fn, jnp.asarray(x))
    (grad,) = vjp(jnp.asarray(g))
    return np.asarray(y), np.asarray(grad)


# ----------------------------------------------------------------------------------------
# The table row against the oracle, both frameworks, both forms


def test_the_row_has_train_and_eval_variants():
    modes = [v.params["training"] for v in VARIANTS]
    assert True in modes and False in modes
    assert row("progressive_sign").function == "progressive_sign"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_both_frameworks_match_the_oracle(variant, dtype):
    rng = np.random.default_rng(7)
    params = dict(variant.params)
    torch_object = torch_quantizer("progressive_sign", **params)
    torch_fn = {"object": torch_object, "function": lambda t: bt.progressive_sign(t, **params)}
    jax_object = bj.ProgressiveSign(**params)
    jax_fn = {
        "object": jax_object,
        "function": lambda a: bj.progressive_sign(a, **params),
        "jit": jax.jit(lambda a: jax_object(a)),
    }
    for shape in ((257,), (), (0,)):
        for i, x in enumerate(make_samples(shape, dtype, rng, extra_edges=variant.extra_edges)):
            g = cotangents(np.shape(x), dtype, rng)
            for form, fn in torch_fn.items():
                y, grad = torch_results(fn, x, g)
                result = variant.compare_to_oracle(x, g, y, grad, sample=i)
                assert result.failures == 0, f"torch {form} {shape}: {result.failure_list[:3]}"
            with x64_for(dtype):
                for form, fn in jax_fn.items():
                    y, grad = jax_results(fn, x, g)
                    result = variant.compare_to_oracle(x, g, y, grad, sample=i)
                    assert result.failures == 0, f"jax {form} {shape}: {result.failure_list[:3]}"


def test_worked_values_in_both_frameworks():
    # scale 0.5, alpha 2, beta 2: t = 1 - 2**-1, so x is divided by 0.5 and clipped.
    want_train = np.array([-1, -1, -0.6, 0, 0.6, 1, 1], np.float32)
    want_eval = np.array([-1, -1, -1, 1, 1, 1, 1], np.float32)
    kw = {"use_global_scaling": False, "initial_scale": 0.5, "alpha": 2.0, "beta": 2.0}
    tq = bt.ProgressiveSign(**kw)
    jq = bj.ProgressiveSign(**kw)
    np.testing.assert_array_equal(to_numpy(tq(to_torch(WORKED_X))), want_train)
    np.testing.assert_array_equal(np.asarray(jq(jnp.asarray(WORKED_X))), want_train)
    np.testing.assert_array_equal(to_numpy(tq.eval()(to_torch(WORKED_X))), want_eval)
    jq_eval = dataclasses.replace(jq, training=False)
    np.testing.assert_array_equal(np.asarray(jq_eval(jnp.asarray(WORKED_X))), want_eval)


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_dtype_and_gradient_pass_through(dtype):
    x = np.array([-3.0, -0.01, 0.0, 0.02, 5.0, np.nan, np.inf], np.float64).astype(np_dtype(dtype))
    g = np.array([0.5, -1.5, 2.0, 3.0, -4.0, 1.25, 0.75], np.float64).astype(np_dtype(dtype))
    for training in (True, False):
        q = torch_quantizer(
            "progressive_sign", use_global_scaling=False, initial_scale=0.5, training=training
        )
        y, grad = torch_results(q, x, g)
        assert y.dtype == x.dtype and grad.dtype == x.dtype
        np.testing.assert_array_equal(grad, g)  # not masked where hardtanh clips, nor at NaN
        assert np.isnan(y[5])
        with x64_for(dtype):
            jq = bj.ProgressiveSign(use_global_scaling=False, initial_scale=0.5, training=training)
            y, grad = jax_results(jq, x, g)
            assert y.dtype == x.dtype and grad.dtype == x.dtype
            np.testing.assert_array_equal(grad, g)
            assert np.isnan(y[5])


def test_subnormal_inputs_and_quotients_are_signed_zeros_in_both():
    tiny = np.finfo(np.float32).tiny
    x = np.array([1e-40, -1e-40, tiny, -tiny, 3 * tiny], np.float32)
    # A custom transform with a negative temperature divides by 2: tiny / 2 is subnormal.
    kw = {"use_global_scaling": False, "initial_scale": 0.3, "custom_transform": lambda s: -1.0}
    want = np.array([0, -0.0, 0, -0.0, 1.5 * tiny], np.float32)
    ty = to_numpy(bt.ProgressiveSign(**kw)(to_torch(x)))
    jy = np.asarray(jax.jit(bj.ProgressiveSign(**kw))(jnp.asarray(x)))
    for y in (ty, jy):
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(want))


# ----------------------------------------------------------------------------------------
# bitorch 0.4.1's behaviour


def test_global_scaling_is_read_at_each_call():
    x = np.array([-0.02, 0.01, 0.5], np.float32)
    tq, jq = bt.ProgressiveSign(), bj.ProgressiveSign()
    assert tq.global_scaling and jq.global_scaling and tq.use_global_scaling
    np.testing.assert_array_equal(to_numpy(tq(to_torch(x))), x)  # scale 0: hardtanh
    for config in (bt_ps.config, bj_ps.config):
        config.progressive_sign_scale = 0.5  # divisor 4**-5 = 1/1024
    want = np.clip(x * 1024, -1, 1)
    assert tq.current_scale == jq.current_scale == 0.5
    np.testing.assert_array_equal(to_numpy(tq(to_torch(x))), want)
    np.testing.assert_array_equal(np.asarray(jq(jnp.asarray(x))), want)


def test_instance_scale_and_explicit_zero():
    for config in (bt_ps.config, bj_ps.config):
        config.progressive_sign_scale = 0.5
    x = np.array([-0.02, 0.0005], np.float32)
    # An explicit initial_scale=0 is kept (bitorch 0.4.1: `0 or config` took the config's 0.5).
    tq = bt.ProgressiveSign(use_global_scaling=False, initial_scale=0)
    jq = bj.ProgressiveSign(use_global_scaling=False, initial_scale=0)
    assert tq.scale == tq.current_scale == jq.current_scale == 0.0
    np.testing.assert_array_equal(to_numpy(tq(to_torch(x))), x)
    np.testing.assert_array_equal(np.asarray(jq(jnp.asarray(x))), x)
    # Without initial_scale the instance takes the config's value when built.
    assert bt.ProgressiveSign(use_global_scaling=False).scale == 0.5
    assert bj.ProgressiveSign(use_global_scaling=False).initial_scale == 0.5
    # torch: the scale is an attribute set as training goes on (checked);
    tq.scale = 0.5
    np.testing.assert_array_equal(to_numpy(tq(to_torch(x))), np.float32([-1.0, 0.512]))
    with pytest.raises(ValueError, match="scale must be in"):
        tq.scale = 1.5
    # JAX: a frozen object; a changed copy, or the scale passed at call time.
    np.testing.assert_array_equal(
        np.asarray(jq(jnp.asarray(x), scale=0.5)), np.float32([-1, 0.512])
    )
    np.testing.assert_array_equal(
        np.asarray(dataclasses.replace(jq, initial_scale=0.5)(jnp.asarray(x))),
        np.float32([-1, 0.512]),
    )


def test_initial_scale_with_global_scaling_is_refused_like_0_4_1():
    for cls in (bt.ProgressiveSign, bj.ProgressiveSign):
        kw = {"initial_scale": 0.3}
        with pytest.raises(GlobalScalingConflict, match="use_global_scaling"):
            cls(**kw)
        with pytest.raises(RuntimeWarning):  # what bitorch 0.4.1 raises
            cls(**kw)
        with pytest.raises(ValueError):  # what the project raises for a bad argument
            cls(**kw)
    with pytest.raises(ValueError):
        bt.progressive_sign(torch.zeros(2), 0.3, use_global_scaling=True)
    with pytest.raises(ValueError):
        bj.progressive_sign(jnp.zeros(2), 0.3, use_global_scaling=True)


def test_default_transform_and_alpha_beta_defaults():
    assert bt.ProgressiveSign.default_transform(0.5) == 1 - 4 ** (-10 * 0.5)
    assert bj.ProgressiveSign.default_transform(0.5) == 1 - 4 ** (-10 * 0.5)
    assert bt.ProgressiveSign.default_transform(0.5, 2, 3) == 1 - 2 ** (-3 * 0.5)
    for config in (bt_ps.config, bj_ps.config):
        config.progressive_sign_alpha = 2
        config.progressive_sign_beta = 3
    # default_transform reads the config when called, instances when built.
    assert bt.ProgressiveSign.default_transform(0.5) == 1 - 2 ** (-3 * 0.5)
    assert bj.ProgressiveSign.default_transform(0.5) == 1 - 2 ** (-3 * 0.5)
    tq, jq = bt.ProgressiveSign(), bj.ProgressiveSign()
    assert (tq.alpha, tq.beta) == (jq.alpha, jq.beta) == (2.0, 3.0)
    bt_ps.config.reset()
    bj_ps.config.reset()
    assert (tq.alpha, tq.beta) == (jq.alpha, jq.beta) == (2.0, 3.0)
    assert tq.transform(0.5) == jq.transform(0.5) == 1 - 2 ** (-3 * 0.5)


def test_custom_transform():
    calls = []

    def transform(scale):
        calls.append(scale)
        return 0.75  # divisor 0.25

    x = np.array([-0.1, 0.2, 0.3], np.float32)
    kw = {"use_global_scaling": False, "initial_scale": 0.4, "custom_transform": transform}
    want = np.float32([-0.4, 0.8, 1])
    np.testing.assert_array_equal(to_numpy(bt.ProgressiveSign(**kw)(to_torch(x))), want)
    np.testing.assert_array_equal(np.asarray(bj.ProgressiveSign(**kw)(jnp.asarray(x))), want)
    assert calls == [0.4, 0.4]
    # A temperature of 1 or more divides by EPSILON; a tensor/array temperature is accepted.
    kw["custom_transform"] = lambda s: torch.tensor(1.0)
    y = to_numpy(bt.ProgressiveSign(**kw)(to_torch(np.array([1e-8, -1e-6], np.float32))))
    np.testing.assert_allclose(y, [0.1, -1.0], rtol=1e-6)


# bitorch 0.4.1's own test table for ProgressiveSign: (constructor arguments, x, q(x)).
TABLE_0_4_1 = [
    ({}, [-1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5], [-1.0, -1.0, -0.3, 0.0, 0.3, 1.0, 1.0]),
    (
        {"use_global_scaling": False, "initial_scale": 0.05},
        [-1.5, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 1.5],
        [-1.0, -1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0, 1.0],
    ),
    (
        {"use_global_scaling": False, "initial_scale": 0.5},
        [-1.5, -1.0, -0.3, -0.1, -0.05, 0.0, 0.05, 0.1, 0.3, 1.0, 1.5],
        [-1.0, -1.0, -1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ),
    (
        {"use_global_scaling": False, "initial_scale": 0.2, "custom_transform": lambda s: s},
        [-1.5, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 1.5],
        [-1.0, -1.0, -0.375, -0.125, 0.0, 0.125, 0.375, 1.0, 1.0],
    ),
]


@pytest.mark.parametrize(("kw", "x", "want"), TABLE_0_4_1)
def test_bitorch_0_4_1_table(kw, x, want):
    x = np.array(x, np.float32)
    xt = to_torch(x, requires_grad=True)
    tq = bt.ProgressiveSign(**kw)
    y = tq(xt)
    np.testing.assert_allclose(to_numpy(y), want, atol=1e-6)
    y.backward(xt.detach())
    np.testing.assert_array_equal(to_numpy(xt.grad), x)  # gradient factors 1
    np.testing.assert_allclose(
        np.asarray(bj.ProgressiveSign(**kw)(jnp.asarray(x))), want, atol=1e-6
    )
    assert isinstance(tq, bt.quantization_from_name(tq.name))
    with pytest.deprecated_call():
        assert tq.bitwidth == 1


def test_progressive_sign_function_train_apply_like_0_4_1():
    x = to_torch(np.array([-0.3, 0.1, 2.0], np.float32), requires_grad=True)
    y = bt.ProgressiveSignFunctionTrain.apply(x, 0.5)  # divides by 0.5
    np.testing.assert_array_equal(to_numpy(y), np.float32([-0.6, 0.2, 1.0]))
    y.backward(torch.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(to_numpy(x.grad), [1.0, 2.0, 3.0])
    assert bt_ps.EPSILON == bj_ps.EPSILON == 1e-7
    assert bt.ProgressiveSign.name == bj.ProgressiveSign.name == "progressive_sign"
    assert bt.ProgressiveSign().bit_width == bj.ProgressiveSign().bit_width == 1
    assert bt_ps.config.name == bj_ps.config.name == "progressive_sign_config"
    assert (bt_ps.config.progressive_sign_alpha, bt_ps.config.progressive_sign_beta) == (4, 10)


def test_torch_config_is_a_registered_0_4_1_config():
    import argparse

    import bitorch.config

    assert bt.progressive_sign is bt_ps and bt.progressive_sign.config is bt_ps.config
    assert bitorch.config.config_from_name("progressive_sign_config") is bt_ps.config
    parser = argparse.ArgumentParser()
    bt_ps.config.add_config_arguments(parser)
    args = parser.parse_args(
        ["--progressive-sign-scale", "0.25", "--progressive-sign-alpha", "2.5"]
    )
    bt_ps.config.apply_args_to_configuration(args)
    assert bt_ps.config.get_progressive_sign_scale() == 0.25
    assert bt_ps.config.progressive_sign_alpha == 2.5
    bt_ps.config.set_progressive_sign_beta(3)
    assert bt_ps.config.progressive_sign_beta == 3.0
    with pytest.raises(ValueError, match="beta"):
        bt_ps.config.set_progressive_sign_beta(0)


def test_torch_mode_and_functional_form_agree():
    x = to_torch(np.linspace(-0.01, 0.01, 9).astype(np.float32))
    kw = {"use_global_scaling": False, "initial_scale": 0.3, "alpha": 3.0, "beta": 4.0}
    q = bt.ProgressiveSign(**kw)
    assert q.training
    assert torch.equal(q(x), bt.progressive_sign(x, **kw))
    assert torch.equal(q(x), bt.progressive_sign(x, 0.3, alpha=3.0, beta=4.0))
    q.eval()
    assert torch.equal(q(x), bt.progressive_sign(x, **kw, training=False))
    assert torch.equal(q(x), bt.sign(x))


def test_objects_are_frozen_hashable_and_distinct_in_jax():
    a = bj.ProgressiveSign(use_global_scaling=False, initial_scale=0.3)
    assert a == bj.ProgressiveSign(use_global_scaling=False, initial_scale=0.3)
    assert hash(a) == hash(bj.ProgressiveSign(use_global_scaling=False, initial_scale=0.3))
    assert a != dataclasses.replace(a, training=False)
    assert a != dataclasses.replace(a, initial_scale=0.4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.initial_scale = 0.5  # type: ignore[misc]


# ----------------------------------------------------------------------------------------
# Argument checks: the same exception types in both frameworks

BAD_ARGUMENTS = [
    ({"alpha": 1.0}, ValueError, "alpha must be finite and > 1"),
    ({"alpha": 0}, ValueError, "alpha"),
    ({"alpha": math.nan}, ValueError, "alpha"),
    ({"alpha": "4"}, TypeError, "alpha must be a real number"),
    ({"alpha": True}, TypeError, "alpha"),
    ({"beta": 0}, ValueError, "beta must be finite and > 0"),
    ({"beta": -1.0}, ValueError, "beta"),
    ({"beta": math.inf}, ValueError, "beta"),
    (
        {"use_global_scaling": False, "initial_scale": -0.1},
        ValueError,
        r"initial_scale must be in \[0, 1\]",
    ),
    ({"use_global_scaling": False, "initial_scale": 1.5}, ValueError, "initial_scale"),
    ({"use_global_scaling": False, "initial_scale": math.nan}, ValueError, "initial_scale"),
    ({"use_global_scaling": False, "initial_scale": "0.5"}, TypeError, "initial_scale"),
    ({"use_global_scaling": "yes"}, TypeError, "use_global_scaling must be a bool"),
    ({"use_global_scaling": 0}, TypeError, "use_global_scaling"),
    ({"custom_transform": 3}, TypeError, "custom_transform must be a callable"),
]


@pytest.mark.parametrize(("kw", "exc", "match"), BAD_ARGUMENTS)
def test_bad_arguments(kw, exc, match):
    for make in (bt.ProgressiveSign, bj.ProgressiveSign):
        with pytest.raises(exc, match=match):
            make(**kw)
    with pytest.raises(exc, match=match):
        bt.progressive_sign(torch.zeros(2), **kw)
    with pytest.raises(exc, match=match):
        bj.progressive_sign(jnp.zeros(2), **kw)


@pytest.mark.parametrize(
    ("transform", "exc"), [(lambda s: math.nan, ValueError), (lambda s: "hot", TypeError)]
)
def test_bad_temperature(transform, exc):
    kw = {"use_global_scaling": False, "initial_scale": 0.5, "custom_transform": transform}
    with pytest.raises(exc, match="temperature"):
        bt.ProgressiveSign(**kw)(torch.zeros(2))
    with pytest.raises(exc, match="temperature"):
        bj.ProgressiveSign(**kw)(jnp.zeros(2))


def test_bad_input_mode_and_config():
    for x in (torch.zeros(2, dtype=torch.int32), torch.zeros(2, dtype=torch.bool)):
        with pytest.raises(TypeError, match="progressive_sign"):
            bt.ProgressiveSign()(x)
    with pytest.raises(TypeError, match="progressive_sign"):
        bj.ProgressiveSign()(jnp.zeros(2, jnp.int32))
    with pytest.raises(TypeError, match="training must be a bool"):
        bt.progressive_sign(torch.zeros(2), training=1)
    with pytest.raises(TypeError, match="training must be a bool"):
        bj.ProgressiveSign(training=1)
    with pytest.raises(ValueError, match="give scale or initial_scale"):
        bt.progressive_sign(torch.zeros(2), 0.1, initial_scale=0.2)
    for config in (bt_ps.config, bj_ps.config):
        with pytest.raises(ValueError, match="progressive_sign_scale"):
            config.progressive_sign_scale = 2.0
        with pytest.raises(ValueError, match="alpha"):
            config.progressive_sign_alpha = 0.5
        with pytest.raises(AttributeError, match="no option"):
            config.progressive_sign_gamma = 1.0
        assert config.progressive_sign_scale == 0.0


# ----------------------------------------------------------------------------------------
# The scheduler


def _scheduled_model(quantization="sign"):
    from bitorch.layers import QLinear

    torch.manual_seed(0)
    return torch.nn.Sequential(
        QLinear(4, 3, input_quantization=bt.ScheduledQuantizer(), weight_quantization=quantization),
        torch.nn.ReLU(),
        QLinear(3, 2, input_quantization="sign", weight_quantization="sign"),
    )


def test_scheduler_replaces_only_placeholders_by_default():
    model = _scheduled_model()
    scheduler = bt.Quantization_Scheduler(model, 4, [bt.Identity(), bt.Sign()], "mix_linear")
    assert len(scheduler.scheduled_quantizer_instances) == 1
    (q,) = scheduler.scheduled_quantizer_instances
    assert model[0].input_quantization is q and isinstance(q, bt.MixLinearScheduling)
    assert isinstance(model[0].weight_quantization, bt.Sign)
    assert q.bit_width == 1 and q.steps == 4 and q.factor == 0.0
    x = torch.tensor([-0.5, 0.2, 0.0, 1.5])
    assert torch.equal(q(x), x)
    for step in range(1, 7):
        scheduler.step()
        assert q.step_count == step and q.factor == min(step / 4, 1.0)
    assert torch.equal(q(x), bt.sign(x))


def test_scheduler_replace_all_and_exclude_layers():
    from bitorch.layers import QLinear

    model = _scheduled_model()
    scheduler = bt.Quantization_Scheduler(
        model, 2, [bt.Identity(), bt.Sign()], "step", schedule_all_quantizations=True
    )
    assert len(scheduler.scheduled_quantizer_instances) == 4
    assert all(isinstance(q, bt.StepScheduling) for q in scheduler.scheduled_quantizer_instances)
    assert isinstance(model[2].weight_quantization, bt.StepScheduling)
    # Each instance holds its own deep copies of the quantizations.
    a, b = scheduler.scheduled_quantizer_instances[:2]
    assert a.quantizations[0] is not b.quantizations[0]
    model = _scheduled_model()
    scheduler = bt.Quantization_Scheduler(
        model, 2, [bt.Sign()], "step", schedule_all_quantizations=True, exclude_layers=[QLinear]
    )
    assert scheduler.scheduled_quantizer_instances == []
    # The model trains through the scheduled quantizers.
    model = _scheduled_model()
    bt.Quantization_Scheduler(model, 2, [bt.Identity(), bt.Sign()], "mix_linear")
    model(torch.randn(5, 4)).sum().backward()
    assert model[0].weight.grad is not None


@pytest.mark.parametrize("factor", [0.0, 0.2, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0])
def test_procedures_match_the_formulas_and_jax(factor):
    x = np.array([-1.5, -0.3, 0.0, 0.2, 0.7, 1.2], np.float32)
    torch_qs = [bt.Identity(), bt.InputDoReFa(bits=2), bt.Sign()]
    jax_qs = (bj.Identity(), bj.InputDoReFa(bits=2), bj.Sign())
    outs = [to_numpy(q(to_torch(x))) for q in torch_qs]
    s = factor * 2
    i = int(s)
    want_mix = (
        outs[2] if i == 2 else outs[i + 1] * np.float32(s - i) + outs[i] * np.float32(1 - (s - i))
    )
    want_step = outs[min(int(factor * 3), 2)]
    for cls, want, jfn in (
        (bt.MixLinearScheduling, want_mix, bj.mix_linear_scheduling),
        (bt.StepScheduling, want_step, bj.step_scheduling),
    ):
        q = cls(torch_qs, 10)
        q.factor = factor
        got = to_numpy(q(to_torch(x)))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.asarray(jfn(jnp.asarray(x), jax_qs, factor)), got)
        traced = jax.jit(lambda a, f, jfn=jfn: jfn(a, jax_qs, f))(jnp.asarray(x), factor)
        np.testing.assert_allclose(np.asarray(traced), got, rtol=0, atol=1e-6)


def test_jax_scheduled_objects_and_nnx_scheduler():
    from flax import nnx

    from bitorch_jax.layers.nnx import QLinear

    q = bj.MixLinearScheduling(quantizations=[bj.Identity(), bj.Sign()], steps=2)
    assert q.quantizations == (bj.Identity(), bj.Sign()) and q.bit_width == 1
    assert q.next_step().factor == 0.5 and q.factor == 0.0
    with pytest.raises(ValueError, match="steps > 0"):
        bj.ScheduledQuantizer().next_step()
    model = nnx.Sequential(
        QLinear(4, 3, input_quantization=bj.ScheduledQuantizer(), rngs=nnx.Rngs(0)),
        nnx.relu,
        QLinear(3, 2, input_quantization="identity", rngs=nnx.Rngs(1)),
    )
    scheduler = bj.Quantization_Scheduler(model, 2, [bj.Identity(), bj.Sign()], "mix_linear")
    assert len(scheduler.scheduled_quantizer_instances) == 1
    assert model.layers[0].input_quantization == scheduler.scheduled_quantizer_instances[0]
    x = jnp.array([[-0.5, 0.2, 0.0, 1.5]])
    before = model(x)
    scheduler.step()
    assert model.layers[0].input_quantization.factor == 0.5
    assert not np.array_equal(np.asarray(model(x)), np.asarray(before))
    everything = nnx.Sequential(QLinear(4, 3, rngs=nnx.Rngs(0)))
    scheduler = bj.Quantization_Scheduler(
        everything, 2, [bj.Sign()], "step", schedule_all_quantizations=True
    )
    assert len(scheduler.scheduled_quantizer_instances) == 2


def test_scheduler_argument_checks():
    model = _scheduled_model()
    for kw, exc in (
        ({"steps": 0}, ValueError),
        ({"steps": 2.0}, TypeError),
        ({"quantizations": []}, ValueError),
        ({"quantizations": bt.Sign()}, TypeError),
        ({"scheduling_procedure": "cosine"}, ValueError),
        ({"schedule_all_quantizations": "yes"}, TypeError),
    ):
        args = {"steps": 2, "quantizations": [bt.Sign()], "scheduling_procedure": "step"} | kw
        with pytest.raises(exc):
            bt.Quantization_Scheduler(model, **args)
    with pytest.raises(ValueError, match="steps > 0"):
        bt.ScheduledQuantizer().step()
    with pytest.raises(ValueError, match="known: 'mix_linear', 'step'"):
        bj.Quantization_Scheduler(__import__("flax").nnx.Sequential(), 2, [bj.Sign()], "cosine")
    with pytest.raises(TypeError, match="nnx.Module"):
        bj.Quantization_Scheduler(object(), 2, [bj.Sign()], "step")
    assert progressive_sign_divisor(1.0, 10.0, 10.0) == 1e-7
