"""Traced hyperparameters of bitorch_jax: an annealing schedule compiles once.

SwishSign's ``beta``, SteTernary's ``threshold`` and the gradient-cancellation threshold
of QActivation, QLinear and QConv may be 0-d JAX arrays, also traced ones (a jit argument,
or an ``nnx.Variable`` read inside ``nnx.jit``); ProgressiveSign's scale already could.
Checked here (SPEC.md "Traced hyperparameters"):

* compile counts: a 5-step schedule traced through an argument / a variable compiles
  once; the static way (a new quantizer object or a Python float per step) 5 times;
* a traced value gives the gradients (and outputs) of the concrete one bit for bit,
  over the edge-value inputs of ``bitorch_common.inputs.make_samples``, in float32 and
  (scoped ``x64`` fixture) float64;
* an invalid traced value makes the gradient NaN (never a silent 0) and is reported by
  ``checkify.checkify(f, errors=checkify.user_checks)``;
* concrete arrays are checked by the rules (and messages) of Python numbers.

Traces are counted with a Python counter incremented inside the traced function (it runs
only while tracing) and, for ``jax.jit``, the jit cache size.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.experimental import checkify

import bitorch_jax.quantizations as bq
from bitorch_common.inputs import make_samples
from bitorch_jax.layers import linen as ql
from bitorch_jax.layers import nnx as qn
from bitorch_jax.layers.qactivation import gradient_cancellation

BETAS = (0.5, 1.0, 2.5, 5.0, 10.0)  # a 5-step annealing schedule of SwishSign's beta
THRESHOLDS = (0.0, 0.25, 0.5, 1.0, 2.0)  # ... and of the cancellation threshold (0: off)
DTYPES = ("float32", "float64")


def bits(a: jax.Array) -> np.ndarray:
    """The bit pattern of an array: equal bits, not merely equal values (NaN included)."""
    a = np.asarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def assert_same_bits(actual: jax.Array, expected: jax.Array, what: str) -> None:
    assert np.asarray(actual).dtype == np.asarray(expected).dtype, what
    np.testing.assert_array_equal(bits(actual), bits(expected), err_msg=what)


def samples(dtype: str) -> list[np.ndarray]:
    return make_samples((7, 5), dtype, np.random.default_rng(0))


@pytest.fixture(params=DTYPES)
def dtype(request: pytest.FixtureRequest) -> str:
    if request.param == "float64":
        request.getfixturevalue("x64")
    return request.param


# --------------------------------------------------------------------------- compile counts


def test_swish_sign_beta_as_jit_argument_compiles_once():
    x = jnp.asarray(samples("float32")[0])
    traces = []

    @jax.jit
    def step(x, beta):
        traces.append(beta)  # runs only while tracing
        return jax.grad(lambda x: bq.swish_sign(x, beta).sum())(x)

    grads = [step(x, jnp.float32(b)) for b in BETAS]
    assert len(traces) == 1, f"traced {len(traces)} times for {len(BETAS)} betas"
    assert step._cache_size() == 1
    assert isinstance(traces[0], jax.core.Tracer)
    assert len({bits(g).tobytes() for g in grads}) == len(BETAS)  # beta did change
    for b, g in zip(BETAS, grads, strict=True):
        expected = jax.grad(lambda x, b=b: bq.swish_sign(x, b).sum())(x)
        assert_same_bits(g, expected, f"beta={b}")


def test_static_swish_sign_objects_recompile_every_step():
    """The contrast: the quantizer object is a static value, one compilation per beta."""
    x = jnp.asarray(samples("float32")[0])
    traces = []

    def step(q, x):
        traces.append(q)
        return jax.grad(lambda x: q(x).sum())(x)

    jitted = jax.jit(step, static_argnums=0)
    for b in BETAS:
        jitted(bq.SwishSign(beta=b), x)
    assert len(traces) == len(BETAS)
    assert jitted._cache_size() == len(BETAS)


class AnnealedNet(nnx.Module):
    """A QLinear (cancellation threshold in an ``nnx.Variable``) whose output is
    SwishSign-quantized with ``beta`` (another variable): ``nnx.jit`` traces both."""

    def __init__(self, beta: float, threshold: float, *, rngs: nnx.Rngs) -> None:
        self.beta = nnx.Variable(jnp.asarray(beta, jnp.float32))
        self.q = bq.SwishSign()
        self.linear = qn.QLinear(
            5,
            3,
            input_quantization="identity",
            gradient_cancellation_threshold=nnx.Variable(jnp.asarray(threshold, jnp.float32)),
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.q(self.linear(x), beta=self.beta[...])


def test_nnx_variables_annealed_in_a_training_loop_compile_once():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32))
    model = AnnealedNet(BETAS[0], THRESHOLDS[0], rngs=nnx.Rngs(0))
    traces = []

    @nnx.jit
    def train_step(model, x):
        traces.append(1)

        def loss_fn(model, x):
            out = model(x)
            return jnp.sum(out * jnp.arange(out.size).reshape(out.shape))

        grads, x_grad = nnx.grad(loss_fn, argnums=(0, 1))(model, x)
        model.linear.kernel[...] = model.linear.kernel[...] - 0.01 * grads.linear.kernel[...]
        return x_grad

    seen = []
    for beta, threshold in zip(BETAS, THRESHOLDS, strict=True):
        model.beta[...] = jnp.float32(beta)  # the schedule: state changes, structure not
        model.linear.gradient_cancellation_threshold[...] = jnp.float32(threshold)
        seen.append(np.asarray(train_step(model, x)))
    assert len(traces) == 1, f"traced {len(traces)} times for {len(BETAS)} steps"
    assert len({s.tobytes() for s in seen}) == len(BETAS)


def test_nnx_static_threshold_recompiles_every_step():
    """The contrast: a Python-float threshold is static graph data of the layer."""
    x = jnp.ones((2, 5))
    layer = qn.QLinear(5, 3, rngs=nnx.Rngs(0))
    traces = []

    @nnx.jit
    def forward(layer, x):
        traces.append(1)
        return layer(x)

    for t in THRESHOLDS:
        layer.gradient_cancellation_threshold = t
        forward(layer, x)
    assert len(traces) == len(THRESHOLDS)


# --------------------------------------------------------------------------- bit for bit


@pytest.mark.parametrize("beta", BETAS)
def test_traced_beta_equals_concrete_beta_bit_for_bit(dtype: str, beta: float):
    """Outputs and gradients over the edge-value samples, traced vs concrete beta."""

    def run(x, b):
        out, vjp = jax.vjp(lambda x: bq.swish_sign(x, b), x)
        return out, vjp(jnp.ones_like(out))[0]

    traced = jax.jit(run)
    concrete = jax.jit(lambda x: run(x, beta))
    for i, x in enumerate(samples(dtype)):
        out_t, grad_t = traced(x, jnp.asarray(beta, dtype))
        out_c, grad_c = concrete(x)
        assert_same_bits(out_t, out_c, f"output, sample {i}")
        assert_same_bits(grad_t, grad_c, f"gradient, sample {i}")
        if i == 0:  # no jit at all (op by op): the same bits too
            assert_same_bits(grad_t, run(x, beta)[1], f"gradient vs eager, sample {i}")


@pytest.mark.parametrize("threshold", (*THRESHOLDS, 1e-50))
def test_traced_threshold_equals_concrete_threshold_bit_for_bit(dtype: str, threshold: float):
    """Gradient cancellation itself, a traced threshold against the Python float of the
    same value. 1e-50 is 0 in float32 (off) but, as a float64 threshold of a float32
    input, a positive threshold that rounds to 0 in the input's dtype (on: |x| > 0)."""
    traced = jax.jit(lambda x, t: jax.grad(lambda x: gradient_cancellation(x, t).sum())(x))

    def concrete(x, t):
        return jax.jit(lambda x: jax.grad(lambda x: gradient_cancellation(x, t).sum())(x))(x)

    t_dtypes = DTYPES if dtype == "float64" else ("float32",)
    for i, x in enumerate([*samples(dtype), *(samples("float32") if dtype == "float64" else [])]):
        for t_dtype in t_dtypes:
            t = jnp.asarray(threshold, t_dtype)
            what = f"sample {i} ({x.dtype}), threshold {t_dtype}"
            assert_same_bits(traced(x, t), concrete(x, float(t)), what)


