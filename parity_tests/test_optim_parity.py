"""Bop and latent-weight clipping: ``bitorch.optim`` (torch) against ``bitorch_jax.optim``
(optax), bit for bit.

Bop: the same ±1 weights and the same gradients give the same weights AND momenta after
every step (``np.array_equal``), in float64 and float32, eager and under ``jax.jit``:

* random gradients of many scales, larq's defaults and a second setting;
* dyadic gradients with ``gamma=0.5``, where ``|m|`` equals the threshold exactly (the strict
  ``>`` matters);
* a tiny ``QLinear`` trained in both frameworks from converted weights (the gradients
  depend on the weights, so one wrong flip would change every later step), through
  ``binary_optimizer`` and ``nnx.Optimizer``.

The same harness rejects five wrong Bops (``test_the_harness_catches_wrong_bops``): ``>=``,
the old momentum deciding, flipping on disagreement, larq's algebraically equal momentum
form ``m + gamma * (g - m)`` (other roundings), and the plain ``(1 - gamma) * m + gamma * g``
under ``jax.jit``, which XLA:CPU contracts into a fused multiply-add.

Clipping: torch's Adam and optax's Adam round differently (different formulas:
``lerp`` and ``addcdiv`` against ``(1 - b) * g + b * m`` and a division), so the clip is
compared on identical inputs: the same Adam updates added in both frameworks, then
``clip_weights_`` against ``clip_latent_weights`` and ``clip_params``: bit-equal. The two
Adams end to end agree to a few ulps, as printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from bitorch.layers import QLinear as TorchQLinear
from bitorch.optim import Bop, clip_weights_
from bitorch_jax.convert import torch_to_nnx
from bitorch_jax.layers.nnx import QLinear as NNXQLinear
from bitorch_jax.optim import (
    BopState,
    binary_optimizer,
    bop,
    clip_latent_weights,
    clip_params,
)

LARQ_DEFAULTS = {"threshold": 1e-8, "gamma": 1e-4}
STEPS = 8

Arrays = dict[str, np.ndarray]
History = list[tuple[Arrays, Arrays]]  # per step: (weights, momenta)


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Iterator[np.dtype]:
    """float32, or float64 inside a scoped ``jax.enable_x64``."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield np.dtype(np.float64)
        assert not jax.config.jax_enable_x64, "x64 leaked out of the dtype fixture"
    else:
        yield np.dtype(np.float32)


# --------------------------------------------------------------------------- data


def random_case(dtype: np.dtype, seed: int = 0) -> tuple[Arrays, list[Arrays]]:
    """±1 weights of two shapes and gradients of scales 1e-5 to 1 (never subnormal:
    XLA:CPU flushes subnormals, torch does not)."""
    rng = np.random.default_rng(seed)
    shapes = {"dense": (6, 5), "conv": (3, 3, 2, 4)}
    w0 = {k: rng.choice([-1.0, 1.0], size=s).astype(dtype) for k, s in shapes.items()}
    grads = [
        {
            k: (rng.standard_normal(s) * 10.0 ** rng.uniform(-5, 0, s)).astype(dtype)
            for k, s in shapes.items()
        }
        for _ in range(STEPS)
    ]
    return w0, grads


def dyadic_case(dtype: np.dtype, seed: int = 1) -> tuple[Arrays, list[Arrays]]:
    """Dyadic gradients: with ``gamma=0.5`` every momentum is exact and ``|m| == 0.25``
    (the threshold) happens."""
    rng = np.random.default_rng(seed)
    w0 = {"w": rng.choice([-1.0, 1.0], size=(8, 8)).astype(dtype)}
    levels = np.array([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0])
    grads = [{"w": rng.choice(levels, size=(8, 8)).astype(dtype)} for _ in range(STEPS)]
    return w0, grads


DYADIC = {"threshold": 0.25, "gamma": 0.5}


# --------------------------------------------------------------------------- runs


