"""Flax NNX layers of bitorch_jax. The math lives in the pure functions of
:mod:`bitorch_jax.layers`; these modules only hold hyperparameters and parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bitorch_common.validation import (
    check_bits,
    check_bool,
    check_embedding_mode,
    check_int,
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
from bitorch_jax.layers.linen import embedding_init, random_bits_init
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
    "QLinear",
    "PadModule",
    "Pact",
    "QEmbed",
    "QEmbedBag",
    "BEmbed",
    "BEmbedBag",
    "BinaryWeight",
    "RSign",
    "RPReLU",
]

_LECUN_NORMAL = nnx.initializers.lecun_normal()
_ZEROS = nnx.initializers.zeros_init()
_ONES = nnx.initializers.ones_init()


class QActivation(nnx.Module):
    """Quantize the input after gradient cancellation (NNX).

    ``activation`` is a registry name or a quantizer object; the gradient is zeroed where
    ``|x| > gradient_cancellation_threshold`` (default 1.0, bitorch's layer-config
    default; ``0`` turns cancellation off).

    >>> import jax.numpy as jnp
    >>> QActivation("sign")(jnp.array([-2.0, 0.5]))
    Array([-1.,  1.], dtype=float32)
    """

    def __init__(
        self,
        activation: str | Quantization = "sign",
        *,
        gradient_cancellation_threshold: float = 1.0,
    ) -> None:
        self.activation = resolve_quantization(activation, "QActivation")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QActivation"
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_activation(x, self.activation, self.gradient_cancellation_threshold)


class QLinear(nnx.Module):
    """bitorch's ``QLinear`` for NNX: ``q_in(gc(x)) @ q_w(kernel) + bias``.

    The math is :func:`bitorch_jax.layers.q_linear`. Parameters: ``kernel``
    ``(in_features, out_features)``, with ``use_bias`` ``bias`` ``(out_features,)``, and
    with ``output_scale`` XNOR-Net's learnable per-output ``scale`` ``(out_features,)``
    (ones), multiplied onto the output before the bias.
    ``gradient_cancellation_threshold=0`` turns gradient cancellation off. ``dtype``
    (``None``: promote input and parameters), ``param_dtype``, ``precision`` and
    ``preferred_element_type`` (e.g. ``jnp.float32``: exact sums of bfloat16 +-1 products)
    mean what they mean in ``nnx.Linear``.

    >>> layer = QLinear(3, 2, use_bias=False, rngs=nnx.Rngs(0))
    >>> layer.kernel[...] = jnp.array([[0.2, -0.3], [-0.4, 0.5], [0.1, -0.6]])
    >>> layer(jnp.array([[0.7, -1.5, 0.0]]))
    Array([[ 3., -3.]], dtype=float32)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
        output_scale: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        preferred_element_type: Any = None,
        kernel_init: Callable[..., jax.Array] = _LECUN_NORMAL,
        bias_init: Callable[..., jax.Array] = _ZEROS,
        scale_init: Callable[..., jax.Array] = _ONES,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = check_positive_int(in_features, "in_features", "QLinear")
        self.out_features = check_positive_int(out_features, "out_features", "QLinear")
        self.input_quantization = resolve_quantization(input_quantization, "QLinear")
        self.weight_quantization = resolve_quantization(weight_quantization, "QLinear")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "QLinear"
        )
        _set_dtypes(self, dtype, param_dtype, precision, preferred_element_type, "QLinear")
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (in_features, out_features), param_dtype)
        )
        _set_bias_and_scale(
            self, use_bias, output_scale, bias_init, scale_init, out_features, rngs, "QLinear"
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_linear(
            x,
            self.kernel[...],
            None if self.bias is None else self.bias[...],
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
            dtype=self.dtype,
            preferred_element_type=self.preferred_element_type,
            scale=None if self.scale is None else self.scale[...],
        )


def _set_dtypes(
    module: Any, dtype: Any, param_dtype: Any, precision: Any, preferred: Any, where: str
) -> None:
    """Check and store the dtype hyperparameters of a quantized NNX layer."""
    module.dtype = check_compute_dtype(dtype, "dtype", where)
    module.param_dtype = check_compute_dtype(param_dtype, "param_dtype", where)
    module.precision = precision
    module.preferred_element_type = check_compute_dtype(preferred, "preferred_element_type", where)


def _set_bias_and_scale(
    module: Any,
    use_bias: bool,
    output_scale: bool,
    bias_init: Callable[..., jax.Array],
    scale_init: Callable[..., jax.Array],
    features: int,
    rngs: nnx.Rngs,
    where: str,
) -> None:
    """``module.bias`` and ``module.scale``: ``(features,)`` ``Param``s or ``None``."""
    check_bool(output_scale, "output_scale", where)
    shape, dtype = (features,), module.param_dtype
    module.bias = nnx.Param(bias_init(rngs.params(), shape, dtype)) if use_bias else None
    module.scale = nnx.Param(scale_init(rngs.params(), shape, dtype)) if output_scale else None


class QConv(nnx.Module):
    """bitorch's quantized convolution for NNX, N-d by ``len(kernel_size)``.

    The math is :func:`bitorch_jax.layers.q_conv`: the input (``N, *spatial, C`` or
    unbatched) is quantized after gradient cancellation, padded with ``pad_value``, and
    convolved (VALID) with the quantized kernel
    ``(*kernel_size, in_features / groups, out_features)``. ``padding`` is an int, ints,
    ``(before, after)`` pairs, ``"same"`` or ``"valid"``, default ``0`` as in bitorch
    (``"same"`` is ``lax``'s ``"SAME"`` for any stride, padded with ``pad_value``);
    ``use_bias`` defaults to ``False`` (see :mod:`bitorch.layers.qconv`). ``output_scale``
    adds XNOR-Net's learnable per-output-channel ``scale`` ``(out_features,)`` (ones),
    applied before the bias; ``dtype``, ``param_dtype``, ``precision`` and
    ``preferred_element_type`` as in ``nnx.Conv``.

    >>> conv = QConv(1, 1, (2,), padding=1, rngs=nnx.Rngs(0))
    >>> conv.kernel[...] = jnp.array([[[0.5]], [[-0.5]]])
    >>> conv(jnp.array([[[0.3], [-0.2]]]))[0, :, 0]
    Array([-2.,  2.,  0.], dtype=float32)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: Sequence[int],
        *,
        strides: int | Sequence[int] = 1,
        padding: PaddingLike = 0,
        kernel_dilation: int | Sequence[int] = 1,
        feature_group_count: int = 1,
        use_bias: bool = False,
        pad_value: float = -1.0,
        input_quantization: str | Quantization = "sign",
        weight_quantization: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
        output_scale: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        preferred_element_type: Any = None,
        kernel_init: Callable[..., jax.Array] = _LECUN_NORMAL,
        bias_init: Callable[..., jax.Array] = _ZEROS,
        scale_init: Callable[..., jax.Array] = _ONES,
        rngs: nnx.Rngs,
    ) -> None:
        where = "QConv"
        if isinstance(kernel_size, (int, str)) or not isinstance(kernel_size, Sequence):
            raise TypeError(
                f"{where}: kernel_size must be a tuple of ints, one per spatial dimension "
                f"(e.g. (3,) for 1-d, (3, 3) for 2-d), got {kernel_size!r}"
            )
        n = len(kernel_size)
        self.kernel_size = spatial_tuple(tuple(kernel_size), n, "kernel_size", where, minimum=1)
        self.strides = spatial_tuple(strides, n, "strides", where, minimum=1)
        self.kernel_dilation = spatial_tuple(
            kernel_dilation, n, "kernel_dilation", where, minimum=1
        )
        pads = explicit_padding(
            padding, self.kernel_size, self.kernel_dilation, self.strides, where
        )
        # "same" with a stride > 1 depends on the input's size: resolved by q_conv per call
        self.padding = "same" if pads is None else pads
        self.in_features = check_positive_int(in_features, "in_features", where)
        self.out_features = check_positive_int(out_features, "out_features", where)
        groups = check_positive_int(feature_group_count, "feature_group_count", where)
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"{where}: in_features {in_features} and out_features {out_features} must be "
                f"divisible by feature_group_count {groups}"
            )
        self.feature_group_count = groups
        self.pad_value = check_pad_value(pad_value, where)
        self.input_quantization = resolve_quantization(input_quantization, where)
        self.weight_quantization = resolve_quantization(weight_quantization, where)
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, where
        )
        _set_dtypes(self, dtype, param_dtype, precision, preferred_element_type, where)
        shape = (*self.kernel_size, in_features // groups, out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape, param_dtype))
        _set_bias_and_scale(
            self, use_bias, output_scale, bias_init, scale_init, out_features, rngs, where
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return q_conv(
            x,
            self.kernel[...],
            None if self.bias is None else self.bias[...],
            strides=self.strides,
            padding=self.padding,
            kernel_dilation=self.kernel_dilation,
            feature_group_count=self.feature_group_count,
            pad_value=self.pad_value,
            input_quantization=self.input_quantization,
            weight_quantization=self.weight_quantization,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
            precision=self.precision,
            dtype=self.dtype,
            preferred_element_type=self.preferred_element_type,
            scale=None if self.scale is None else self.scale[...],
        )


# ----------------------------------------------------------------------------- 0.4.1 layers


class BinaryWeight(nnx.Variable):
    """The ``bool`` table of :class:`BEmbed`/:class:`BEmbedBag`: a variable, not a
    ``Param`` (it has no gradient; ``step`` writes it). linen keeps it in the collection
    ``"binary_weights"``."""


class PadModule(nnx.Module):
    """bitorch's ``PadModule`` for NNX: pads ``W`` by ``padding_left``/``padding_right``
    and ``H`` by ``padding_top``/``padding_bottom`` of a channels-last ``(..., H, W, C)``
    input with ``padding_value`` (:func:`bitorch_jax.layers.pad_2d`). No parameters.

    >>> PadModule(padding_bottom=1, padding_value=-1.0)(jnp.ones((1, 1, 1)))[..., 0]
    Array([[ 1.],
           [-1.]], dtype=float32)
    """

    def __init__(
        self,
        *,
        padding_left: int = 0,
        padding_right: int = 0,
        padding_top: int = 0,
        padding_bottom: int = 0,
        padding_value: float = 0.0,
    ) -> None:
        names = ("padding_left", "padding_right", "padding_top", "padding_bottom")
        amounts = (padding_left, padding_right, padding_top, padding_bottom)
        self.padding = tuple(
            check_int(a, name, "PadModule") for a, name in zip(amounts, names, strict=True)
        )
        self.padding_value = check_real(padding_value, "padding_value", "PadModule")

    def __call__(self, x: jax.Array) -> jax.Array:
        return pad_2d(x, self.padding, self.padding_value)


class Pact(nnx.Module):
    """bitorch's ``Pact`` for NNX: ``x`` clipped to ``[0, alpha]`` and quantized to
    ``bits`` bits (:func:`bitorch_jax.layers.q_pact`). Parameter ``alpha`` (0-d, 10.0 as in
    torch, ``param_dtype``); ``dtype`` casts the input. ``rngs`` is accepted for
    uniformity and not used (the initial value is a constant).

    >>> Pact(bits=2)(jnp.array([-1.0, 4.0, 12.0]))
    Array([ 0.       ,  3.3333333, 10.       ], dtype=float32)
    """

    def __init__(
        self,
        *,
        bits: int = 4,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        alpha_init: float = 10.0,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        self.bits = check_bits(bits, "Pact")
        self.dtype = dtype
        self.alpha = nnx.Param(jnp.asarray(alpha_init, param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, self.dtype) if self.dtype is not None else x
        return q_pact(x, self.alpha[...], self.bits)


class QEmbed(nnx.Module):
    """bitorch's ``QEmbedding`` for NNX: ``q_out(q_w(embedding)[indices])``
    (:func:`bitorch_jax.layers.q_embedding`). Parameter ``embedding``
    ``(num_embeddings, features)``, initialised as torch's (``N(0, 1)``, the
    ``padding_idx`` row zeros). ``dtype`` casts the table for the lookup.

    >>> layer = QEmbed(3, 2, rngs=nnx.Rngs(0))
    >>> layer.embedding[...] = jnp.array([[0.5, -0.1], [-2.0, 0.0], [0.3, 0.3]])
    >>> layer(jnp.array([1, 0]))
    Array([[-1.,  1.],
           [ 1., -1.]], dtype=float32)
    """

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        padding_idx: int | None = None,
        weight_quantization: str | Quantization = "sign",
        output_quantization: str | Quantization = "sign",
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        embedding_init: Callable[..., jax.Array] | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        where = type(self).__name__
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", where)
        self.features = check_positive_int(features, "features", where)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings, where)
        self.weight_quantization = resolve_quantization(weight_quantization, where)
        self.output_quantization = resolve_quantization(output_quantization, where)
        self.dtype = dtype
        init = embedding_init or _embedding_init(self.padding_idx)
        shape = (self.num_embeddings, self.features)
        self.embedding = nnx.Param(init(rngs.params(), shape, param_dtype))

    def _table(self) -> jax.Array:
        table = self.embedding[...]
        return jnp.asarray(table, self.dtype) if self.dtype is not None else table

    def __call__(self, indices: jax.Array) -> jax.Array:
        return q_embedding(
            indices,
            self._table(),
            padding_idx=self.padding_idx,
            weight_quantization=self.weight_quantization,
            output_quantization=self.output_quantization,
        )


_embedding_init = embedding_init


class QEmbedBag(QEmbed):
    """bitorch's ``QEmbeddingBag`` for NNX (:func:`bitorch_jax.layers.q_embedding_bag`):
    ``__call__(indices, offsets=None, per_sample_weights=None)``; ``mode`` ``"sum"``,
    ``"mean"`` (default) or ``"max"``. Parameter ``embedding`` as :class:`QEmbed`.
    """

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        mode: str = "mean",
        include_last_offset: bool = False,
        padding_idx: int | None = None,
        weight_quantization: str | Quantization = "sign",
        output_quantization: str | Quantization = "sign",
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        embedding_init: Callable[..., jax.Array] | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        self.mode = check_embedding_mode(mode, "QEmbedBag")
        self.include_last_offset = check_bool(
            include_last_offset, "include_last_offset", "QEmbedBag"
        )
        super().__init__(
            num_embeddings, features, padding_idx=padding_idx,
            weight_quantization=weight_quantization, output_quantization=output_quantization,
            dtype=dtype, param_dtype=param_dtype, embedding_init=embedding_init, rngs=rngs,
        )  # fmt: skip

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


class BEmbed(nnx.Module):
    """bitorch's ``BEmbedding`` for NNX: a ``bool`` table ``weight``
    ``(num_embeddings, features)`` held as :class:`BinaryWeight` (not a ``Param``),
    decoded to ``dtype`` (float32) rows (:mod:`bitorch_jax.layers.bembedding`).

    ``__call__(indices, vectors=None)`` looks ``indices`` up in the decoded table, or in
    ``vectors`` when given (the float table to differentiate and optimize:
    :meth:`vectors`); :meth:`step` writes the rows ``indices`` used back as bits.

    >>> layer = BEmbed(2, 2, sign_bool=True, rngs=nnx.Rngs(0))
    >>> layer.weight[...] = jnp.array([[True, False], [False, True]])
    >>> layer(jnp.array([1]))
    Array([[-1.,  1.]], dtype=float32)
    """

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        padding_idx: int | None = None,
        weight_quantization: str | Quantization = "sign",
        sign_bool: bool = False,
        dtype: Any = jnp.float32,
        weight_init: Callable[..., jax.Array] = random_bits_init,
        rngs: nnx.Rngs,
    ) -> None:
        where = type(self).__name__
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", where)
        self.features = check_positive_int(features, "features", where)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings, where)
        self.weight_quantization = resolve_quantization(weight_quantization, where)
        self.sign_bool = check_bool(sign_bool, "sign_bool", where)
        self.dtype = dtype
        shape = (self.num_embeddings, self.features)
        self.weight = BinaryWeight(weight_init(rngs.params(), shape))

    def vectors(self) -> jax.Array:
        """The decoded float table."""
        return decode_binary_weight(
            self.weight[...], padding_idx=self.padding_idx, sign_bool=self.sign_bool,
            dtype=self.dtype,
        )  # fmt: skip

    def step(self, indices: jax.Array, vectors: jax.Array) -> None:
        """Write ``weight_quantization(vectors) == 1`` into the rows ``indices`` used."""
        self.weight[...] = binary_weight_update(
            self.weight[...], indices, vectors,
            weight_quantization=self.weight_quantization, padding_idx=self.padding_idx,
        )  # fmt: skip

    def __call__(self, indices: jax.Array, vectors: jax.Array | None = None) -> jax.Array:
        return b_embedding(indices, self.vectors() if vectors is None else vectors)


class BEmbedBag(BEmbed):
    """bitorch's ``BEmbeddingBag`` for NNX: :class:`BEmbed`'s table, ``__call__(indices,
    offsets, vectors=None)`` reduces each bag by ``mode`` (``"sum"``, ``"mean"`` default,
    ``"max"``; padding entries are zero rows and count in the mean)."""

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        mode: str = "mean",
        padding_idx: int | None = None,
        weight_quantization: str | Quantization = "sign",
        sign_bool: bool = False,
        dtype: Any = jnp.float32,
        weight_init: Callable[..., jax.Array] = random_bits_init,
        rngs: nnx.Rngs,
    ) -> None:
        self.mode = check_embedding_mode(mode, "BEmbedBag")
        super().__init__(
            num_embeddings, features, padding_idx=padding_idx,
            weight_quantization=weight_quantization, sign_bool=sign_bool, dtype=dtype,
            weight_init=weight_init, rngs=rngs,
        )  # fmt: skip

    def __call__(  # type: ignore[override]
        self, indices: jax.Array, offsets: jax.Array, vectors: jax.Array | None = None
    ) -> jax.Array:
        table = self.vectors() if vectors is None else vectors
        return b_embedding_bag(indices, offsets, table, mode=self.mode)


# ----------------------------------------------------------------------------- ReActNet
# RSign and RPReLU (ReActNet; not in bitorch 0.4.1): the math is bitorch_jax.layers.react.


def _init_key(rngs: nnx.Rngs | None) -> jax.Array | None:
    """A key for a parameter initialiser: ``None`` without ``rngs`` (enough for the
    constant defaults; a random initialiser needs ``rngs``)."""
    return None if rngs is None else rngs.params()


class RSign(nnx.Module):
    """ReActNet's RSign for NNX: ``q(x + bias)`` with a learnable per-channel ``bias``
    ``(num_features,)`` on the last axis (zeros), :func:`bitorch_jax.layers.rsign`.
    ``activation`` and ``gradient_cancellation_threshold`` as :class:`QActivation`'s;
    ``rngs`` is only needed by a random ``bias_init``.

    >>> layer = RSign(2)
    >>> layer.bias[...] = jnp.array([-0.5, 0.5])
    >>> layer(jnp.array([[0.3, -0.2]]))
    Array([[-1.,  1.]], dtype=float32)
    """

    def __init__(
        self,
        num_features: int,
        *,
        activation: str | Quantization = "sign",
        gradient_cancellation_threshold: float = 1.0,
        param_dtype: Any = jnp.float32,
        bias_init: Callable[..., jax.Array] = _ZEROS,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        self.num_features = check_positive_int(num_features, "num_features", "RSign")
        self.activation = resolve_quantization(activation, "RSign")
        self.gradient_cancellation_threshold = check_threshold(
            gradient_cancellation_threshold, "RSign"
        )
        self.bias = nnx.Param(bias_init(_init_key(rngs), (num_features,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return rsign(
            x,
            self.bias[...],
            quantization=self.activation,
            gradient_cancellation_threshold=self.gradient_cancellation_threshold,
        )


_PRELU_SLOPE = nnx.initializers.constant(0.25)  # torch's nn.PReLU default


class RPReLU(nnx.Module):
    """ReActNet's RPReLU for NNX: ``prelu(x + bias_in; slope) + bias_out``
    (:func:`bitorch_jax.layers.rprelu`), parameters ``(num_features,)`` on the last axis:
    ``bias_in`` (zeros), ``slope`` (0.25, torch's ``PReLU`` default), ``bias_out``
    (zeros). ``rngs`` is only needed by a random initialiser.

    >>> RPReLU(2)(jnp.array([[1.0, -2.0]]))
    Array([[ 1. , -0.5]], dtype=float32)
    """

    def __init__(
        self,
        num_features: int,
        *,
        param_dtype: Any = jnp.float32,
        bias_in_init: Callable[..., jax.Array] = _ZEROS,
        slope_init: Callable[..., jax.Array] = _PRELU_SLOPE,
        bias_out_init: Callable[..., jax.Array] = _ZEROS,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        self.num_features = check_positive_int(num_features, "num_features", "RPReLU")
        shape = (num_features,)
        self.bias_in = nnx.Param(bias_in_init(_init_key(rngs), shape, param_dtype))
        self.slope = nnx.Param(slope_init(_init_key(rngs), shape, param_dtype))
        self.bias_out = nnx.Param(bias_out_init(_init_key(rngs), shape, param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return rprelu(x, self.bias_in[...], self.slope[...], self.bias_out[...])
