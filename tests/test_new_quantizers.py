"""The quantizers beyond bitorch 0.4.1 (SPEC.md's second quantizer table), by hand.

``stesign``, ``magnitudeawaresign``, ``xnorscaled``, ``steternary`` and ``larqdorefa``:
their rules at the special points, written out here with the values worked by hand, not
taken from the NumPy oracles, so that an oracle and an implementation sharing a mistake
still fail. Each rule runs in both frameworks: torch autograd, and JAX eagerly and under
``jax.jit`` (``jax.vjp``), in float32 and float64 unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the rules are checked in both frameworks")

import bitorch.quantizations as bt  # noqa: E402
import bitorch_jax.quantizations as bj  # noqa: E402

NAN, INF = math.nan, math.inf
DTYPES = ["float32", "float64"]
RUNNERS = ["torch", "jax", "jax-jit"]


def _torch_dtype(dtype: str) -> Any:
    return getattr(torch, dtype)


def run(
    runner: str, key: str, params: dict, x: Any, g: Any = None, dtype: str = "float32"
) -> tuple[np.ndarray, np.ndarray]:
    """``(q(x), dq/dx * g)`` as float64 NumPy arrays; ``g`` defaults to ones."""
    np_dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = np.asarray(x, np.float64).astype(np_dt)
    g = np.ones_like(x) if g is None else np.asarray(g, np.float64).astype(np_dt)
    if runner == "torch":
        xt = torch.from_numpy(x.astype(np.float64)).to(_torch_dtype(dtype)).requires_grad_(True)
        y = bt.quantization_from_name(key)(**params)(xt)
        y.backward(torch.from_numpy(g.astype(np.float64)).to(_torch_dtype(dtype)))
        assert y.dtype == xt.dtype and xt.grad.dtype == xt.dtype
        return y.detach().double().numpy(), xt.grad.double().numpy()
    q = bj.quantization_from_name(key)(**params)

    def both(v: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
        y, pullback = jax.vjp(q, v)
        return y, pullback(c)[0]

    with jax.enable_x64(dtype == "float64"):
        f = jax.jit(both) if runner == "jax-jit" else both
        y, dx = f(jnp.asarray(x), jnp.asarray(g))
        assert y.dtype == x.dtype and dx.dtype == x.dtype
        return np.asarray(y, np.float64), np.asarray(dx, np.float64)


def same(got: np.ndarray, want: Any, what: str) -> None:
    """Equal element for element, NaN where NaN is wanted (``0 == -0.0``)."""
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    ok = (got == want) | (np.isnan(got) & np.isnan(want))
    assert ok.all(), f"{what}:\n got  {got.tolist()}\n want {want.tolist()}"


def raised(call: Callable[[], Any]) -> type[Exception] | None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    return None


def both_raise(key: str, params: dict, exc: type[Exception]) -> None:
    """Building the quantizer raises ``exc`` in both frameworks."""
    got = (raised(lambda: bt.quantization_from_name(key)(**params)),
           raised(lambda: bj.quantization_from_name(key)(**params)))  # fmt: skip
    assert got == (exc, exc), f"{key}({params}): torch, jax raised {got}"


def up(dtype: str) -> float:
    """The float just above 1 in ``dtype``."""
    return float(np.nextafter(np.ones((), dtype), np.full((), 2, dtype)))


# --------------------------------------------------------------------------- stesign

POINTS = ["0", "-0", "1", "-1", "1+", "-1-", "inf", "-inf", "nan"]


def points(dtype: str) -> list[float]:
    return [0.0, -0.0, 1.0, -1.0, up(dtype), -up(dtype), INF, -INF, NAN]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_stesign_special_points(runner: str, dtype: str) -> None:
    """sign(0) = sign(-0.0) = +1, NaN stays; the gradient passes for |x| <= 1 inclusive,
    is 0 past it (±inf too) and NaN at NaN."""
    g = [1.5, -0.5, 2.0, -3.0, 0.25, 4.0, -1.0, 7.0, 0.5]
    y, dx = run(runner, "stesign", {}, points(dtype), g, dtype)
    same(y, [1, 1, 1, -1, 1, -1, 1, -1, NAN], "forward")
    same(dx, [1.5, -0.5, 2.0, -3.0, 0, 0, 0, 0, NAN], "gradient")


@pytest.mark.parametrize("runner", RUNNERS)
def test_stesign_clip_value_is_the_inclusive_bound(runner: str) -> None:
    x = [0.5, -0.5, float(np.nextafter(np.float32(0.5), np.float32(1))), -0.75, 0.25]
    _, dx = run(runner, "stesign", {"clip_value": 0.5}, x)
    same(dx, [1, 1, 0, 0, 1], "clip_value=0.5")


@pytest.mark.parametrize("runner", RUNNERS)
def test_stesign_clip_value_is_rounded_to_the_compute_dtype(runner: str) -> None:
    """float32(0.3) is above the real 0.3, yet passes: the bound is float32(0.3) too."""
    x = [float(np.float32(0.3)), -float(np.float32(0.3)), 0.31]
    _, dx = run(runner, "stesign", {"clip_value": 0.3}, x)
    same(dx, [1, 1, 0], "clip_value=0.3, float32")
    _, dx = run(runner, "stesign", {"clip_value": 0.3}, [0.3, 0.30000000000000004], None, "float64")
    same(dx, [1, 0], "clip_value=0.3, float64")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("clip", [INF, None], ids=["inf", "None"])
def test_stesign_without_clipping(runner: str, clip: float | None) -> None:
    y, dx = run(runner, "stesign", {"clip_value": clip}, [3.0, -1e30, INF, -INF, NAN])
    same(y, [1, -1, 1, -1, NAN], "forward")
    same(dx, [1, 1, 1, 1, NAN], "gradient: passes everywhere, NaN at NaN")


def test_stesign_none_is_stored_as_inf() -> None:
    assert bt.SteSign(clip_value=None).clip_value == INF == bj.SteSign(clip_value=None).clip_value
    assert bj.SteSign(clip_value=None) == bj.SteSign(clip_value=INF)


@pytest.mark.parametrize("runner", RUNNERS)
def test_stesign_mask_multiplies_the_cotangent(runner: str) -> None:
    """The mask is a factor (as steheaviside's): an infinite g where it is 0 gives NaN."""
    _, dx = run(runner, "stesign", {}, [2.0, -3.0, 0.5, 0.25], [INF, -INF, INF, 2.0])
    same(dx, [NAN, NAN, INF, 2.0], "gradient")


@pytest.mark.parametrize("runner", RUNNERS)
def test_stesign_subnormals(runner: str) -> None:
    """XLA on CPU compares subnormals as zero; the sign and the mask must not."""
    s = float(ml_dtypes.finfo(np.float32).smallest_subnormal)
    y, dx = run(runner, "stesign", {}, [-s, s, -64 * s])
    same(y, [-1, 1, -1], "forward")
    same(dx, [1, 1, 1], "gradient")


@pytest.mark.parametrize(
    ("params", "exc"),
    [
        ({"clip_value": 0.0}, ValueError),
        ({"clip_value": -1.0}, ValueError),
        ({"clip_value": NAN}, ValueError),
        ({"clip_value": 1e-40}, ValueError),  # below 2**-126: refused
        ({"clip_value": "1"}, TypeError),
        ({"clip_value": True}, TypeError),
    ],
)
def test_stesign_bad_clip_value(params: dict, exc: type[Exception]) -> None:
    both_raise("stesign", params, exc)
    for key in ("magnitudeawaresign", "steternary"):
        both_raise(key, params, exc)


# --------------------------------------------------------------------------- magnitudeawaresign

# A Linear weight in torch's layout (out=2, in=3): alpha = [1.0, 0.25] per output row
# (dyadic values: every sum and mean here is exact).
W = [[0.5, -1.5, 1.0], [-0.25, 0.0, 0.5]]
W_Q = [[1.0, -1.0, 1.0], [-0.25, 0.25, 0.25]]


def _alpha(values: list[float], dtype: str = "float32") -> float:
    """mean|v| of a short exact list, in ``dtype``."""
    return float(np.asarray(sum(abs(v) for v in values) / len(values), dtype))


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_magnitudeawaresign_per_output_channel(runner: str, dtype: str) -> None:
    a0, a1 = _alpha(W[0], dtype), _alpha(W[1], dtype)
    g = [[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]
    y, dx = run(runner, "magnitudeawaresign", {"channel_axis": 0}, W, g, dtype)
    same(y, [[a0, -a0, a0], [-a1, a1, a1]], "forward: alpha * sign, sign(0) = +1")
    # alpha * g where |w| <= 1 (inclusive: w = 1.0 passes), 0 past it (w = -1.5)
    want = [[a0 * 1.0, 0.0, a0 * 3.0], [-a1, a1 * 0.5, a1 * 4.0]]
    same(dx, np.asarray(want, dtype), "gradient")


@pytest.mark.parametrize("runner", ["jax", "jax-jit"])
def test_magnitudeawaresign_default_axes_follow_each_frameworks_layout(runner: str) -> None:
    """torch's default (axis 0 of (out, in)) and JAX's (axis -1 of the (in, out) kernel)
    are the same output channels: the JAX result is the transpose of torch's."""
    y_t, dx_t = run("torch", "magnitudeawaresign", {}, W)
    y_j, dx_j = run(runner, "magnitudeawaresign", {}, np.asarray(W).T)
    same(y_t, W_Q, "torch forward")
    same(y_j.T, y_t, "JAX forward on the transposed kernel")
    same(dx_j.T, dx_t, "JAX gradient on the transposed kernel")
    # a conv weight: torch (out, in, kh, kw), Flax (kh, kw, in, out)
    w = np.random.default_rng(0).integers(-8, 9, (3, 2, 2, 2)) / 8.0
    y_t, _ = run("torch", "magnitudeawaresign", {}, w)
    y_j, _ = run(runner, "magnitudeawaresign", {}, w.transpose(2, 3, 1, 0))
    same(y_j.transpose(3, 2, 0, 1), y_t, "conv: JAX on the Flax layout")
    for c in range(3):  # eighths sum exactly: alpha is the exact mean
        same(np.abs(y_t[c]), np.full((2, 2, 2), np.abs(w[c]).mean()), f"channel {c}")


@pytest.mark.parametrize("runner", RUNNERS)
def test_magnitudeawaresign_below_two_dimensions_is_per_tensor(runner: str) -> None:
    y, dx = run(runner, "magnitudeawaresign", {"channel_axis": 0}, [0.5, -1.5, 1.0])
    same(y, [1.0, -1.0, 1.0], "1-d: one alpha")
    same(dx, [1.0, 0.0, 1.0], "1-d gradient")
    for value in (-2.5, 0.75, -0.0):
        y, dx = run(runner, "magnitudeawaresign", {"channel_axis": -1}, np.float64(value))
        same(y, abs(value) * (1 if math.copysign(1, value) > 0 or value == 0 else -1), "0-d")
        same(dx, abs(value) if abs(value) <= 1 else 0.0, "0-d gradient")


@pytest.mark.parametrize("runner", RUNNERS)
def test_magnitudeawaresign_channel_axis_none_is_per_tensor(runner: str) -> None:
    a = _alpha(W[0] + W[1])
    y, _ = run(runner, "magnitudeawaresign", {"channel_axis": None}, W)
    same(y, [[a, -a, a], [-a, a, a]], "one alpha for the tensor")


@pytest.mark.parametrize("runner", RUNNERS)
def test_magnitudeawaresign_nan_inf_zero_and_subnormal_channels(runner: str) -> None:
    s = float(ml_dtypes.finfo(np.float32).smallest_subnormal)
    x = [[0.5, NAN, -0.25], [2.0, -INF, 0.5], [0.0, -0.0, 0.0], [s, -s, 8 * s], [1.0, -1.0, 1.0]]
    g = [[1.0, 1.0, 1.0]] * 5
    y, dx = run(runner, "magnitudeawaresign", {"channel_axis": 0}, x, g)
    same(y[0], [NAN] * 3, "a NaN makes its channel's alpha NaN")
    same(y[1], [INF, -INF, INF], "an infinity makes alpha inf")
    same(y[2], [0, 0, 0], "an all-zero channel")
    assert not np.signbit(y[2]).any(), "sign(±0) = +1: alpha * (+1) = +0"
    same(y[3], [0, 0, 0], "subnormals count as 0: alpha = 0")
    same(y[4], [1, -1, 1], "the other channels are untouched")
    # gradient: (g * alpha) times the factor 1 / 0 / NaN
    same(dx[0], [NAN, NAN, NAN], "NaN channel gradient: alpha is NaN")
    same(dx[1], [NAN, NAN, INF], "inf channel gradient: inf * 0 where cancelled")
    same(dx[2], [0, 0, 0], "all-zero channel gradient")
    same(dx[4], [1, 1, 1], "alpha = 1, |x| <= 1 inclusive")


def test_magnitudeawaresign_bad_channel_axis() -> None:
    both_raise("magnitudeawaresign", {"channel_axis": 1.0}, TypeError)
    both_raise("magnitudeawaresign", {"channel_axis": True}, TypeError)
    x = np.ones((2, 3), np.float32)
    for key in ("magnitudeawaresign", "xnorscaled"):
        tq = bt.quantization_from_name(key)(channel_axis=2)
        jq = bj.quantization_from_name(key)(channel_axis=-3)
        assert raised(lambda tq=tq: tq(torch.from_numpy(x))) is ValueError
        assert raised(lambda jq=jq: jq(jnp.asarray(x))) is ValueError
        with pytest.raises(ValueError, match=f"{key}: channel_axis=2 is out of range"):
            tq(torch.from_numpy(x))


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_magnitudeawaresign_halves_are_computed_in_float32(runner: str, dtype: str) -> None:
    """alpha and alpha * g in float32, rounded once to the half dtype."""
    np_dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = np.asarray([[0.1, -0.3, 0.7]]).astype(np_dt)
    g = np.asarray([[0.3, 1.1, -0.7]]).astype(np_dt)
    alpha = np.abs(x.astype(np.float32))
    alpha = (alpha[0, 0] + alpha[0, 2]) + alpha[0, 1]  # the pairwise order for k = 3
    alpha = alpha / np.float32(3)
    want_y = (alpha * np.float32([[1, -1, 1]])).astype(np_dt)
    want_dx = (alpha * g.astype(np.float32)).astype(np_dt)
    y, dx = run(runner, "magnitudeawaresign", {"channel_axis": 0}, x, g, dtype)
    same(y, want_y.astype(np.float64), "forward")
    same(dx, want_dx.astype(np.float64), "gradient")


# --------------------------------------------------------------------------- xnorscaled


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_xnorscaled_is_alpha_sign_with_an_unclipped_gradient(runner: str, dtype: str) -> None:
    a0, a1 = _alpha(W[0], dtype), _alpha(W[1], dtype)
    g = [[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]
    y, dx = run(runner, "xnorscaled", {"channel_axis": 0}, W, g, dtype)
    same(y, [[a0, -a0, a0], [-a1, a1, a1]], "forward")
    same(dx, np.asarray([[a0, 2 * a0, 3 * a0], [-a1, 0.5 * a1, 4 * a1]], dtype), "alpha * g")


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_xnorscaled_wraps_any_base(framework: str) -> None:
    """q = alpha * base(x); the base's gradient is taken at the cotangent g * alpha."""
    pkg = bt if framework == "torch" else bj
    x = np.asarray([[0.25, -0.5, 1.5, 0.0]], np.float32)  # alpha = 2.25 / 4
    alpha = np.float32(0.5625)
    q = pkg.XnorScaled(base=pkg.ApproxSign(), channel_axis=0)
    assert q.bit_width == 1
    if framework == "torch":
        xt = torch.from_numpy(x).requires_grad_(True)
        y = q(xt)
        y.sum().backward()
        y, dx = y.detach().numpy(), xt.grad.numpy()
    else:
        y, pullback = jax.vjp(q, jnp.asarray(x))
        dx = pullback(jnp.ones_like(y))[0]
    same(np.asarray(y, np.float64), alpha * np.float32([[1, -1, 1, 1]]), "forward")
    # approxsign's factor 2 - 2|x| (0 past 1) at the cotangent alpha
    same(np.asarray(dx, np.float64), alpha * np.float32([[1.5, 1.0, 0.0, 2.0]]), "gradient")
    assert pkg.XnorScaled(base=pkg.InputDoReFa(bits=2)).bit_width == 2
    assert pkg.XnorScaled(base="steternary").bit_width == 2


def test_xnorscaled_bad_base() -> None:
    both_raise("xnorscaled", {"base": 3}, TypeError)
    both_raise("xnorscaled", {"base": "nosuch"}, ValueError)
    assert bj.XnorScaled(base="sign") == bj.XnorScaled(base=bj.Sign())
    assert hash(bj.XnorScaled()) == hash(bj.XnorScaled(base="sign", channel_axis=-1))


# --------------------------------------------------------------------------- steternary


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_steternary_fixed_threshold(runner: str, dtype: str) -> None:
    t = float(np.asarray(0.05, dtype))
    above = float(np.nextafter(np.asarray(t, dtype), np.asarray(1, dtype)))
    x = [t, -t, above, -0.06, 0.0, -0.0, 1.0, -up(dtype), INF, -INF, NAN]
    y, dx = run(runner, "steternary", {}, x, None, dtype)
    same(y, [0, 0, 1, -1, 0, 0, 1, -1, 1, -1, NAN], "forward: |x| <= delta gives 0")
    assert not np.signbit(y[[0, 1, 4, 5]]).any(), "zero outputs are +0"
    same(dx, [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, NAN], "gradient: clipped at |x| <= 1")


@pytest.mark.parametrize("runner", RUNNERS)
def test_steternary_threshold_zero_and_subnormals(runner: str) -> None:
    s = float(ml_dtypes.finfo(np.float32).smallest_subnormal)
    y, _ = run(runner, "steternary", {"threshold": 0.0}, [s, -s, 0.0, -0.0, 0.5])
    same(y, [1, -1, 0, 0, 1], "threshold 0: every nonzero x, subnormals too")
    y, _ = run(runner, "steternary", {}, [s, -s])
    same(y, [0, 0], "subnormals are below 0.05")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_steternary_twn_threshold(runner: str, dtype: str) -> None:
    # mean|x| = 5 / 4 = 1.25; factor 0.8 rounds: delta = 1.0 exactly in both dtypes
    x, g = [3.0, -1.0, 0.5, -1.25], [1.0, 2.0, 3.0, 4.0]
    y, dx = run(runner, "steternary", {"twn": True, "threshold": 0.8}, x, g, dtype)
    same(y, [1, 0, 0, -1], "forward: |x| = delta gives 0")
    same(dx, [0, 2, 3, 0], "gradient: clipped at |x| <= 1, not at delta")
    # the default factor is TWN's 0.7: delta = 0.875
    y, _ = run(runner, "steternary", {"twn": True}, [3.0, -1.0, 0.5, -0.875], None, dtype)
    same(y, [1, -1, 0, 0], "twn, factor 0.7")


@pytest.mark.parametrize("runner", RUNNERS)
def test_steternary_twn_special_tensors(runner: str) -> None:
    s = float(ml_dtypes.finfo(np.float32).smallest_subnormal)
    y, dx = run(runner, "steternary", {"twn": True}, [0.5, NAN, -2.0])
    same(y, [NAN] * 3, "a NaN anywhere makes delta and every output NaN")
    same(dx, [1, NAN, 0], "the gradient does not depend on delta")
    y, _ = run(runner, "steternary", {"twn": True}, [0.5, INF, -2.0])
    same(y, [0, 0, 0], "an infinity makes delta inf")
    y, _ = run(runner, "steternary", {"twn": True}, [0.0, -0.0])
    same(y, [0, 0], "all zero")
    y, _ = run(runner, "steternary", {"twn": True}, [s, -s, 3 * s])
    same(y, [1, -1, 1], "all subnormal: mean|x| counts them as 0, so delta = 0")


def test_steternary_arguments() -> None:
    assert bt.SteTernary().bit_width == bj.SteTernary().bit_width == 2
    for pkg in (bt, bj):
        assert (pkg.SteTernary().threshold, pkg.SteTernary().twn) == (0.05, False)
        assert pkg.SteTernary(twn=True).threshold == 0.7
    both_raise("steternary", {"threshold": -0.1}, ValueError)
    both_raise("steternary", {"threshold": INF}, ValueError)
    both_raise("steternary", {"threshold": 1e-40}, ValueError)
    both_raise("steternary", {"threshold": "0.1"}, TypeError)
    both_raise("steternary", {"twn": 1}, TypeError)


# --------------------------------------------------------------------------- larqdorefa


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_larqdorefa_forward_is_weightdorefa(runner: str, bits: int) -> None:
    x = np.random.default_rng(bits).normal(0, 1.5, 64)
    x[:4] = [0.0, -0.0, INF, -3.0]
    y, _ = run(runner, "larqdorefa", {"bits": bits}, x)
    y_w, dx_w = run(runner, "weightdorefa", {"bits": bits}, x)
    same(y, y_w, "the forward value of weightdorefa")
    same(dx_w, np.ones(64), "(weightdorefa's gradient is a plain STE)")


@pytest.mark.parametrize("runner", RUNNERS)
def test_larqdorefa_gradient_flows_through_tanh(runner: str) -> None:
    """dq/dx = (1 - tanh(x)**2) / m, m = max|tanh x| a constant (no extra term at the
    maximum); 1/m at 0, 0 at ±inf. Worked in float64 against math.tanh."""
    x = [-2.0, 0.0, 0.5, 1.25, -0.75]
    g = [1.0, 1.0, 2.0, -1.0, 0.5]
    m = math.tanh(2.0)
    want = [gi * (1 - math.tanh(xi) ** 2) / m for xi, gi in zip(x, g, strict=True)]
    _, dx = run(runner, "larqdorefa", {"bits": 2}, x, g, "float64")
    np.testing.assert_allclose(dx, want, rtol=1e-14, atol=0)
    _, dx = run(runner, "larqdorefa", {"bits": 2}, [INF, -INF, 0.0, 1.0], None, "float64")
    np.testing.assert_allclose(dx, [0, 0, 1, 1 - math.tanh(1.0) ** 2], rtol=1e-14, atol=0)


@pytest.mark.parametrize("runner", RUNNERS)
def test_larqdorefa_special_tensors(runner: str) -> None:
    y, dx = run(runner, "larqdorefa", {"bits": 2}, [0.0, -0.0, 0.0], [1.0, -2.0, 0.5])
    np.testing.assert_allclose(y, [1 / 3] * 3, rtol=1e-6)  # round(1.5) = 2: 2 * 2/3 - 1
    same(dx, [2.0, -4.0, 1.0], "all zero: t / 1, so dq/dx = 2 (1 - t**2) = 2")
    y, dx = run(runner, "larqdorefa", {"bits": 2}, [0.5, NAN, -2.0])
    same(y, [NAN] * 3, "a NaN anywhere: every output NaN")
    same(dx, [NAN] * 3, "and every gradient NaN (m is NaN)")


def test_larqdorefa_arguments() -> None:
    assert bt.LarqDoReFa(bits=3).bit_width == bj.LarqDoReFa(bits=3).bit_width == 3
    both_raise("larqdorefa", {"bits": 0}, ValueError)
    both_raise("larqdorefa", {"bits": 25}, ValueError)
    both_raise("larqdorefa", {"bits": 2.0}, TypeError)
    both_raise("larqdorefa", {"bits": True}, TypeError)


# --------------------------------------------------------------------------- all of them

NEW_KEYS = ["stesign", "magnitudeawaresign", "xnorscaled", "steternary", "larqdorefa"]


@pytest.mark.parametrize("key", NEW_KEYS)
def test_registered_in_both_frameworks_with_a_table_row(key: str) -> None:
    from bitorch_common.quantizers import row

    assert key in bt.quantization_names() and key in bj.quantization_names()
    spec = row(key)
    assert callable(getattr(bt, spec.function)) and callable(getattr(bj, spec.function))
    assert bt.quantization_from_name(key).name == bj.quantization_from_name(key).name == key


@pytest.mark.parametrize("key", NEW_KEYS)
@pytest.mark.parametrize("dtype", ["int32", "bool", "complex64"])
def test_non_float_input_is_a_type_error_naming_the_quantizer(key: str, dtype: str) -> None:
    x = np.zeros(3, dtype)
    with pytest.raises(TypeError, match=key):
        bt.quantization_from_name(key)()(torch.from_numpy(x))
    with pytest.raises(TypeError, match=key):
        bj.quantization_from_name(key)()(jnp.asarray(x))


@pytest.mark.parametrize("key", NEW_KEYS)
@pytest.mark.parametrize("shape", [(0,), (3, 0)], ids=["0", "3x0"])
def test_empty_inputs(key: str, shape: tuple[int, ...]) -> None:
    for runner in RUNNERS:
        y, dx = run(runner, key, {}, np.zeros(shape))
        assert y.shape == dx.shape == shape, (runner, key)