@pytest.mark.parametrize(
    ("threshold", "twn"), [(0.0, False), (0.05, False), (0.5, False), (0.0, True), (0.7, True)]
)
def test_traced_ternary_threshold_equals_concrete_bit_for_bit(dtype: str, threshold, twn):
    """SteTernary's threshold (fixed, or the TWN factor) traced vs concrete: outputs and
    gradients over the edge-value samples; one compilation for every threshold."""

    def run(x, t):
        out, vjp = jax.vjp(lambda x: bq.SteTernary(twn=twn)(x, threshold=t), x)
        return out, vjp(jnp.ones_like(out))[0]

    traced = jax.jit(run)
    concrete = jax.jit(lambda x: run(x, threshold))
    for i, x in enumerate(samples(dtype)):
        out_t, grad_t = traced(x, jnp.asarray(threshold, dtype))
        out_c, grad_c = concrete(x)
        assert_same_bits(out_t, out_c, f"output, sample {i}")
        assert_same_bits(grad_t, grad_c, f"gradient, sample {i}")
    assert traced._cache_size() == 1


def _layers(dtype: str, threshold):
    rngs = nnx.Rngs(0)
    kw = dict(gradient_cancellation_threshold=threshold, param_dtype=dtype, rngs=rngs)
    return {
        "QActivation": (
            qn.QActivation("sign", gradient_cancellation_threshold=threshold),
            (3, 5),
        ),
        "QLinear": (qn.QLinear(5, 4, use_bias=True, **kw), (3, 5)),
        "QConv": (qn.QConv(2, 3, (3,), padding=1, **kw), (2, 6, 2)),
    }


