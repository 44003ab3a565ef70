"""Flax linen layers of bitorch_jax. The math lives in the pure functions of
:mod:`bitorch_jax.layers`; these modules only hold hyperparameters and parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bitorch_common.validation import (
    check_bits,
    check_bool,
    check_embedding_mode,
    check_int,
    check_kernel_size,
    check_pad_value,
    check_padding_idx,
    check_positive_int,
    check_real,
    check_threshold,
    explicit_padding,
    spatial_tuple,
)
from bitorch_jax.layers.bembedding import (
    b_embedding,
    b_embedding_bag,
    binary_weight_update,
    decode_binary_weight,
)
from bitorch_jax.layers.pact import q_pact
from bitorch_jax.layers.pad import pad_2d
from bitorch_jax.layers.qactivation import q_activation, resolve_quantization
from bitorch_jax.layers.qconv import PaddingLike, q_conv
from bitorch_jax.layers.qembedding import q_embedding, q_embedding_bag
from bitorch_jax.layers.qlinear import check_compute_dtype, q_linear
from bitorch_jax.layers.react import rprelu, rsign
from bitorch_jax.quantizations import Quantization

__all__ = [
    "QActivation",
    "QConv",
    "QDense",
    "PadModule",
    "Pact",
    "QEmbed",
    "QEmbedBag",
    "BEmbed",
    "BEmbedBag",
    "BINARY_WEIGHTS",
    "embedding_init",
    "random_bits_init",
    "RSign",
    "RPReLU",
]


class QActivation(nn.Module):
    """Quantize the input after gradient cancellation (linen).

    ``activation`` is a registry name or a quantizer object; the gradient is zeroed where
    ``|x| > gradient_cancellation_threshold`` (default 1.0, bitorch's layer-config
    default; ``0`` turns cancellation off).

    >>> import jax.numpy as jnp
    >>> act = QActivation("sign")
    >>> act.apply({}, jnp.array([-2.0, 0.5]))
    Array([-1.,  1.], dtype=float32)
    """

    activation: str | Quantization = "sign"
    gradient_cancellation_threshold: float = 1.0

    def __post_init__(self) -> None:
        check_threshold(self.gradient_cancellation_threshold, "QActivation")
        resolve_quantization(self.activation, "QActivation")
        super().__post_init__()

    def __call__(self, x: jax.Array) -> jax.Array:
        quantization = resolve_quantization(self.activation, "QActivation")
        return q_activation(x, quantization, self.gradient_cancellation_threshold)


def _kw(default: Any) -> Any:
    """A keyword-only dataclass field (hyperparameters after the Flax-positional ones)."""
    return dataclasses.field(default=default, kw_only=True)


class QDense(nn.Module):
    """bitorch's ``QLinear`` for linen: ``q_in(gc(x)) @ q_w(kernel) + bias``.

    The math is :func:`bitorch_jax.layers.q_linear`. Parameters: ``kernel``
    ``(in_features, features)``, with ``use_bias`` ``bias`` ``(features,)``, and with
    ``output_scale`` XNOR-Net's learnable per-output ``scale`` ``(features,)`` (ones),
    multiplied onto the output before the bias. Everything after ``features`` is
    keyword-only. ``gradient_cancellation_threshold=0`` turns gradient cancellation off.
    ``dtype`` (``None``: promote input and parameters), ``param_dtype``, ``precision``
    and ``preferred_element_type`` (e.g. ``jnp.float32``: exact sums of bfloat16 +-1
    products) mean what they mean in ``nn.Dense``.

    >>> layer = QDense(2, use_bias=False)
    >>> variables = {"params": {"kernel": jnp.array([[0.2, -0.3], [-0.4, 0.5], [0.1, -0.6]])}}
    >>> layer.apply(variables, jnp.array([[0.7, -1.5, 0.0]]))
    Array([[ 3., -3.]], dtype=float32)
    """

    features: int
    use_bias: bool = _kw(True)
    input_quantization: str | Quantization = _kw("sign")
    weight_quantization: str | Quantization = _kw("sign")
    gradient_cancellation_threshold: float = _kw(1.0)
    output_scale: bool = _kw(False)
    dtype: Any = _kw(None)
    param_dtype: Any = _kw(jnp.float32)
    precision: Any = _kw(None)
    preferred_element_type: Any = _kw(None)
    kernel_init: Callable[..., jax.Array] = _kw(nn.initializers.lecun_normal())
    bias_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())
    scale_init: Callable[..., jax.Array] = _kw(nn.initializers.ones_init())

    def __post_init__(self) -> None:
        check_threshold(self.gradient_cancellation_threshold, "QDense")
        resolve_quantization(self.input_quantization, "QDense")
        resolve_quantization(self.weight_quantization, "QDense")
        _check_dtypes(self, "QDense")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel", self.kernel_init, (jnp.shape(x)[-1], self.features), self.param_dtype
        )
        bias, scale = _bias_and_scale(self)
        return q_linear(
            x,
            kernel,
            bias,
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
            dtype=self.dtype,
            preferred_element_type=self.preferred_element_type,
            scale=scale,
        )


def _check_dtypes(module: Any, where: str) -> None:
    """The dtype hyperparameters and ``output_scale`` of a quantized linen layer."""
    check_bool(module.output_scale, "output_scale", where)
    check_compute_dtype(module.dtype, "dtype", where)
    check_compute_dtype(module.param_dtype, "param_dtype", where)
    check_compute_dtype(module.preferred_element_type, "preferred_element_type", where)


def _bias_and_scale(module: Any) -> tuple[jax.Array | None, jax.Array | None]:
    """The ``bias`` and ``scale`` parameters of a quantized linen layer (``None`` when off);
    call inside its compact ``__call__``."""
    shape = (module.features,)
    bias = scale = None
    if module.use_bias:
        bias = module.param("bias", module.bias_init, shape, module.param_dtype)
    if module.output_scale:
        scale = module.param("scale", module.scale_init, shape, module.param_dtype)
    return bias, scale


class QConv(nn.Module):
    """bitorch's quantized convolution for linen, N-d by ``len(kernel_size)``.

    The math is :func:`bitorch_jax.layers.q_conv`: the input (``N, *spatial, C`` or
    unbatched) is quantized after gradient cancellation, padded with ``pad_value``, and
    convolved (VALID) with the quantized kernel ``(*kernel_size, C_in / groups, features)``.
    ``padding`` is an int, ints, ``(before, after)`` pairs, ``"same"`` or ``"valid"``, and
    defaults to ``0`` as in bitorch (not Flax's ``"SAME"``; ``"same"`` is ``lax``'s
    ``"SAME"`` for any stride, padded with ``pad_value``); ``use_bias`` defaults to
    ``False`` (see :mod:`bitorch.layers.qconv`). ``output_scale`` adds XNOR-Net's learnable
    per-output-channel ``scale`` ``(features,)`` (ones), applied before the bias; ``dtype``,
    ``param_dtype``, ``precision`` and ``preferred_element_type`` as in ``nn.Conv``.
    Everything after ``kernel_size`` is keyword-only.

    >>> layer = QConv(1, (2,), padding=1)
    >>> variables = {"params": {"kernel": jnp.array([[[0.5]], [[-0.5]]])}}
    >>> layer.apply(variables, jnp.array([[[0.3], [-0.2]]]))[0, :, 0]
    Array([-2.,  2.,  0.], dtype=float32)
    """

    features: int
    kernel_size: Sequence[int]
    strides: int | Sequence[int] = _kw(1)
    padding: PaddingLike = _kw(0)
    kernel_dilation: int | Sequence[int] = _kw(1)
    feature_group_count: int = _kw(1)
    use_bias: bool = _kw(False)
    pad_value: float = _kw(-1.0)
    input_quantization: str | Quantization = _kw("sign")
    weight_quantization: str | Quantization = _kw("sign")
    gradient_cancellation_threshold: float = _kw(1.0)
    output_scale: bool = _kw(False)
    dtype: Any = _kw(None)
    param_dtype: Any = _kw(jnp.float32)
    precision: Any = _kw(None)
    preferred_element_type: Any = _kw(None)
    kernel_init: Callable[..., jax.Array] = _kw(nn.initializers.lecun_normal())
    bias_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())
    scale_init: Callable[..., jax.Array] = _kw(nn.initializers.ones_init())

    def __post_init__(self) -> None:
        kernel_size = check_kernel_size(self.kernel_size, "QConv")
        n = len(kernel_size)
        strides = spatial_tuple(self.strides, n, "strides", "QConv", minimum=1)
        dilation = spatial_tuple(self.kernel_dilation, n, "kernel_dilation", "QConv", minimum=1)
        explicit_padding(self.padding, kernel_size, dilation, strides, "QConv")
        check_pad_value(self.pad_value, "QConv")
        check_threshold(self.gradient_cancellation_threshold, "QConv")
        resolve_quantization(self.input_quantization, "QConv")
        resolve_quantization(self.weight_quantization, "QConv")
        _check_dtypes(self, "QConv")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = self.feature_group_count
        in_features = jnp.shape(x)[-1]
        if not isinstance(groups, int) or groups < 1 or in_features % groups:
            raise ValueError(
                f"QConv: input channels {in_features} must be divisible by "
                f"feature_group_count {groups!r}"
            )
        shape = (*self.kernel_size, in_features // groups, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias, scale = _bias_and_scale(self)
        return q_conv(
            x,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            kernel_dilation=self.kernel_dilation,
            feature_group_count=groups,
            pad_value=self.pad_value,
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
            dtype=self.dtype,
            preferred_element_type=self.preferred_element_type,
            scale=scale,
        )


# ----------------------------------------------------------------------------- 0.4.1 layers

#: The linen collection (and NNX variable type) of a binary embedding's ``bool`` table:
#: not ``params`` (it has no gradient; it is written by ``step``).
BINARY_WEIGHTS = "binary_weights"


def embedding_init(padding_idx: int | None = None) -> Callable[..., jax.Array]:
    """torch's ``nn.Embedding`` initialisation: ``N(0, 1)``, the ``padding_idx`` row zeros."""
    normal = nn.initializers.normal(stddev=1.0)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        table = normal(key, shape, dtype)
        return table if padding_idx is None else table.at[padding_idx].set(0)

    return init


