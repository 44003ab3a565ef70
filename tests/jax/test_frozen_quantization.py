"""No stale compiled code: a ``Quantization`` is a frozen dataclass, compared and hashed
by its hyperparameters, so ``jax.jit`` and ``nnx.jit`` retrace for a quantizer with other
hyperparameters. A subclass written torch-style (its own ``__init__``) is refused."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bitorch_jax.quantizations as bq
from bitorch_jax.layers import nnx as bnnx
from bitorch_jax.quantizations import Quantization, straight_through

X = jnp.array([-1.0, 0.2, 0.5, 1.5])


@straight_through(static_argnums=(1,))
def _thresh(x: jax.Array, t: float) -> jax.Array:
    return jnp.where(x > t, 1.0, -1.0).astype(x.dtype)


class Thresh(Quantization):
    """Undecorated: ``__init_subclass__`` makes it a frozen, keyword-only dataclass."""

    name = "thresh"
    t: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "t", float(self.t))

    def quantize(self, x: jax.Array) -> jax.Array:
        return _thresh(x, self.t)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecoratedThresh(Quantization):
    """The style of the built-in quantizers: an explicit decorator on top."""

    name: ClassVar[str] = "decoratedthresh"
    bit_width: ClassVar[int] = 1
    t: float = 0.0

    def quantize(self, x: jax.Array) -> jax.Array:
        return _thresh(x, self.t)


def _expected(t: float) -> np.ndarray:
    return np.where(np.asarray(X) > t, 1.0, -1.0).astype(np.float32)


def test_torch_style_subclass_is_refused_with_how_to() -> None:
    with pytest.raises(TypeError) as info:

        class TorchStyle(Quantization):
            name = "torchstyle"

            def __init__(self, t: float) -> None:
                self.t = t

            def quantize(self, x: jax.Array) -> jax.Array:
                return _thresh(x, self.t)

    message = str(info.value)
    assert message.startswith("TorchStyle defines __init__")
    for part in ("annotated field", "__post_init__", "object.__setattr__", "TorchStyle(t=0.9)",
                 "t: float = 0.0", 'name = "torchstyle"'):  # fmt: skip
        assert part in message, part


def test_torch_style_subclass_is_refused_even_when_decorated() -> None:
    with pytest.raises(TypeError, match="defines __init__"):

        @dataclasses.dataclass(frozen=True, kw_only=True)
        class Decorated(Quantization):
            name: ClassVar[str] = "decorated"

            def __init__(self, t: float = 0.0) -> None:
                object.__setattr__(self, "t", t)


@pytest.mark.parametrize("cls", [Thresh, DecoratedThresh])
def test_equality_and_hash_follow_the_hyperparameters(cls: type) -> None:
    a, b, a2 = cls(t=0.0), cls(t=0.9), cls(t=0.0)
    assert a != b and hash(a) != hash(b)
    assert a == a2 and hash(a) == hash(a2)
    assert repr(b) == f"{cls.__name__}(t=0.9)"


@pytest.mark.parametrize("cls", [Thresh, DecoratedThresh])
def test_one_jitted_function_static_argument(cls: type) -> None:
    traces = []

    def quantize(q: Quantization, x: jax.Array) -> jax.Array:
        traces.append(q)
        return q(x)

    f = jax.jit(quantize, static_argnums=0)
    y0 = f(cls(t=0.0), X)
    y9 = f(cls(t=0.9), X)
    np.testing.assert_array_equal(y0, _expected(0.0))
    np.testing.assert_array_equal(y9, _expected(0.9))
    assert len(traces) == 2  # a second trace, not the first one reused
    f(cls(t=0.9), X)  # an equal quantizer reuses its trace
    assert len(traces) == 2


@pytest.mark.parametrize("cls", [Thresh, DecoratedThresh])
def test_one_nnx_jitted_function_qactivation(cls: type) -> None:
    f = nnx.jit(lambda m, x: m(x))
    y0 = f(bnnx.QActivation(cls(t=0.0)), X)
    y9 = f(bnnx.QActivation(cls(t=0.9)), X)
    np.testing.assert_array_equal(y0, _expected(0.0))
    np.testing.assert_array_equal(y9, _expected(0.9))


def test_undecorated_subclass_is_a_frozen_keyword_only_dataclass() -> None:
    assert dataclasses.is_dataclass(Thresh)
    assert [f.name for f in dataclasses.fields(Thresh)] == ["t"]
    q = Thresh(t=1)  # __post_init__ normalises
    assert q.t == 1.0 and isinstance(q.t, float) and q == Thresh(t=1.0)
    with pytest.raises(TypeError):
        Thresh(0.9)  # type: ignore[misc]  # keyword-only
    assert dataclasses.replace(q, t=0.3) == Thresh(t=0.3)
    assert Thresh.name == "thresh" and Thresh.bit_width == 32  # ClassVars, not fields


def test_setting_or_deleting_an_attribute_raises() -> None:
    q = Thresh(t=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError, match="dataclasses.replace"):
        q.t = 0.9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="not one of its fields"):
        q.threshold = 0.9  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del q.t
    for builtin in (bq.Sign(), bq.InputDoReFa(bits=2), DecoratedThresh(t=0.1)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            builtin.extra = 1  # type: ignore[attr-defined]
    assert q.t == 0.5


def test_builtin_quantizers_keep_classvars_and_properties() -> None:
    assert bq.InputDoReFa(bits=2) != bq.InputDoReFa(bits=3)
    assert hash(bq.InputDoReFa(bits=2)) != hash(bq.InputDoReFa(bits=3))
    assert bq.InputDoReFa(bits=3).bit_width == 3  # a property
    assert bq.Sign().bit_width == 1 and bq.Sign.name == "sign"
    assert [f.name for f in dataclasses.fields(bq.InputDoReFa)] == ["bits"]
    assert bq.SwishSign(beta=2) == bq.SwishSign(beta=2.0) != bq.SwishSign(beta=3.0)


def test_decorator_on_top_keeps_field_options() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WithOptions(Quantization):
        name: ClassVar[str] = "withoptions"
        t: float = 0.0
        label: str = dataclasses.field(default="x", compare=False, metadata={"doc": "label"})
        extra: tuple = dataclasses.field(default_factory=tuple)

        def quantize(self, x: jax.Array) -> jax.Array:
            return _thresh(x, self.t)

    fields = {f.name: f for f in dataclasses.fields(WithOptions)}
    assert not fields["label"].compare and fields["label"].metadata["doc"] == "label"
    assert fields["extra"].default_factory is tuple
    assert WithOptions.label == "x" and "extra" not in WithOptions.__dict__
    assert WithOptions(label="a") == WithOptions(label="b")
    assert WithOptions(t=0.1) != WithOptions(t=0.2)
    assert WithOptions().extra == ()


def test_undecorated_field_options_and_subclasses() -> None:
    class Base(Quantization):
        name = "base"
        t: float = dataclasses.field(default=0.0, compare=False)

        def quantize(self, x: jax.Array) -> jax.Array:
            return _thresh(x, self.t)

    class Child(Base):
        name = "child"
        k: int = 1

    assert Base.t == 0.0  # the default, not a dataclasses.Field (settled by the subclass)
    assert [f.name for f in dataclasses.fields(Child)] == ["t", "k"]
    assert Child(t=0.1) == Child(t=0.2) and Child(k=1) != Child(k=2)
    with pytest.raises(TypeError, match="defines __init__"):

        class Grandchild(Child):
            def __init__(self) -> None:
                pass
