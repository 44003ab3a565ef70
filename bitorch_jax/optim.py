"""Optimizers of binary networks for optax: Bop, latent-weight clipping, Bop with Adam.

* :func:`bop` -- the Binary Optimizer (Helwegen et al., 2019, "Latent Weights Do Not Exist:
  Rethinking Binarized Neural Network Optimization"), a ``GradientTransformation`` for
  binary (±1) weights. Per element, with gradient ``g``, weight ``w`` and momentum ``m``::

      m <- (1 - gamma) * m + gamma * g
      w <- -w   where |m| > threshold and sign(m) == sign(w), else w

  Defaults as larq's ``Bop``: ``threshold=1e-8``, ``gamma=1e-4``. Bop works on the sign:
  it negates whatever is stored, so store binary kernels as ±1 (:func:`binary_init`,
  :func:`binarize`); the quantizer's sign of a ±1 kernel is the kernel itself.
* :func:`binary_optimizer` -- Bop on the binary kernels, another transformation (Adam, say)
  on everything else (``optax.multi_transform`` with :func:`binary_labels`).
* :func:`clip_latent_weights` -- larq's ``weight_clip`` for latent weights trained by a
  gradient method: ``params + updates`` clipped to ``[-clip_value, clip_value]``;
  :func:`clip_params` is the exact projection to apply after the update instead.

The reference is :mod:`bitorch.optim` (PyTorch): the same steps give bit-equal weights and
momenta in float32 and float64 (``parity_tests/test_optim_parity.py``).

>>> import jax.numpy as jnp
>>> tx = bop(threshold=0.5, gamma=0.5)
>>> w = jnp.array([1.0, -1.0, 1.0])
>>> state = tx.init(w)
>>> updates, state = tx.update(jnp.array([2.0, 2.0, -2.0]), state, w)
>>> optax.apply_updates(w, updates), state.momentum  # m = [1, 1, -1]: only w[0] agrees
(Array([-1., -1.,  1.], dtype=float32), Array([ 1.,  1., -1.], dtype=float32))
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

try:
    import optax
except ImportError as _exc:  # optax is not a dependency of a plain install
    raise ImportError(
        "bitorch_jax.optim needs optax, which is not installed: pip install optax (it comes "
        'with the "test" and "examples" extras)',
        name="optax",
    ) from _exc

from bitorch_common.validation import (
    check_clip_value,
    check_non_negative_real,
    check_unit_fraction,
)
from bitorch_jax.layers.qactivation import resolve_quantization
from bitorch_jax.quantizations import Quantization

__all__ = [
    "BINARY",
    "OTHER",
    "BopState",
    "bop",
    "binarize",
    "binary_init",
    "binary_paths",
    "binary_labels",
    "binary_mask",
    "binary_optimizer",
    "clip_latent_weights",
    "clip_params",
]

#: The label of the binary kernels in :func:`binary_labels` (trained by Bop).
BINARY = "binary"
#: The label of every other parameter in :func:`binary_labels`.
OTHER = "other"

Path = tuple[str, ...]


# --------------------------------------------------------------------------- Bop


class BopState(NamedTuple):
    """Bop's state: the momentum (exponential moving average of the gradients)."""

    momentum: optax.Updates


def _rounded(x: jax.Array) -> jax.Array:
    """``x`` itself (NaN stays NaN), but XLA cannot fuse the product that made ``x`` into
    a following add: XLA:CPU would contract ``a * b + c`` into one fused multiply-add,
    rounding once where torch (and eager JAX) round twice."""
    return jnp.where(x == x, x, jnp.nan)


def _bop_momentum(m: jax.Array, g: jax.Array, gamma: float) -> jax.Array:
    """``(1 - gamma) * m + gamma * g``, each product rounded to ``m``'s dtype first."""
    g = jnp.asarray(g, m.dtype)
    return _rounded((1.0 - gamma) * m) + _rounded(gamma * g)


def _bop_update(w: jax.Array, m: jax.Array, threshold: float) -> jax.Array:
    """``-2 w`` where the weight flips, else ``0``: ``w + update`` is exactly ``-w``/``w``."""
    flip = (jnp.abs(m) > jnp.asarray(threshold, m.dtype)) & (jnp.sign(m) == jnp.sign(w))
    return jnp.where(flip, -2 * w, jnp.zeros_like(w))