def torch_bop_run(w0: Arrays, grads: list[Arrays], threshold: float, gamma: float) -> History:
    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in w0.items()}
    optimizer = Bop(list(params.values()), threshold=threshold, gamma=gamma)
    history: History = []
    for g in grads:
        for k, p in params.items():
            p.grad = torch.from_numpy(g[k].copy())
        optimizer.step()
        history.append(
            (
                {k: p.detach().numpy().copy() for k, p in params.items()},
                {k: optimizer.state[p]["momentum"].numpy().copy() for k, p in params.items()},
            )
        )
    return history


def jax_bop_run(
    tx: optax.GradientTransformation, w0: Arrays, grads: list[Arrays], jit: bool
) -> History:
    params = {k: jnp.asarray(v) for k, v in w0.items()}
    state = tx.init(params)

    def step(params: Any, state: Any, g: Any) -> tuple[Any, Any]:
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step)
    history: History = []
    for g in grads:
        params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
        history.append(
            (
                {k: np.asarray(v) for k, v in params.items()},
                {k: np.asarray(v) for k, v in state.momentum.items()},
            )
        )
    return history


def first_mismatch(reference: History, port: History) -> str | None:
    """Where the two histories first differ (dtype, shape or any bit), or None."""
    for step, ((w_ref, m_ref), (w, m)) in enumerate(zip(reference, port, strict=True), 1):
        for what, ref_arrays, arrays in (("weight", w_ref, w), ("momentum", m_ref, m)):
            for key in ref_arrays:
                a, b = ref_arrays[key], arrays[key]
                if a.dtype != b.dtype or a.shape != b.shape:
                    return f"step {step} {what} {key}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
                if not np.array_equal(a, b):
                    i = tuple(int(j) for j in np.argwhere(a != b)[0])
                    return (
                        f"step {step} {what} {key}{list(i)}: torch {a[i]!r}, jax {b[i]!r} "
                        f"({int(np.sum(a != b))} elements differ, max |diff| "
                        f"{float(np.max(np.abs(a.astype(np.float64) - b))):.3g})"
                    )
    return None


def max_diff(reference: History, port: History) -> float:
    return max(
        float(np.max(np.abs(a[k].astype(np.float64) - b[k])))
        for (wr, mr), (w, m) in zip(reference, port, strict=True)
        for a, b in ((wr, w), (mr, m))
        for k in a
    )


def flip_counts(w0: Arrays, history: History) -> list[int]:
    """Weights flipped at each step."""
    counts, previous = [], w0
    for weights, _ in history:
        counts.append(sum(int(np.sum(weights[k] != previous[k])) for k in weights))
        previous = weights
    return counts