@pytest.mark.parametrize("name", ("QActivation", "QLinear", "QConv"))
def test_layer_threshold_in_a_variable_matches_the_float_threshold(dtype: str, name: str):
    """nnx layers with the threshold in an ``nnx.Variable`` under ``nnx.jit``: the input
    and parameter gradients equal the Python-float layer's bit for bit, at every step of
    a schedule that compiles once."""
    traces = []

    @nnx.jit
    def grads(layer, x):
        traces.append(1)

        def loss(layer, x):
            return jnp.sum(layer(x) * jnp.arange(1, layer(x).size + 1).reshape(layer(x).shape))

        return nnx.grad(loss, argnums=(0, 1))(layer, x)

    variable = nnx.Variable(jnp.asarray(THRESHOLDS[0], dtype))
    traced_layer, shape = _layers(dtype, variable)[name]
    assert traced_layer.gradient_cancellation_threshold is variable  # kept, not a float
    x = jnp.asarray(np.random.default_rng(2).uniform(-2.5, 2.5, size=shape).astype(dtype))
    for t in THRESHOLDS:
        variable[...] = jnp.asarray(t, dtype)
        float_layer, _ = _layers(dtype, t)[name]
        nnx.update(float_layer, nnx.state(traced_layer, nnx.Param))
        g_traced, g_float = grads(traced_layer, x), grads(float_layer, x)
        flat_t, flat_f = jax.tree.leaves(g_traced), jax.tree.leaves(g_float)
        assert len(flat_t) >= len(flat_f) >= 1
        assert_same_bits(flat_t[-1], flat_f[-1], f"{name} input gradient, threshold {t}")
        params_t = jax.tree.leaves(nnx.state(g_traced[0], nnx.Param))
        params_f = jax.tree.leaves(nnx.state(g_float[0], nnx.Param))
        for a, b in zip(params_t, params_f, strict=True):
            assert_same_bits(a, b, f"{name} parameter gradient, threshold {t}")
    # one trace for the variable layer, one per threshold for the float layers
    assert len(traces) == 1 + len(THRESHOLDS)


# --------------------------------------------------------------------------- invalid traced values

INVALID_BETAS = (0.0, -1.0, float("nan"), float("inf"))
INVALID_THRESHOLDS = (-1.0, -1e-30, float("nan"), float("inf"))


def swish_grad(x, beta):
    return jax.grad(lambda x: bq.swish_sign(x, beta).sum())(x)


def cancel_grad(x, t):
    return jax.grad(lambda x: gradient_cancellation(x, t).sum())(x)


def progressive_scale_output(x, scale):
    return bq.progressive_sign(x, scale, alpha=2.0, beta=3.0)


def progressive_alpha_output(x, alpha):
    return bq.progressive_sign(x, 0.5, alpha=alpha, beta=3.0)


def ternary_output(x, t):
    return bq.ste_ternary(x, t)