def bop(*, threshold: float = 1e-8, gamma: float = 1e-4) -> optax.GradientTransformation:
    """Bop: flip a binary weight where the gradients' moving average agrees with it.

    ``m <- (1 - gamma) * m + gamma * g``; the update is ``-2 w`` where
    ``|m| > threshold`` (strict) and ``sign(m) == sign(w)``, else ``0``, so
    ``optax.apply_updates`` gives exactly ``-w`` there. ``threshold >= 0`` (finite),
    ``gamma`` in ``(0, 1]``; defaults as larq. Needs ``params`` in ``update``. The momentum
    has the parameters' dtype; the threshold is compared in that dtype. Apply it to the
    binary kernels only: :func:`binary_optimizer`.

    >>> tx = bop(threshold=0.0, gamma=1.0)
    >>> w = jnp.array([1.0, -1.0])
    >>> updates, _ = tx.update(jnp.array([0.5, 0.5]), tx.init(w), w)
    >>> optax.apply_updates(w, updates)
    Array([-1., -1.], dtype=float32)
    """
    threshold = check_non_negative_real(threshold, "threshold", "bop")
    gamma = check_unit_fraction(gamma, "gamma", "bop")

    def init_fn(params: optax.Params) -> BopState:
        return BopState(momentum=jax.tree.map(jnp.zeros_like, params))

    def update_fn(
        updates: optax.Updates, state: BopState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, BopState]:
        if params is None:
            raise ValueError("bop: update needs params (Bop flips the weights it is given)")
        momentum = jax.tree.map(lambda m, g: _bop_momentum(m, g, gamma), state.momentum, updates)
        flips = jax.tree.map(lambda w, m: _bop_update(w, m, threshold), params, momentum)
        return flips, BopState(momentum=momentum)

    return optax.GradientTransformation(init_fn, update_fn)


_bop = bop