def random_bits_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.bool_) -> jax.Array:
    """A random ``bool`` table, each bit ``True`` with probability 1/2 (torch's
    ``torch.rand(shape) > 0.5``)."""
    return jax.random.bernoulli(key, 0.5, tuple(shape))


class PadModule(nn.Module):
    """bitorch's ``PadModule`` for linen: pads ``W`` by ``padding_left``/``padding_right``
    and ``H`` by ``padding_top``/``padding_bottom`` of a channels-last ``(..., H, W, C)``
    input with ``padding_value`` (:func:`bitorch_jax.layers.pad_2d`). No parameters.

    >>> PadModule(padding_left=1).apply({}, jnp.ones((1, 1, 1)))[..., 0]
    Array([[0., 1.]], dtype=float32)
    """

    padding_left: int = _kw(0)
    padding_right: int = _kw(0)
    padding_top: int = _kw(0)
    padding_bottom: int = _kw(0)
    padding_value: float = _kw(0.0)

    def __post_init__(self) -> None:
        names = ("padding_left", "padding_right", "padding_top", "padding_bottom")
        for name in names:
            check_int(getattr(self, name), name, "PadModule")
        check_real(self.padding_value, "padding_value", "PadModule")
        super().__post_init__()

    def __call__(self, x: jax.Array) -> jax.Array:
        padding = (self.padding_left, self.padding_right, self.padding_top, self.padding_bottom)
        return pad_2d(x, padding, self.padding_value)