# --------------------------------------------------------------------------- Bop


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("hyper", [LARQ_DEFAULTS, {"threshold": 1e-3, "gamma": 0.1}], ids=str)
def test_bop_bit_equal_on_random_gradients(dtype: np.dtype, jit: bool, hyper: dict) -> None:
    w0, grads = random_case(dtype)
    reference = torch_bop_run(w0, grads, **hyper)
    port = jax_bop_run(bop(**hyper), w0, grads, jit)
    assert first_mismatch(reference, port) is None, first_mismatch(reference, port)
    flips = flip_counts(w0, reference)
    total = sum(v.size for v in w0.values())
    assert sum(flips) > 0 and all(f < total for f in flips), f"flips per step {flips}"
    print(f"bop {dtype} {'jit' if jit else 'eager'} {hyper}: {STEPS} steps bit-equal, "
          f"max |diff| {max_diff(reference, port)}, flips per step {flips}")  # fmt: skip


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_bop_bit_equal_at_the_threshold(dtype: np.dtype, jit: bool) -> None:
    w0, grads = dyadic_case(dtype)
    reference = torch_bop_run(w0, grads, **DYADIC)
    hits = sum(int(np.sum(np.abs(m["w"]) == DYADIC["threshold"])) for _, m in reference)
    assert hits > 0, "the data must put |m| exactly on the threshold"
    port = jax_bop_run(bop(**DYADIC), w0, grads, jit)
    assert first_mismatch(reference, port) is None, first_mismatch(reference, port)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_bop_bit_equal_training_a_tiny_qlinear(dtype: np.dtype, jit: bool) -> None:
    """A QLinear(6, 4) trained by Bop in both frameworks from converted ±1 weights.

    Inputs are sign-quantized and the weights are ±1, so outputs are small integers and
    the gradients ``(y - t)^T sign(x) / 4`` are exact in both (checked too); they depend
    on the weights, so the runs stay equal only if every flip is."""
    rng = np.random.default_rng(3)
    hyper = {"threshold": 0.5, "gamma": 0.3}
    tmodel = TorchQLinear(6, 4, bias=False, dtype=getattr(torch, dtype.name))
    with torch.no_grad():
        tmodel.weight.copy_(torch.from_numpy(rng.choice([-1.0, 1.0], (4, 6)).astype(dtype)))
    jmodel = NNXQLinear(6, 4, use_bias=False, param_dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))
    torch_to_nnx(tmodel, jmodel)
    topt = Bop(tmodel.parameters(), **hyper)
    jopt = nnx.Optimizer(
        jmodel, binary_optimizer(jmodel, other=optax.adam(1e-3), bop=bop(**hyper)), wrt=nnx.Param
    )

    def loss(model: Any, x: Any, t: Any) -> Any:
        return 0.5 * ((model(x) - t) ** 2).sum() / 4

    def jax_step(model: Any, optimizer: Any, x: Any, t: Any) -> Any:
        grads = nnx.grad(loss)(model, x, t)
        optimizer.update(model, grads)
        return grads

    if jit:
        jax_step = nnx.jit(jax_step)
    flips = []
    for step in range(1, STEPS + 1):
        x = rng.uniform(-1, 1, (4, 6)).astype(dtype)
        t = rng.integers(-6, 7, (4, 4)).astype(dtype)
        before = tmodel.weight.detach().clone()
        topt.zero_grad()
        loss(tmodel, torch.from_numpy(x), torch.from_numpy(t)).backward()
        tgrad = tmodel.weight.grad.numpy().copy()
        topt.step()
        jgrads = jax_step(jmodel, jopt, jnp.asarray(x), jnp.asarray(t))
        np.testing.assert_array_equal(np.asarray(jgrads["kernel"][...]).T, tgrad)
        states = jax.tree.leaves(
            nnx.as_pure(jopt.opt_state), is_leaf=lambda s: isinstance(s, BopState)
        )
        (momentum,) = [s.momentum["kernel"] for s in states if isinstance(s, BopState)]
        tw = tmodel.weight.detach().numpy()
        for what, a, b in (
            ("weight", tw, np.asarray(jmodel.kernel[...]).T),
            ("momentum", topt.state[tmodel.weight]["momentum"].numpy(), np.asarray(momentum).T),
        ):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"step {step}: {what} differs"
        flips.append(int((tmodel.weight.detach() != before).sum()))
    assert sum(flips) > 0, "the run must flip some weights"
    print(f"tiny QLinear {dtype} {'jit' if jit else 'eager'}: flips per step {flips}")


# --------------------------------------------------------------------------- wrong Bops


def _variant(
    momentum: Callable[[Any, Any], Any],
    flip: Callable[[Any, Any], Any],
    *,
    old_momentum_decides: bool = False,
) -> optax.GradientTransformation:
    """A Bop written another way: ``momentum(m, g)``, ``flip(w, m) -> bool``."""

    def init(params: Any) -> BopState:
        return BopState(jax.tree.map(jnp.zeros_like, params))

    def update(g: Any, state: BopState, params: Any) -> tuple[Any, BopState]:
        m = jax.tree.map(momentum, state.momentum, g)
        decides = state.momentum if old_momentum_decides else m
        updates = jax.tree.map(lambda w, mm: jnp.where(flip(w, mm), -2 * w, 0 * w), params, decides)
        return updates, BopState(m)

    return optax.GradientTransformation(init, update)