def binarize(params: Any) -> Any:
    """Every leaf of ``params`` to ±1 in its dtype: ``-1`` where ``< 0``, else ``+1`` (the
    sign quantizer's rule: ``0`` and ``-0.0`` give ``+1``).

    >>> binarize(jnp.array([-0.3, 0.0, 2.0]))
    Array([-1.,  1.,  1.], dtype=float32)
    """

    def one(x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return jnp.where(x < 0, -jnp.ones_like(x), jnp.ones_like(x))

    return jax.tree.map(one, params)


def binary_init(base: Callable[..., jax.Array] | None = None) -> Callable[..., jax.Array]:
    """An initializer of ±1 kernels: the sign (:func:`binarize`) of ``base``'s values
    (default ``lecun_normal()``: random signs).

    Use it as ``kernel_init`` of the binary layers trained by Bop.

    >>> from bitorch_jax.layers.nnx import QLinear
    >>> layer = QLinear(3, 2, kernel_init=binary_init(), rngs=nnx.Rngs(0))
    >>> bool(jnp.all(jnp.abs(layer.kernel[...]) == 1))
    True
    """

    initializer = nnx.initializers.lecun_normal() if base is None else base

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        return binarize(initializer(key, shape, dtype))

    return init


# --------------------------------------------------------------------------- labels


def _is_binary_layer(module: Any) -> bool:
    """A quantized layer (``weight_quantization`` attribute) whose weights are 1-bit."""
    quantizer = getattr(module, "weight_quantization", None)
    if isinstance(quantizer, str):
        quantizer = resolve_quantization(quantizer, type(module).__name__)
    return isinstance(quantizer, Quantization) and quantizer.bit_width == 1


def binary_paths(model: nnx.Module | nn.Module, *example_inputs: Any) -> frozenset[Path]:
    """Paths (tuples of str) of the ``kernel`` of every layer with a 1-bit weight quantizer.

    NNX: from the module graph (no inputs needed). linen: the model is initialised on
    ``example_inputs`` under :func:`jax.eval_shape` and the layers are found as they run;
    the paths are those of ``variables["params"]``.

    >>> from bitorch_jax.layers.linen import QDense
    >>> sorted(binary_paths(nn.Sequential([QDense(4), nn.Dense(2)]), jnp.ones((1, 3))))
    [('layers_0', 'kernel')]
    """
    if isinstance(model, nnx.Module):
        if example_inputs:
            raise TypeError("binary_paths: an NNX model needs no example inputs")
        return frozenset(
            (*(str(p) for p in path), "kernel")
            for path, node in nnx.iter_graph(model)
            if isinstance(node, nnx.Module)
            and _is_binary_layer(node)
            and isinstance(getattr(node, "kernel", None), nnx.Variable)
        )
    if isinstance(model, nn.Module):
        if not example_inputs:
            raise TypeError(
                "binary_paths: a linen module needs example inputs (its layers are found by "
                "running it)"
            )
        found: set[Path] = set()

        def interceptor(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
            if context.method_name == "__call__" and _is_binary_layer(context.module):
                found.add((*(str(p) for p in context.module.path), "kernel"))
            return next_fun(*args, **kwargs)

        rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        with nn.intercept_methods(interceptor):
            variables = jax.eval_shape(lambda *x: model.init(rngs, *x), *example_inputs)
        present = {_names(path) for path, _ in _leaves_with_path(variables.get("params", {}))}
        return frozenset(found & present)
    raise TypeError(
        f"binary_paths: model must be a flax.nnx.Module or a flax.linen.Module, got "
        f"{type(model).__name__}"
    )


def _names(path: Any) -> Path:
    """A pytree path as strings; an NNX ``Variable``'s own ``.value`` key is dropped."""
    out = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            out.append(str(key.key))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            out.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            out.append(str(key.idx))
        else:
            out.append(str(key))
    if out and out[-1] == "value":
        out.pop()
    return tuple(out)


def _leaves_with_path(tree: Any) -> list[tuple[Any, Any]]:
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _path_function(
    paths: frozenset[Path], inside: Hashable, outside: Hashable, where: str
) -> Callable[[Any], Any]:
    def labels(params: Any) -> Any:
        seen = {_names(path) for path, _ in _leaves_with_path(params)}
        missing = sorted(paths - seen)
        if missing:
            raise ValueError(
                f"{where}: the binary kernels {['.'.join(p) for p in missing]} are not in "
                f"the parameters given (linen: pass variables['params']; NNX: "
                f"nnx.state(model, nnx.Param) of the same model)"
            )
        return jax.tree_util.tree_map_with_path(
            lambda path, _: inside if _names(path) in paths else outside, params
        )

    return labels


def binary_labels(model: nnx.Module | nn.Module, *example_inputs: Any) -> Callable[[Any], Any]:
    """A labels function for ``optax.multi_transform``: :data:`BINARY` for the binary
    kernels (:func:`binary_paths`), :data:`OTHER` for every other parameter.

    It takes the parameters (``nnx.state(model, nnx.Param)``, or linen's
    ``variables["params"]``) and refuses ones that lack a binary kernel of the model.

    >>> from bitorch_jax.layers.nnx import QLinear
    >>> model = QLinear(2, 2, rngs=nnx.Rngs(0))
    >>> dict(binary_labels(model)(nnx.as_pure(nnx.state(model, nnx.Param))))
    {'bias': 'other', 'kernel': 'binary'}
    """
    return _path_function(binary_paths(model, *example_inputs), BINARY, OTHER, "binary_labels")


def binary_mask(model: nnx.Module | nn.Module, *example_inputs: Any) -> Callable[[Any], Any]:
    """Like :func:`binary_labels`, with ``True`` for the binary kernels and ``False``
    elsewhere: a ``mask`` for ``optax.masked`` or :func:`clip_latent_weights`."""
    return _path_function(binary_paths(model, *example_inputs), True, False, "binary_mask")


def binary_optimizer(
    labels: nnx.Module | Callable[[Any], Any] | Any,
    *,
    other: optax.GradientTransformation,
    bop: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
    """Bop (default :func:`bop` ``()``) on the binary kernels, ``other`` on the rest.

    ``labels``: an NNX model (its :func:`binary_labels`), or what
    ``optax.multi_transform`` takes (a function of the parameters or a pytree of
    :data:`BINARY`/:data:`OTHER`); for linen pass ``binary_labels(module, *inputs)``.
    This is larq's ``CaseOptimizer((Bop.is_binary_variable, Bop()), default_optimizer=...)``.

    >>> from bitorch_jax.layers.nnx import QLinear
    >>> model = QLinear(2, 2, kernel_init=binary_init(), rngs=nnx.Rngs(0))
    >>> tx = binary_optimizer(model, other=optax.adam(1e-3))
    >>> optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    >>> grads = nnx.grad(lambda m: m(jnp.ones((1, 2))).sum())(model)
    >>> _ = optimizer.update(model, grads)
    >>> sorted(set(jnp.abs(model.kernel[...]).ravel().tolist()))
    [1.0]
    """
    for name, tx in (("other", other), ("bop", bop)):
        if tx is not None and not isinstance(tx, optax.GradientTransformation):
            raise TypeError(
                f"binary_optimizer: {name} must be an optax.GradientTransformation, got "
                f"{type(tx).__name__}"
            )
    if isinstance(labels, nnx.Module):
        labels = binary_labels(labels)
    if isinstance(labels, nn.Module):
        raise TypeError(
            "binary_optimizer: for a linen module pass binary_labels(module, *example_inputs)"
        )
    transforms = {BINARY: _bop() if bop is None else bop, OTHER: other}
    return optax.multi_transform(transforms, labels)


# --------------------------------------------------------------------------- clipping


def _clip_update(u: jax.Array, p: jax.Array, clip_value: float) -> jax.Array:
    """An update ``d`` with ``p + d`` in ``[-c, c]``: ``u`` itself where ``p + u`` is in
    range (bit for bit), else ``clip(p + u) - p``, nudged one ulp towards 0 where ``p + d``
    would round past the bound."""
    c = jnp.asarray(clip_value, p.dtype)
    new = p + u
    target = jnp.clip(new, -c, c)
    d = target - p
    reached = p + d
    d = jnp.where(reached > c, jnp.nextafter(d, -jnp.inf), d)
    d = jnp.where(reached < -c, jnp.nextafter(d, jnp.inf), d)
    return jnp.where((new > c) | (new < -c), d, u).astype(u.dtype)


def clip_latent_weights(
    *, clip_value: float = 1.0, mask: Any = None
) -> optax.GradientTransformation:
    """larq's ``weight_clip``: change the updates so that ``params + updates`` lies in
    ``[-clip_value, clip_value]``. Chain it after the optimizer:
    ``optax.chain(optax.adam(1e-3), clip_latent_weights(mask=binary_mask(model)))``.

    ``mask`` (``optax.masked``: a pytree of bools or a function of the parameters, default
    all) selects the latent weights. Where ``params + updates`` is in range the update is
    untouched (bit for bit); elsewhere it is ``clip(params + updates) - params``. Then
    ``params + updates`` is exactly ``±clip_value`` when that difference is exact in
    floating point: always when ``params`` has the bound's sign and ``|params|`` is in
    ``[clip_value / 2, 2 * clip_value]`` (Sterbenz's lemma), the usual case of a weight
    near the bound pushed past it. Otherwise (a jump from far away) it may land an ulp or
    so inside the bound, never outside: an update only adds to ``params`` in optax, and
    no float may reach ``±clip_value`` exactly. :func:`clip_params`, applied after
    ``optax.apply_updates``, is exact always.

    >>> tx = optax.chain(optax.sgd(1.0), clip_latent_weights(clip_value=1.0))
    >>> p = jnp.array([0.75, -0.5, 0.0])
    >>> updates, _ = tx.update(jnp.array([-1.0, 1.0, 0.25]), tx.init(p), p)
    >>> optax.apply_updates(p, updates)  # p + u = [1.75, -1.5, -0.25]
    Array([ 1.  , -1.  , -0.25], dtype=float32)
    """
    clip_value = check_clip_value(clip_value, "clip_latent_weights")

    def init_fn(params: optax.Params) -> optax.EmptyState:
        return optax.EmptyState()

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        if params is None:
            raise ValueError("clip_latent_weights: update needs params (it clips params + updates)")
        return jax.tree.map(lambda u, p: _clip_update(u, p, clip_value), updates, params), state

    tx = optax.GradientTransformation(init_fn, update_fn)
    return tx if mask is None else optax.masked(tx, mask)


def clip_params(params: Any, *, clip_value: float = 1.0, mask: Any = None) -> Any:
    """``params`` clipped to ``[-clip_value, clip_value]`` (exactly ``jnp.clip``) where
    ``mask`` (a pytree of bools or a function of ``params``, default all) is true.

    The exact alternative to :func:`clip_latent_weights`, applied after the update (the
    counterpart of ``bitorch.optim.clip_weights_``); NNX:
    ``nnx.update(model, clip_params(nnx.state(model, nnx.Param), mask=binary_mask(model)))``.

    >>> clip_params({"kernel": jnp.array([-3.0, 0.5]), "bias": jnp.array([4.0])},
    ...             mask={"kernel": True, "bias": False})
    {'bias': Array([4.], dtype=float32), 'kernel': Array([-1. ,  0.5], dtype=float32)}
    """
    clip_value = check_clip_value(clip_value, "clip_params")

    def one(p: jax.Array, selected: Any = True) -> jax.Array:
        p = jnp.asarray(p)
        c = jnp.asarray(clip_value, p.dtype)
        return jnp.where(selected, jnp.clip(p, -c, c), p)

    if mask is None:
        return jax.tree.map(one, params)
    selection = mask(params) if callable(mask) else mask
    return jax.tree.map(one, params, selection)