class Pact(nn.Module):
    """bitorch's ``Pact`` for linen: ``x`` clipped to ``[0, alpha]`` and quantized to
    ``bits`` bits (:func:`bitorch_jax.layers.q_pact`). Parameter ``alpha`` (0-d, initialised
    to 10.0, as in torch). ``dtype`` casts the input (``None``: as it comes).

    >>> Pact(bits=2).init_with_output(jax.random.key(0), jnp.array([-1.0, 4.0, 12.0]))[0]
    Array([ 0.       ,  3.3333333, 10.       ], dtype=float32)
    """

    bits: int = _kw(4)
    dtype: Any = _kw(None)
    param_dtype: Any = _kw(jnp.float32)
    alpha_init: Callable[..., jax.Array] = _kw(nn.initializers.constant(10.0))

    def __post_init__(self) -> None:
        check_bits(self.bits, "Pact")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        alpha = self.param("alpha", self.alpha_init, (), self.param_dtype)
        x = jnp.asarray(x, self.dtype) if self.dtype is not None else x
        return q_pact(x, alpha, self.bits)


class QEmbed(nn.Module):
    """bitorch's ``QEmbedding`` for linen: ``q_out(q_w(embedding)[indices])``
    (:func:`bitorch_jax.layers.q_embedding`). Parameter ``embedding``
    ``(num_embeddings, features)``, initialised as torch's (``N(0, 1)``, the
    ``padding_idx`` row zeros). ``dtype`` casts the table for the lookup.

    >>> layer = QEmbed(3, 2)
    >>> variables = {"params": {"embedding": jnp.array([[0.5, -0.1], [-2.0, 0.0], [0.3, 0.3]])}}
    >>> layer.apply(variables, jnp.array([1, 0]))
    Array([[-1.,  1.],
           [ 1., -1.]], dtype=float32)
    """

    num_embeddings: int
    features: int
    padding_idx: int | None = _kw(None)
    weight_quantization: str | Quantization = _kw("sign")
    output_quantization: str | Quantization = _kw("sign")
    dtype: Any = _kw(None)
    param_dtype: Any = _kw(jnp.float32)
    embedding_init: Callable[..., jax.Array] | None = _kw(None)

    def __post_init__(self) -> None:
        _check_embed(self, "QEmbed")
        super().__post_init__()

    def _table(self) -> jax.Array:
        init = self.embedding_init or embedding_init(self.padding_idx)
        shape = (self.num_embeddings, self.features)
        table = self.param("embedding", init, shape, self.param_dtype)
        return jnp.asarray(table, self.dtype) if self.dtype is not None else table

    @nn.compact
    def __call__(self, indices: jax.Array) -> jax.Array:
        return q_embedding(
            indices,
            self._table(),
            padding_idx=self.padding_idx,
            weight_quantization=self.weight_quantization,
            output_quantization=self.output_quantization,
        )