def _wrong_bops(threshold: float, gamma: float) -> dict[str, optax.GradientTransformation]:
    def plain(m: Any, g: Any) -> Any:
        return (1 - gamma) * m + gamma * g

    def strict(w: Any, m: Any) -> Any:
        return (jnp.abs(m) > threshold) & (jnp.sign(m) == jnp.sign(w))

    return {
        ">= threshold": _variant(
            plain, lambda w, m: (jnp.abs(m) >= threshold) & (jnp.sign(m) == jnp.sign(w))
        ),
        "old momentum decides": _variant(plain, strict, old_momentum_decides=True),
        "flip on disagreement": _variant(
            plain, lambda w, m: (jnp.abs(m) > threshold) & (jnp.sign(m) != jnp.sign(w))
        ),
        "larq form m + gamma * (g - m)": _variant(lambda m, g: m + gamma * (g - m), strict),
        "fused multiply-add under jit": _variant(plain, strict),
    }


@pytest.mark.parametrize(
    "name, data, jit",
    [
        (">= threshold", "dyadic", False),
        ("old momentum decides", "dyadic", False),
        ("flip on disagreement", "dyadic", False),
        ("larq form m + gamma * (g - m)", "random", False),
        ("fused multiply-add under jit", "random", True),
    ],
)
def test_the_harness_catches_wrong_bops(dtype: np.dtype, name: str, data: str, jit: bool) -> None:
    hyper = DYADIC if data == "dyadic" else {"threshold": 1e-3, "gamma": 0.1}
    w0, grads = dyadic_case(dtype) if data == "dyadic" else random_case(dtype)
    reference = torch_bop_run(w0, grads, **hyper)
    mismatch = first_mismatch(reference, jax_bop_run(_wrong_bops(**hyper)[name], w0, grads, jit))
    assert mismatch is not None, f"the wrong Bop {name!r} passed the parity check"
    print(f"wrong Bop {name!r} ({dtype}): {mismatch}")


# --------------------------------------------------------------------------- clipping


def adam_case(
    dtype: np.dtype, lr: float, seed: int = 5
) -> tuple[Arrays, list[Arrays], list[Arrays]]:
    """Latent weights in [-0.3, 0.3], gradients, and optax Adam's updates for them (Adam's
    updates do not depend on the weights)."""
    rng = np.random.default_rng(seed)
    shapes = {"kernel": (8, 6), "bias": (6,)}
    p0 = {k: rng.uniform(-0.3, 0.3, s).astype(dtype) for k, s in shapes.items()}
    grads = [
        {k: (rng.standard_normal(s) - 0.8).astype(dtype) for k, s in shapes.items()}
        for _ in range(STEPS)
    ]
    adam = optax.adam(lr)
    state = adam.init({k: jnp.asarray(v) for k, v in p0.items()})
    updates = []
    for g in grads:
        u, state = adam.update({k: jnp.asarray(v) for k, v in g.items()}, state)
        updates.append({k: np.asarray(v) for k, v in u.items()})
    return p0, grads, updates


CLIP = 0.25
MASK = {"kernel": True, "bias": False}


def torch_clip_run(p0: Arrays, updates: list[Arrays]) -> list[Arrays]:
    params = {k: torch.from_numpy(v.copy()) for k, v in p0.items()}
    history = []
    for u in updates:
        for k, p in params.items():
            p.add_(torch.from_numpy(u[k].copy()))
        clip_weights_([params["kernel"]], CLIP)
        history.append({k: p.numpy().copy() for k, p in params.items()})
    return history


def jax_clip_run(p0: Arrays, updates: list[Arrays], jit: bool, exact: bool) -> list[Arrays]:
    tx = clip_latent_weights(clip_value=CLIP, mask=MASK)
    params = {k: jnp.asarray(v) for k, v in p0.items()}
    state = tx.init(params)

    def step(params: Any, state: Any, u: Any) -> tuple[Any, Any]:
        if exact:  # the projection after the update
            return clip_params(optax.apply_updates(params, u), clip_value=CLIP, mask=MASK), state
        u, state = tx.update(u, state, params)
        return optax.apply_updates(params, u), state

    if jit:
        step = jax.jit(step)
    history = []
    for u in updates:
        params, state = step(params, state, {k: jnp.asarray(v) for k, v in u.items()})
        history.append({k: np.asarray(v) for k, v in params.items()})
    return history