# (name, function of (x, traced value) that must be all NaN for an invalid value,
#  invalid values, a valid value, the checkify message)
CASES = [
    ("swishsign", swish_grad, INVALID_BETAS, 5.0, "swishsign: beta must be finite and > 0"),
    (
        "steternary threshold",
        ternary_output,
        (-0.5, 1e-39, float("nan"), float("inf")),
        0.05,
        "steternary: threshold must be finite and >= 0, and 0 or at least 2**-126",
    ),
    (
        "progressive_sign scale",
        progressive_scale_output,
        (-0.25, 1.5, float("nan"), float("inf")),
        0.5,
        "progressive_sign: scale must be in [0, 1]",
    ),
    (
        "progressive_sign alpha",
        progressive_alpha_output,
        (1.0, 0.5, float("nan"), float("inf")),
        4.0,
        "progressive_sign: alpha must be finite and > 1",
    ),
    (
        "gradient_cancellation",
        cancel_grad,
        INVALID_THRESHOLDS,
        1.0,
        "gradient_cancellation: gradient_cancellation_threshold must be finite and >= 0",
    ),
]


@pytest.mark.parametrize(
    ("name", "fn", "invalid", "valid", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_invalid_traced_value_gives_nan_and_a_checkify_error(name, fn, invalid, valid, message):
    x = jnp.asarray(samples("float32")[0])
    jitted = jax.jit(fn)
    checked = checkify.checkify(jitted, errors=checkify.user_checks)
    err, grad = checked(x, jnp.float32(valid))
    assert err.get() is None
    assert not np.isnan(np.asarray(grad)).all()
    for v in invalid:
        grad = jitted(x, jnp.float32(v))
        assert np.isnan(np.asarray(grad)).all(), f"{name}={v}: gradient not NaN"
        err, grad = checked(x, jnp.float32(v))
        assert err.get() is not None and message in err.get(), err.get()
        assert np.isnan(np.asarray(grad)).all()
        with pytest.raises(ValueError, match=re.escape(message)):
            err.throw()


def test_invalid_threshold_in_a_layer_variable_is_reported_by_checkify():
    """checkify is a JAX transform: the model goes through it as (graphdef, state)."""
    layer = qn.QLinear(
        5, 3, gradient_cancellation_threshold=nnx.Variable(jnp.float32(1.0)), rngs=nnx.Rngs(0)
    )
    graphdef, state = nnx.split(layer)
    x = jnp.ones((2, 5))

    @jax.jit
    def input_grad(state, x):
        layer = nnx.merge(graphdef, state)
        return jax.grad(lambda x: layer(x).sum())(x)

    checked = checkify.checkify(input_grad, errors=checkify.user_checks)
    assert checked(state, x)[0].get() is None
    layer.gradient_cancellation_threshold[...] = jnp.float32(-0.5)
    state = nnx.state(layer)
    err, grad = checked(state, x)
    assert "gradient_cancellation_threshold must be finite and >= 0" in err.get()
    assert np.isnan(np.asarray(grad)).all()
    assert np.isnan(np.asarray(input_grad(state, x))).all()


# --------------------------------------------------------------------------- concrete arrays


def _containers(v):
    """The same concrete value as a Python float, a NumPy scalar and each kind of 0-d
    JAX array."""
    return {
        "float": v,
        "numpy": np.float32(v),
        "jax": jnp.asarray(v, jnp.float32),
        "variable": nnx.Variable(jnp.asarray(v, jnp.float32)),
    }


ARRAY_CHECKS = [
    ("swish_sign", lambda v: bq.swish_sign(jnp.ones(2), v), 0.0, "beta must be finite and > 0"),
    ("SwishSign", lambda v: bq.SwishSign(beta=v), -2.0, "beta must be finite and > 0"),
    (
        "SteTernary",
        lambda v: bq.SteTernary(threshold=v),
        2.0**-130,  # exact in float32 too
        "threshold must be 0 or at least 2**-126",
    ),
    (
        "ste_ternary",
        lambda v: bq.ste_ternary(jnp.ones(2), v, twn=True),
        -0.5,
        "threshold must be finite and >= 0",
    ),
    (
        "SwishSign.__call__",
        lambda v: bq.SwishSign()(jnp.ones(2), beta=v),
        float("inf"),
        "beta must be finite and > 0",
    ),
    (
        "gradient_cancellation",
        lambda v: gradient_cancellation(jnp.ones(2), v),
        -1.0,
        "gradient_cancellation_threshold must be finite and >= 0",
    ),
    (
        "nnx.QActivation",
        lambda v: qn.QActivation(gradient_cancellation_threshold=v),
        float("nan"),
        "gradient_cancellation_threshold must be finite and >= 0",
    ),
    (
        "nnx.QConv",
        lambda v: qn.QConv(1, 1, (1,), gradient_cancellation_threshold=v, rngs=nnx.Rngs(0)),
        -1.0,
        "gradient_cancellation_threshold must be finite and >= 0",
    ),
    (
        "linen.QDense",
        lambda v: ql.QDense(2, gradient_cancellation_threshold=v).init(
            jax.random.key(0), jnp.ones((1, 2))
        ),
        -1.0,
        "gradient_cancellation_threshold must be finite and >= 0",
    ),
]


KINDS = ("float", "numpy", "jax", "variable")


@pytest.mark.parametrize(
    ("name", "build", "bad", "message", "kind"),
    [
        (*case, kind)
        for case in ARRAY_CHECKS
        for kind in KINDS
        # linen keeps state in collections, not in nnx.Variable attributes
        if not (case[0].startswith("linen.") and kind == "variable")
    ],
    ids=[
        f"{case[0]}-{kind}"
        for case in ARRAY_CHECKS
        for kind in KINDS
        if not (case[0].startswith("linen.") and kind == "variable")
    ],
)
def test_concrete_arrays_are_checked_like_numbers(name, build, bad, message, kind):
    with pytest.raises(ValueError) as raised:
        build(_containers(bad)[kind])
    expected_message = None
    try:
        build(bad)
    except ValueError as e:
        expected_message = str(e)
    assert message in str(raised.value)
    assert str(raised.value) == expected_message  # the message of the Python number
    build(_containers(0.75)[kind])  # a valid one is accepted


@pytest.mark.parametrize("value", [jnp.ones(2), jnp.zeros((1, 1)), jnp.asarray(True)])
def test_non_scalar_or_non_real_jax_arrays_are_type_errors(value):
    with pytest.raises(TypeError, match="must be a real number or a 0-d real array"):
        gradient_cancellation(jnp.ones(2), value)
    with pytest.raises(TypeError, match="must be a real number or a 0-d real array"):
        qn.QActivation(gradient_cancellation_threshold=nnx.Variable(value))
    with pytest.raises(TypeError, match="beta must be a real"):
        bq.swish_sign(jnp.ones(2), value)


def test_numpy_arrays_are_refused_as_before():
    """Only NumPy scalars count as numbers (unchanged); a 0-d ndarray threshold is not."""
    with pytest.raises(TypeError, match="must be a real number, got ndarray"):
        gradient_cancellation(jnp.ones(2), np.asarray(0.5))


def test_a_traced_value_cannot_be_a_field_of_the_static_object():
    with pytest.raises(TypeError, match=r"pass it at call time, q\(x, beta=b\)"):
        jax.jit(lambda b: bq.SwishSign(beta=b)(jnp.ones(2)))(2.0)
    with pytest.raises(TypeError, match=r"pass it at call time, q\(x, threshold=t\)"):
        jax.jit(lambda t: bq.SteTernary(threshold=t)(jnp.ones(2)))(0.1)


def test_example_script_prints_one_compilation_against_five():
    from examples import anneal_schedule

    assert anneal_schedule.main(["--steps", "5"]) == {"traced": 1, "static": 5}


def test_hyperparameters_get_a_zero_gradient_and_vmap_per_value():
    """Differentiating with respect to beta or the threshold gives 0 (no gradient), and
    a vmapped batch of values applies each value's rule to its own row."""
    x = jnp.array([-2.0, 0.5, 1.5])
    assert float(jax.grad(lambda t: gradient_cancellation(x, t).sum())(1.0)) == 0.0
    assert float(jax.grad(lambda b: bq.swish_sign(x, b).sum())(2.0)) == 0.0
    rows = jax.vmap(cancel_grad, in_axes=(None, 0))(x, jnp.array([0.0, 1.0, -1.0]))
    np.testing.assert_array_equal(rows[0], [1, 1, 1])
    np.testing.assert_array_equal(rows[1], [0, 1, 0])
    assert np.isnan(np.asarray(rows[2])).all()
    rows = jax.vmap(swish_grad, in_axes=(None, 0))(x, jnp.array([2.0, 0.0]))
    assert_same_bits(rows[0], swish_grad(x, 2.0), "vmapped valid beta")
    assert np.isnan(np.asarray(rows[1])).all()