class QEmbedBag(QEmbed):
    """bitorch's ``QEmbeddingBag`` for linen (:func:`bitorch_jax.layers.q_embedding_bag`):
    ``__call__(indices, offsets=None, per_sample_weights=None)``; ``mode`` ``"sum"``,
    ``"mean"`` (default) or ``"max"``. Parameter ``embedding`` as :class:`QEmbed`.
    """

    mode: str = _kw("mean")
    include_last_offset: bool = _kw(False)

    def __post_init__(self) -> None:
        check_embedding_mode(self.mode, "QEmbedBag")
        super().__post_init__()

    @nn.compact
    def __call__(  # type: ignore[override]
        self,
        indices: jax.Array,
        offsets: jax.Array | None = None,
        per_sample_weights: jax.Array | None = None,
    ) -> jax.Array:
        return q_embedding_bag(
            indices,
            self._table(),
            offsets,
            per_sample_weights,
            mode=self.mode,
            include_last_offset=self.include_last_offset,
            padding_idx=self.padding_idx,
            weight_quantization=self.weight_quantization,
            output_quantization=self.output_quantization,
        )


def _check_embed(module: Any, where: str) -> None:
    num = check_positive_int(module.num_embeddings, "num_embeddings", where)
    check_positive_int(module.features, "features", where)
    check_padding_idx(module.padding_idx, num, where)
    resolve_quantization(module.weight_quantization, where)
    if hasattr(module, "output_quantization"):
        resolve_quantization(module.output_quantization, where)
    if hasattr(module, "sign_bool"):
        check_bool(module.sign_bool, "sign_bool", where)


class BEmbed(nn.Module):
    """bitorch's ``BEmbedding`` for linen: a ``bool`` table ``weight``
    ``(num_embeddings, features)`` in the collection ``"binary_weights"``
    (:data:`BINARY_WEIGHTS`, not ``params``: it has no gradient), decoded to ``dtype``
    (float32) rows (:mod:`bitorch_jax.layers.bembedding`).

    ``__call__(indices, vectors=None)`` looks ``indices`` up in the decoded table, or in
    ``vectors`` when given (the float table to differentiate and optimize; get it with
    ``method="vectors"``). ``method="step"`` with ``(indices, vectors)`` and
    ``mutable=["binary_weights"]`` writes the rows ``indices`` used back as bits.

    >>> layer = BEmbed(2, 2, sign_bool=True)
    >>> variables = {"binary_weights": {"weight": jnp.array([[True, False], [False, True]])}}
    >>> layer.apply(variables, jnp.array([1]))
    Array([[-1.,  1.]], dtype=float32)
    """

    num_embeddings: int
    features: int
    padding_idx: int | None = _kw(None)
    weight_quantization: str | Quantization = _kw("sign")
    sign_bool: bool = _kw(False)
    dtype: Any = _kw(jnp.float32)
    weight_init: Callable[..., jax.Array] = _kw(random_bits_init)

    def __post_init__(self) -> None:
        _check_embed(self, type(self).__name__)
        super().__post_init__()

    def setup(self) -> None:
        shape = (self.num_embeddings, self.features)
        self.weight = self.variable(
            BINARY_WEIGHTS, "weight", lambda: self.weight_init(self.make_rng("params"), shape)
        )

    def vectors(self) -> jax.Array:
        """The decoded float table."""
        return decode_binary_weight(
            self.weight.value, padding_idx=self.padding_idx, sign_bool=self.sign_bool,
            dtype=self.dtype,
        )  # fmt: skip

    def step(self, indices: jax.Array, vectors: jax.Array) -> None:
        """Write ``weight_quantization(vectors) == 1`` into the rows ``indices`` used."""
        self.weight.value = binary_weight_update(
            self.weight.value, indices, vectors,
            weight_quantization=self.weight_quantization, padding_idx=self.padding_idx,
        )  # fmt: skip

    def __call__(self, indices: jax.Array, vectors: jax.Array | None = None) -> jax.Array:
        return b_embedding(indices, self.vectors() if vectors is None else vectors)