def _as_history(arrays: list[Arrays]) -> History:
    return [(a, {}) for a in arrays]


@pytest.mark.parametrize("exact", [False, True], ids=["clip_latent_weights", "clip_params"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_clip_bit_equal_over_adam_steps(dtype: np.dtype, jit: bool, exact: bool) -> None:
    """Steps of at most lr = clip / 8: a weight that crosses the bound was within a factor
    2 of it, so ``clip_latent_weights`` lands exactly on it (Sterbenz) and equals torch."""
    p0, _, updates = adam_case(dtype, lr=CLIP / 8)
    reference = torch_clip_run(p0, updates)
    port = jax_clip_run(p0, updates, jit, exact)
    assert first_mismatch(_as_history(reference), _as_history(port)) is None, first_mismatch(
        _as_history(reference), _as_history(port)
    )
    final = reference[-1]
    assert np.any(np.abs(final["kernel"]) == CLIP), "some latent weights must be clipped"
    assert np.any(np.abs(final["bias"]) > CLIP), "the unmasked bias must not be clipped"


def test_clip_far_jumps(dtype: np.dtype) -> None:
    """Steps of 2 * clip: ``clip_params`` still equals torch bit for bit; the update-only
    ``clip_latent_weights`` stays inside the bound and within an ulp of torch."""
    p0, _, updates = adam_case(dtype, lr=2 * CLIP)
    reference = torch_clip_run(p0, updates)
    exact = jax_clip_run(p0, updates, jit=True, exact=True)
    assert first_mismatch(_as_history(reference), _as_history(exact)) is None
    for ref, got in zip(reference, jax_clip_run(p0, updates, jit=True, exact=False), strict=True):
        assert np.all(np.abs(got["kernel"]) <= np.asarray(CLIP, dtype))
        ulp = np.spacing(np.asarray(CLIP, dtype))
        assert np.max(np.abs(got["kernel"] - ref["kernel"])) <= ulp
        assert np.array_equal(got["bias"], ref["bias"])


def test_adam_end_to_end_agrees_within_rounding(dtype: np.dtype) -> None:
    """torch.optim.Adam + clip_weights_ against optax.adam + clip_latent_weights: the two
    Adams round differently, so this is a tolerance, not bit equality (printed).

    float64: a few ulps. float32: optax computes the bias corrections ``1 - b**t`` in
    float32 (``1 - float32(0.999)`` is off by 1.3e-5 relatively), torch in Python floats,
    so an update may differ by ~1e-5 of the learning rate: tens of ulps of the weights."""
    lr = CLIP / 8
    p0, grads, _ = adam_case(dtype, lr=lr)
    tparams = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in p0.items()}
    topt = torch.optim.Adam(tparams.values(), lr=lr)
    tx = optax.chain(optax.adam(lr), clip_latent_weights(clip_value=CLIP, mask=MASK))
    params = {k: jnp.asarray(v) for k, v in p0.items()}
    state = tx.init(params)
    worst, worst_ulps = 0.0, 0.0  # ulps of the tensor's largest magnitude
    for g in grads:
        for k, p in tparams.items():
            p.grad = torch.from_numpy(g[k].copy())
        topt.step()
        clip_weights_([tparams["kernel"]], CLIP)
        u, state = tx.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = optax.apply_updates(params, u)
        for k, p in tparams.items():
            a, b = p.detach().numpy(), np.asarray(params[k])
            diff = float(np.max(np.abs(a.astype(np.float64) - b)))
            worst = max(worst, diff)
            worst_ulps = max(worst_ulps, diff / float(np.spacing(np.max(np.abs(a)))))
    bound = (
        8 * float(np.spacing(np.asarray(1, dtype))) if dtype == np.float64 else STEPS * lr * 3e-5
    )
    assert worst <= bound, f"Adam end to end differs by {worst} (bound {bound})"
    print(f"torch Adam vs optax adam + clip, {dtype}, {STEPS} steps: max |diff| {worst:.3g} "
          f"({worst_ulps:.1f} ulps)")  # fmt: skip
