"""Config objects: default values that command-line tools can expose and change.

:class:`Config` is the base class of bitorch 0.4.1's configs, with the same behaviour for
code that subclasses it: the non-callable class (and instance) attributes of a subclass,
except ``name``, are its *configurable attributes*, collected when the object is built;
:meth:`Config.add_config_arguments` adds one ``argparse`` option per attribute
(``--attribute-name``, a flag for a ``bool``) and :meth:`Config.apply_args_to_configuration`
copies the parsed values back. ``get_<attribute>()`` / ``set_<attribute>(value)`` read and
write one attribute.

The functions below keep config objects by ``name`` (bitorch 0.4.1 has them in the
``bitorch`` package itself): ``register_custom_config``, ``config_from_name``,
``config_names``, ``add_config_args`` and ``apply_args_to_configuration``.

Example::

    >>> from argparse import ArgumentParser
    >>> class TrainingConfig(Config):
    ...     name = "training_config"
    ...     epochs = 10
    ...     verbose = False
    >>> cfg = TrainingConfig()
    >>> parser = ArgumentParser()
    >>> cfg.add_config_arguments(parser)
    >>> cfg.apply_args_to_configuration(parser.parse_args(["--epochs", "3", "--verbose"]))
    >>> cfg.epochs, cfg.get_verbose()
    (3, True)
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from collections.abc import Callable
from typing import Any

__all__ = [
    "Config",
    "register_custom_config",
    "config_from_name",
    "config_names",
    "add_config_args",
    "apply_args_to_configuration",
    "configs_by_name",
]

_ACCESSOR_PREFIXES = ("get_", "set_")


class Config:
    """Superclass of configs: every non-callable attribute but ``name`` is configurable.

    Subclasses set ``name`` (the title of the argument group and the key of
    :func:`config_from_name`) and their options as class attributes. Attribute names that
    start with ``__`` are not options. The list is taken once, when the object is built
    (``_configurable_attributes``), in ``dir()`` order (alphabetical).
    """

    name: str

    def __init__(self) -> None:
        configurable = [
            attribute
            for attribute in dir(self)
            if not attribute.startswith("__")
            and attribute != "name"
            and not callable(getattr(self, attribute))
        ]
        # object.__setattr__: a subclass may restrict __setattr__ to its options.
        object.__setattr__(self, "_configurable_attributes", configurable)

    def __getattr__(self, attribute: str) -> Callable[..., Any]:
        # Only called for names not found otherwise: the get_/set_ accessors.
        for prefix in _ACCESSOR_PREFIXES:
            option = attribute[len(prefix) :]
            if attribute.startswith(prefix) and option in self.__dict__.get(
                "_configurable_attributes", ()
            ):
                return self._accessor(prefix, option)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    def _accessor(self, prefix: str, option: str) -> Callable[..., Any]:
        """``get_<option>()`` / ``set_<option>(value)``. bitorch 0.4.1's accessors take the
        config object as an explicit first argument (``config.get_beta(config)``); that
        form works too."""
        if prefix == "get_":

            def getter(*target: Any) -> Any:
                if len(target) > 1:
                    raise TypeError(f"get_{option}() takes at most 1 argument")
                return getattr(target[0] if target else self, option)

            return getter

        def setter(*args: Any) -> None:
            if len(args) not in (1, 2):
                raise TypeError(f"set_{option}() takes the value (or the config and the value)")
            target, value = (self, args[0]) if len(args) == 1 else args
            setattr(target, option, value)

        return setter

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        for option in self.__dict__.get("_configurable_attributes", ()):
            names.update(prefix + option for prefix in _ACCESSOR_PREFIXES)
        return sorted(names)

    def add_config_arguments(self, parser: ArgumentParser) -> None:
        """Add an argument group ``name`` to ``parser`` with one option per configurable
        attribute: ``--attribute-name`` of the attribute's type with its current value as
        default; a ``bool`` is a flag that turns the current value around."""
        group = parser.add_argument_group(self.name, f"{self.name} configuration settings")
        for attribute in self._configurable_attributes:
            value = getattr(self, attribute)
            flag = "--" + attribute.replace("_", "-")
            if isinstance(value, bool):
                action = "store_false" if value else "store_true"
                group.add_argument(flag, dest=attribute, default=value, action=action)
            else:
                group.add_argument(flag, dest=attribute, default=value, type=type(value))

    def apply_args_to_configuration(self, args: Namespace) -> None:
        """Set every configurable attribute to its value in ``args`` (parsed arguments).

        If one value is refused (a subclass may validate), the attributes set before it
        are put back, so the config is never left half updated.
        """
        before = {
            attribute: getattr(self, attribute) for attribute in self._configurable_attributes
        }
        try:
            for attribute in self._configurable_attributes:
                setattr(self, attribute, getattr(args, attribute))
        except Exception:
            for attribute, value in before.items():
                setattr(self, attribute, value)
            raise


#: The registered configs by name (bitorch 0.4.1: ``bitorch.configs_by_name``).
configs_by_name: dict[str, Config] = {}


def register_custom_config(custom_config: Config) -> None:
    """Keep ``custom_config`` under its ``name`` (a config of that name is replaced)."""
    if not isinstance(custom_config, Config):
        raise TypeError(
            f"register_custom_config expects a Config object, got {type(custom_config).__name__}"
        )
    configs_by_name[custom_config.name] = custom_config


def config_from_name(name: str) -> Config:
    """The config registered under ``name``; ``ValueError`` naming the known ones if none."""
    if name not in configs_by_name:
        raise ValueError(f"{name} config not found! Known configs: {', '.join(config_names())}")
    return configs_by_name[name]


def config_names() -> list[str]:
    """The names of the registered configs, in registration order."""
    return list(configs_by_name)


def add_config_args(parser: ArgumentParser) -> None:
    """Add the arguments of every registered config to ``parser``."""
    for config in configs_by_name.values():
        config.add_config_arguments(parser)


def apply_args_to_configuration(args: Namespace) -> None:
    """Apply parsed arguments to every registered config."""
    for config in configs_by_name.values():
        config.apply_args_to_configuration(args)