class BEmbedBag(BEmbed):
    """bitorch's ``BEmbeddingBag`` for linen: :class:`BEmbed`'s table, ``__call__(indices,
    offsets, vectors=None)`` reduces each bag by ``mode`` (``"sum"``, ``"mean"`` default,
    ``"max"``; padding entries are zero rows and count in the mean)."""

    mode: str = _kw("mean")

    def __post_init__(self) -> None:
        check_embedding_mode(self.mode, "BEmbedBag")
        super().__post_init__()

    def __call__(  # type: ignore[override]
        self, indices: jax.Array, offsets: jax.Array, vectors: jax.Array | None = None
    ) -> jax.Array:
        table = self.vectors() if vectors is None else vectors
        return b_embedding_bag(indices, offsets, table, mode=self.mode)


# ----------------------------------------------------------------------------- ReActNet
# RSign and RPReLU (ReActNet; not in bitorch 0.4.1): the math is bitorch_jax.layers.react.


class RSign(nn.Module):
    """ReActNet's RSign for linen: ``q(x + bias)`` with a learnable per-channel ``bias``
    (last axis, ``(C,)``, zeros), :func:`bitorch_jax.layers.rsign`. ``activation`` and
    ``gradient_cancellation_threshold`` as :class:`QActivation`'s.

    >>> variables = {"params": {"bias": jnp.array([-0.5, 0.5])}}
    >>> RSign().apply(variables, jnp.array([[0.3, -0.2]]))
    Array([[-1.,  1.]], dtype=float32)
    """

    activation: str | Quantization = _kw("sign")
    gradient_cancellation_threshold: float = _kw(1.0)
    param_dtype: Any = _kw(jnp.float32)
    bias_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())

    def __post_init__(self) -> None:
        check_threshold(self.gradient_cancellation_threshold, "RSign")
        resolve_quantization(self.activation, "RSign")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = jnp.shape(x)[-1] if jnp.ndim(x) else 0
        bias = self.param("bias", self.bias_init, (channels,), self.param_dtype)
        return rsign(
            x,
            bias,
            quantization=self.activation,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
        )


class RPReLU(nn.Module):
    """ReActNet's RPReLU for linen: ``prelu(x + bias_in; slope) + bias_out``
    (:func:`bitorch_jax.layers.rprelu`), parameters per channel (last axis, ``(C,)``):
    ``bias_in`` (zeros), ``slope`` (0.25, torch's ``PReLU`` default), ``bias_out``
    (zeros).

    >>> RPReLU().init_with_output(jax.random.key(0), jnp.array([[1.0, -2.0]]))[0]
    Array([[ 1. , -0.5]], dtype=float32)
    """

    param_dtype: Any = _kw(jnp.float32)
    bias_in_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())
    slope_init: Callable[..., jax.Array] = _kw(nn.initializers.constant(0.25))
    bias_out_init: Callable[..., jax.Array] = _kw(nn.initializers.zeros_init())

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (jnp.shape(x)[-1] if jnp.ndim(x) else 0,)
        bias_in = self.param("bias_in", self.bias_in_init, shape, self.param_dtype)
        slope = self.param("slope", self.slope_init, shape, self.param_dtype)
        bias_out = self.param("bias_out", self.bias_out_init, shape, self.param_dtype)
        return rprelu(x, bias_in, slope, bias_out)
