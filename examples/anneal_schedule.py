"""Annealing SwishSign's ``beta`` and the cancellation threshold: compile once.

A small Flax NNX model (a QLinear with the gradient-cancellation threshold in an
``nnx.Variable``, its output quantized by SwishSign with ``beta`` in another variable) is
trained for a few steps while both hyperparameters follow a schedule. Two ways:

- **traced**: the hyperparameters are model state, read inside ``nnx.jit``
  (``self.q(h, beta=self.beta[...])``); the schedule writes ``model.beta[...] = b``
  between steps. The structure never changes: one compilation.
- **static**: the hyperparameters are Python floats in the layer configuration (a new
  ``SwishSign(beta=b)`` object, a float threshold); each new value is a new graph
  definition: one compilation per step.

Run ``python -m examples.anneal_schedule`` (``--steps N``); it prints the number of
compilations of each way (counted by a Python counter in the traced function, which runs
only while tracing) and checks that both ways computed the same gradients.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import bitorch_jax.quantizations as bq
from bitorch_jax.layers import nnx as qn

__all__ = ["Net", "schedule", "train", "main"]


class Net(nnx.Module):
    """``SwishSign(QLinear(x))``; ``traced=True`` keeps ``beta`` and the threshold in
    ``nnx.Variable``s, ``traced=False`` as Python floats (static configuration)."""

    def __init__(self, beta: float, threshold: float, *, traced: bool, rngs: nnx.Rngs) -> None:
        self.traced = traced
        if traced:
            self.beta = nnx.Variable(jnp.float32(beta))
            threshold = nnx.Variable(jnp.float32(threshold))
        self.q = bq.SwishSign(beta=beta)
        self.linear = qn.QLinear(
            8,
            4,
            input_quantization="identity",
            gradient_cancellation_threshold=threshold,
            rngs=rngs,
        )

    def set_hyperparameters(self, beta: float, threshold: float) -> None:
        """One step of the schedule: new variable values, or new static configuration."""
        if self.traced:
            self.beta[...] = jnp.float32(beta)
            self.linear.gradient_cancellation_threshold[...] = jnp.float32(threshold)
        else:
            self.q = bq.SwishSign(beta=beta)
            self.linear.gradient_cancellation_threshold = threshold

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.linear(x)
        return self.q(h, beta=self.beta[...]) if self.traced else self.q(h)


def schedule(steps: int) -> list[tuple[float, float]]:
    """``(beta, threshold)`` per step: beta 1 -> 10 (geometric), threshold 2 -> 0.5."""
    betas = np.geomspace(1.0, 10.0, steps)
    thresholds = np.linspace(2.0, 0.5, steps)
    return [(float(b), float(t)) for b, t in zip(betas, thresholds, strict=True)]


def train(*, traced: bool, steps: int, seed: int = 0) -> tuple[int, list[float]]:
    """Train ``steps`` SGD steps along :func:`schedule`; ``(compilations, gradient
    norms)`` (the kernel gradient's norm per step: it depends on beta and threshold)."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(16, 8)).astype(np.float32))
    target = jnp.asarray(np.sign(rng.normal(size=(16, 4))).astype(np.float32))
    plan = schedule(steps)
    model = Net(*plan[0], traced=traced, rngs=nnx.Rngs(seed))
    traces: list[int] = []

    @nnx.jit
    def train_step(model: Net, x: jax.Array, target: jax.Array) -> jax.Array:
        traces.append(1)  # runs only while tracing

        def loss_fn(model: Net) -> jax.Array:
            return jnp.mean((model(x) - target) ** 2 * jnp.abs(model.linear(x)))

        grads = nnx.grad(loss_fn)(model)
        model.linear.kernel[...] = model.linear.kernel[...] - 0.1 * grads.linear.kernel[...]
        return jnp.linalg.norm(grads.linear.kernel[...])

    norms = []
    for beta, threshold in plan:
        model.set_hyperparameters(beta, threshold)
        norms.append(float(train_step(model, x, target)))
    return len(traces), norms


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    traced_count, traced_norms = train(traced=True, steps=args.steps)
    static_count, static_norms = train(traced=False, steps=args.steps)
    print(f"{args.steps} annealing steps (beta and gradient_cancellation_threshold):")
    print(f"  traced (nnx.Variable):  {traced_count} compilation(s)")
    print(f"  static (Python floats): {static_count} compilation(s)")
    print("  kernel gradient norms:", " ".join(f"{v:.6f}" for v in traced_norms))
    if traced_norms != static_norms:
        raise SystemExit(f"the two ways disagree: {traced_norms} vs {static_norms}")
    return {"traced": traced_count, "static": static_count}


if __name__ == "__main__":
    main()
