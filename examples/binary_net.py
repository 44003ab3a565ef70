"""One small binary network, twice: PyTorch with bitorch and Flax NNX with bitorch_jax.

The network classifies the 8x8 scikit-learn digits (they ship with scikit-learn, nothing
is downloaded)::

    conv1  Conv2d(1 -> 16, 3x3, padding 1, no bias) full precision first layer
    bn1    BatchNorm
    qconv  QConv2d(16 -> 32, 3x3, padding 1)        sign input (padded with -1), sign weight
           AvgPool 2x2                              8x8 -> 4x4
    bn2    BatchNorm
    qfc    QLinear(512 -> 64, no bias)              sign input, sign weight
    bn3    BatchNorm
    fc     Linear(64 -> 10)                         full precision classifier

Design choices that keep the two runs comparable:

- Pooling sits right after the binary convolution, before BatchNorm: the convolution's
  outputs are small integers, so their 2x2 average is exact in both frameworks. After
  BatchNorm, four values that cancel would average to a rounding-dependent ``+-1e-7``
  instead of ``0``, and ``sign`` would send it either way.
- Average, not max, pooling: integer outputs often tie in a max window, and torch and
  XLA route a tie's gradient to different elements.
- No bias before a BatchNorm: that bias's gradient is zero up to rounding noise, and
  Adam's normalised step turns the sign of the noise into an ``lr``-sized update that
  differs between the frameworks.
- Flax NNX rather than linen: NNX is stateful like torch (BatchNorm statistics live in
  the module, ``train()``/``eval()`` switch modes), so the two training loops read
  alike. The layer math is the same pure function under linen.

Names for other modules (the benchmarks import these):

- ``load_digits_data(*, seed=0, test_size=360) -> DigitsData``: NCHW float32 arrays and
  int labels, a fixed train/test split; ``DigitsData.nhwc(x)`` gives the Flax layout.
- ``build_torch_net(seed: int, *, dtype=torch.float32) -> TorchBinaryNet``.
- ``build_flax_net_from_torch(torch_net) -> FlaxBinaryNet``: identical initial weights.
- ``torch_to_flax(torch_net, flax_net) -> FlaxBinaryNet``: copy weights into an existing net.
- ``make_torch_optimizer(net)`` / ``make_jax_optimizer(net)``: Adam with the same settings.
- ``torch_train_step(net, optimizer, xb, yb) -> float``: one step, returns the loss.
- ``make_jax_train_step(net, optimizer) -> step``: ``step(xb, yb) -> loss`` (jitted, updates
  ``net`` and ``optimizer`` in place, like the torch step).
- ``torch_logits(net, x)`` / ``jax_logits(net, x)``: evaluation-mode logits (jitted in JAX).
- ``torch_accuracy(net, x, y)`` / ``jax_accuracy(net, x, y)``: evaluation-mode accuracy.
- ``batch_indices(n, batch_size, steps, seed)``: the shared batch order.
- ``HYPERPARAMETERS``: learning rate, Adam and BatchNorm settings, in both spellings.

Matching hyperparameters: torch ``BatchNorm(momentum=m, eps=e)`` is Flax
``BatchNorm(momentum=1 - m, epsilon=e)``; Flax's ``use_fast_variance`` is off so the batch
variance is computed as ``mean((x - mean)**2)`` like torch. One difference stays: torch
updates ``running_var`` with the unbiased batch variance, Flax with the biased one
(factor ``n / (n - 1)``; ``n`` is 64 for ``bn3``), which only touches evaluation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx
from torch import nn
from torch.nn import functional as F

from bitorch.layers import QConv2d, QLinear
from bitorch_jax.convert import torch_to_nnx
from bitorch_jax.layers import nnx as qnnx

__all__ = [
    "HYPERPARAMETERS",
    "DigitsData",
    "FlaxBinaryNet",
    "TorchBinaryNet",
    "batch_indices",
    "build_flax_net_from_torch",
    "build_torch_net",
    "jax_accuracy",
    "jax_logits",
    "load_digits_data",
    "make_jax_optimizer",
    "make_jax_train_step",
    "make_torch_optimizer",
    "torch_accuracy",
    "torch_logits",
    "torch_to_flax",
    "torch_train_step",
]

HYPERPARAMETERS = {
    "learning_rate": 1e-3,
    "adam_betas": (0.9, 0.999),
    "adam_eps": 1e-8,
    "batchnorm_momentum_torch": 0.1,  # Flax: 1 - 0.1 = 0.9
    "batchnorm_eps": 1e-5,
    "batch_size": 64,
    "gradient_cancellation_threshold": 1.0,
}
_BN_MOMENTUM = HYPERPARAMETERS["batchnorm_momentum_torch"]
_BN_EPS = HYPERPARAMETERS["batchnorm_eps"]
_THRESHOLD = HYPERPARAMETERS["gradient_cancellation_threshold"]
_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 on GPU: same arithmetic as torch's default
_LECUN_NORMAL = nnx.initializers.lecun_normal()


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DigitsData:
    """The digits split: ``x_*`` are ``(N, 1, 8, 8)`` float32 in ``[0, 1]``, ``y_*`` int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @staticmethod
    def nhwc(x: np.ndarray) -> np.ndarray:
        """NCHW (torch) to NHWC (Flax)."""
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def load_digits_data(*, seed: int = 0, test_size: int = 360) -> DigitsData:
    """The 1797 scikit-learn digits, scaled to ``[0, 1]``, split by a seeded permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # reshape, not x[:, None]: a size-1 axis with an odd stride makes torch pick its
    # channels-last kernels, which round differently (BatchNorm by up to ~1e-5)
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:test_size], order[test_size:]
    return DigitsData(x[train], y[train], x[test], y[test])


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """``steps`` batches of indices: seeded epoch permutations, incomplete batches dropped."""
    rng = np.random.default_rng(seed)
    produced = 0
    while produced < steps:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            if produced == steps:
                return
            yield order[start : start + batch_size]
            produced += 1


# ----------------------------------------------------------------------------- torch


class TorchBinaryNet(nn.Module):
    """The binary network in PyTorch (bitorch layers). Input ``(N, 1, 8, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        bn = {"momentum": _BN_MOMENTUM, "eps": _BN_EPS}
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, **bn)
        self.qconv = QConv2d(16, 32, 3, padding=1, gradient_cancellation_threshold=_THRESHOLD)
        self.bn2 = nn.BatchNorm2d(32, **bn)
        self.pool = nn.AvgPool2d(2)
        self.qfc = QLinear(32 * 4 * 4, 64, bias=False, gradient_cancellation_threshold=_THRESHOLD)
        self.bn3 = nn.BatchNorm1d(64, **bn)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        x = self.bn2(self.pool(self.qconv(x)))
        x = self.bn3(self.qfc(x.flatten(1)))
        return self.fc(x)


