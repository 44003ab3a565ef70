"""The registry of quantizers (and models) by name, one class for both frameworks.

``bitorch.quantizations`` and ``bitorch_jax.quantizations`` each hold one
:class:`Registry` of their own ``Quantization`` base class; their keys must be equal (a
test checks it). Keys are lower case; look-up is case-insensitive.

Registering a class under a key that is taken:

* the same class object again: nothing happens;
* a class with the same module and qualified name (a notebook cell or a module run a
  second time defines a new class object): it replaces the old one, with a
  ``UserWarning`` that says so;
* any other class: ``ValueError`` naming both.

>>> class Base: name = "__abstract__"
>>> class Round(Base): name = "round"
>>> reg = Registry(Base)
>>> reg.register(Round) is Round
True
>>> reg.lookup("ROUND").__name__, reg.names()
('Round', ['round'])

The model zoos use ``kind="model"`` (the word in messages and in the name of the
``register_custom_<kind>`` function) and ``lower_case_keys=True``: a mixed-case ``name``
such as ``"ResnetE18"`` is registered under ``name.lower()`` instead of being refused.

>>> class ResnetE18(Base): name = "ResnetE18"
>>> models = Registry(Base, kind="model", lower_case_keys=True, abstract_name="")
>>> models.register(ResnetE18).__name__, models.names()
('ResnetE18', ['resnete18'])
"""

from __future__ import annotations

import warnings
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T", bound=type)


def _origin(cls: type) -> tuple[str, str]:
    return getattr(cls, "__module__", ""), getattr(cls, "__qualname__", cls.__name__)


class Registry(Generic[T]):
    """Classes (subclasses of ``base``) by their class attribute ``name``.

    ``kind``: what is registered, used in messages (``"quantization"`` by default);
    ``lower_case_keys``: register a mixed-case ``name`` under ``name.lower()`` (models)
    instead of refusing it (quantizers, whose names must be lower case).
    """

    def __init__(
        self,
        base: type,
        *,
        abstract_name: str = "__abstract__",
        kind: str = "quantization",
        lower_case_keys: bool = False,
    ) -> None:
        self._base = base
        self._abstract_name = abstract_name
        self._kind = kind
        self._lower_case_keys = lower_case_keys
        self._classes: dict[str, type] = {}

    def register(self, cls: Any) -> Any:
        """Register ``cls`` under ``cls.name``; returns ``cls`` (usable as a decorator).

        ``TypeError`` if ``cls`` is not a subclass of the base; ``ValueError`` if its name
        is missing, not lower case (unless ``lower_case_keys``), or taken by another class.
        """
        if not (isinstance(cls, type) and issubclass(cls, self._base)):
            raise TypeError(
                f"register_custom_{self._kind} expects a {self._base.__name__} subclass, "
                f"got {cls!r}"
            )
        key = getattr(cls, "name", None)
        if not isinstance(key, str) or not key or key == self._abstract_name:
            raise ValueError(f"{cls.__name__} needs a class attribute `name` (its registry key)")
        if self._lower_case_keys:
            key = key.lower()
        elif key != key.lower():
            raise ValueError(f"registry keys are lower case; {cls.__name__}.name is {key!r}")
        old = self._classes.get(key)
        if old is not None and old is not cls:
            if _origin(old) != _origin(cls):
                raise ValueError(
                    f"{self._kind} name {key!r} is already registered to "
                    f"{'.'.join(_origin(old))}; {'.'.join(_origin(cls))} cannot take it "
                    "(give it another name)"
                )
            warnings.warn(
                f"{self._kind} name {key!r}: replacing {'.'.join(_origin(old))} with a new "
                "definition of the same class (was the defining code run twice?)",
                UserWarning,
                stacklevel=2,
            )
        self._classes[key] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove the class registered under ``name`` (``ValueError`` if there is none)."""
        key = self._key(name)
        del self._classes[key]

    def snapshot(self) -> dict[str, type]:
        """A copy of the registry's contents, for :meth:`restore` (tests, notebooks)."""
        return dict(self._classes)

    def restore(self, saved: dict[str, type]) -> None:
        """Put back the contents that :meth:`snapshot` returned."""
        self._classes = dict(saved)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._classes

    def names(self) -> list[str]:
        """The registry keys, sorted."""
        return sorted(self._classes)

    def _key(self, name: Any) -> str:
        if not isinstance(name, str):
            raise TypeError(f"{self._kind} name must be a str, got {type(name).__name__}")
        key = name.lower()
        if key not in self._classes:
            raise ValueError(
                f"unknown {self._kind} {name!r}; known names: {', '.join(self.names())}"
            )
        return key

    def lookup(self, name: Any) -> Any:
        """The class registered under ``name`` (case-insensitive).

        ``TypeError`` for a non-string, ``ValueError`` naming the known keys for an
        unknown name.
        """
        return self._classes[self._key(name)]

    def resolve(self, quantization: Any, where: str) -> Any:
        """A quantizer given by registry name (built with its defaults) or as an instance."""
        if isinstance(quantization, str):
            return self.lookup(quantization)()
        if isinstance(quantization, self._base):
            return quantization
        raise TypeError(
            f"{where}: expected a quantization name or a {self._base.__name__} instance, "
            f"got {type(quantization).__name__}"
        )