def build_torch_net(seed: int, *, dtype: torch.dtype = torch.float32) -> TorchBinaryNet:
    """The torch network with PyTorch's default initialisation under ``torch.manual_seed``."""
    torch.manual_seed(seed)
    return TorchBinaryNet().to(dtype)


def make_torch_optimizer(net: nn.Module) -> torch.optim.Optimizer:
    """Adam with :data:`HYPERPARAMETERS`."""
    return torch.optim.Adam(
        net.parameters(),
        lr=HYPERPARAMETERS["learning_rate"],
        betas=HYPERPARAMETERS["adam_betas"],
        eps=HYPERPARAMETERS["adam_eps"],
    )


def torch_train_step(
    net: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor
) -> float:
    """One training step (mean cross-entropy); returns the loss before the update."""
    net.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(xb), yb)
    loss.backward()
    optimizer.step()
    return loss.item()


def torch_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Evaluation-mode logits (BatchNorm running statistics); ``net`` keeps its mode."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return net(x)
    finally:
        net.train(was_training)


def torch_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Evaluation-mode accuracy; ``net`` keeps its mode."""
    return (torch_logits(net, x).argmax(-1) == y).double().mean().item()


# ----------------------------------------------------------------------------- Flax NNX


class FlaxBinaryNet(nnx.Module):
    """The same network in Flax NNX (bitorch_jax layers). Input ``(N, 8, 8, 1)`` (NHWC)."""

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        param_dtype: jnp.dtype = jnp.float32,
        kernel_init: Callable[..., jax.Array] = _LECUN_NORMAL,
    ) -> None:
        bn = {
            "momentum": 1.0 - _BN_MOMENTUM,
            "epsilon": _BN_EPS,
            "use_fast_variance": False,
            "param_dtype": param_dtype,
            "rngs": rngs,
        }
        same = {
            "param_dtype": param_dtype,
            "precision": _HIGHEST,
            "kernel_init": kernel_init,
            "rngs": rngs,
        }
        self.conv1 = nnx.Conv(1, 16, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, **same)
        self.bn1 = nnx.BatchNorm(16, **bn)
        self.qconv = qnnx.QConv(
            16, 32, (3, 3), padding=1, gradient_cancellation_threshold=_THRESHOLD, **same
        )
        self.bn2 = nnx.BatchNorm(32, **bn)
        self.qfc = qnnx.QLinear(
            32 * 4 * 4, 64, use_bias=False, gradient_cancellation_threshold=_THRESHOLD, **same
        )
        self.bn3 = nnx.BatchNorm(64, **bn)
        self.fc = nnx.Linear(64, 10, **same)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn1(self.conv1(x))
        x = self.bn2(nnx.avg_pool(self.qconv(x), (2, 2), strides=(2, 2)))
        # Flatten in torch's (C, H, W) order so qfc's kernel is torch's weight transposed;
        # the alternative is bitorch_jax.convert.nhwc_flatten_kernel on that kernel.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        x = self.bn3(self.qfc(x))
        return self.fc(x)


def torch_to_flax(torch_net: nn.Module, flax_net: FlaxBinaryNet) -> FlaxBinaryNet:
    """Copy every parameter and BatchNorm statistic of ``torch_net`` into ``flax_net``."""
    return torch_to_nnx(torch_net, flax_net)


def build_flax_net_from_torch(torch_net: nn.Module) -> FlaxBinaryNet:
    """A :class:`FlaxBinaryNet` holding exactly ``torch_net``'s weights (and dtype).

    For float64 call it with JAX's x64 mode on (``with jax.enable_x64(True):``).
    """
    dtype = next(torch_net.parameters()).dtype
    param_dtype = {torch.float32: jnp.float32, torch.float64: jnp.float64}[dtype]
    # zeros, not lecun_normal: the weights are overwritten, and compiling the truncated
    # normal sampler for every kernel shape costs seconds on a small CPU
    flax_net = FlaxBinaryNet(
        rngs=nnx.Rngs(0), param_dtype=param_dtype, kernel_init=nnx.initializers.zeros_init()
    )
    return torch_to_flax(torch_net, flax_net)


def make_jax_optimizer(net: FlaxBinaryNet) -> nnx.Optimizer:
    """Adam (optax) with :data:`HYPERPARAMETERS`, over the ``Param`` variables."""
    b1, b2 = HYPERPARAMETERS["adam_betas"]
    tx = optax.adam(HYPERPARAMETERS["learning_rate"], b1=b1, b2=b2, eps=HYPERPARAMETERS["adam_eps"])
    return nnx.Optimizer(net, tx, wrt=nnx.Param)


def _loss(net: FlaxBinaryNet, xb: jax.Array, yb: jax.Array) -> jax.Array:
    logits = net(xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()


@nnx.jit
def _jax_train_step(
    net: FlaxBinaryNet, optimizer: nnx.Optimizer, xb: jax.Array, yb: jax.Array
) -> jax.Array:
    loss, grads = nnx.value_and_grad(_loss)(net, xb, yb)
    optimizer.update(net, grads)
    return loss


def make_jax_train_step(
    net: FlaxBinaryNet, optimizer: nnx.Optimizer
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A jitted ``step(xb, yb) -> loss`` that updates ``net`` and ``optimizer`` in place.

    Puts ``net`` in training mode. The graph traversal is cached (``nnx.cached_partial``),
    so a call costs little more than the compiled computation.
    """
    net.train()
    if hasattr(nnx, "cached_partial"):  # flax >= 0.11
        return nnx.cached_partial(_jax_train_step, net, optimizer)
    return functools.partial(_jax_train_step, net, optimizer)


@nnx.jit
def _jax_logits(net: FlaxBinaryNet, x: jax.Array) -> jax.Array:
    return net(x)


def jax_logits(net: FlaxBinaryNet, x: jax.Array) -> jax.Array:
    """Evaluation-mode logits (BatchNorm running statistics), jitted.

    Evaluates a copy, so ``net`` (and a train step cached on it) stays in its mode.
    """
    eval_net = nnx.clone(net)
    eval_net.eval()
    return _jax_logits(eval_net, x)


def jax_accuracy(net: FlaxBinaryNet, x: jax.Array, y: jax.Array) -> float:
    """Evaluation-mode accuracy; ``net`` keeps its mode."""
    return float(jnp.mean(jnp.argmax(jax_logits(net, x), axis=-1) == y))
