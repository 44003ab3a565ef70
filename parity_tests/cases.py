"""The case table: every quantizer of both registries, with its parameter variants.

A :class:`Case` pairs a torch callable with a JAX callable and says how to compare them
(discrete or not, where the pre-round value and its boundaries come from). The built-in
cases take their pre-round values from the NumPy oracles in :mod:`bitorch_common.oracles`.
A user's own pair is a ``Case`` too (see :func:`parity_tests.api.compare`).

>>> [c.label for c in registry_cases(["swishsign"])]
['swishsign(beta=1.0)', 'swishsign(beta=5.0)', 'swishsign(beta=10.0)']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import bitorch.quantizations as bt
import bitorch_jax.quantizations as bj
from bitorch_common.comparison import BOUNDARIES
from bitorch_common.quantizers import Variant, row

__all__ = [
    "Case",
    "RegistryMismatch",
    "registry_keys",
    "check_registries",
    "case_for",
    "registry_cases",
    "torch_quantizer",
]


@dataclass(frozen=True, kw_only=True, eq=False)
class Case:
    """One torch/JAX pair to compare.

    ``name`` and ``params`` label the table row. ``discrete=True`` means outputs must be
    equal exactly except boundary flips; ``pre_round`` (NumPy input -> the value the
    discrete step acts on) and ``boundaries`` (``"zero"`` or ``"half"``) say where flips
    may happen; ``flip_scale`` overrides the scale of the flip window; ``grad_scale`` is an
    upper bound of ``|dq/dx|`` for the gradient tolerance (``None``: taken from the data).
    ``tensor_wide=True`` keeps NaN out of the main input (see :func:`inputs.make_samples`);
    ``extra_edges`` are added to the edge values. ``pre_round_exact``, ``level``,
    ``exact_where`` and ``grad_exact`` are the flip and exactness rules of
    :func:`bitorch_common.comparison.compare_sample`.
    """

    name: str
    torch_fn: Callable[..., Any]
    jax_fn: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    discrete: bool = True
    pre_round: Callable[[np.ndarray], np.ndarray] | None = None
    boundaries: str | None = None
    flip_scale: float | None = None
    grad_scale: float | None = None
    tensor_wide: bool = False
    extra_edges: tuple[float, ...] = ()
    pre_round_exact: bool = False
    level: Callable[[np.ndarray, Any], np.ndarray] | None = None
    exact_where: Callable[[np.ndarray], np.ndarray] | None = None
    grad_exact: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Case name must be a non-empty str, got {self.name!r}")
        for what in ("torch_fn", "jax_fn"):
            if not callable(getattr(self, what)):
                raise TypeError(f"Case {self.name!r}: {what} must be callable")
        if self.pre_round is not None and not callable(self.pre_round):
            raise TypeError(f"Case {self.name!r}: pre_round must be callable or None")
        if self.boundaries is not None and self.boundaries not in BOUNDARIES:
            raise ValueError(
                f"Case {self.name!r}: boundaries must be one of {BOUNDARIES} or None, "
                f"got {self.boundaries!r}"
            )
        if self.pre_round is not None and self.boundaries is None:
            raise ValueError(f"Case {self.name!r}: pre_round needs boundaries ('zero'/'half')")
        for what in ("flip_scale", "grad_scale"):
            value = getattr(self, what)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"Case {self.name!r}: {what} must be a number >= 0 or None")

    @property
    def params_text(self) -> str:
        """``bits=2`` / ``beta=5.0``, or ``-`` without parameters."""
        return ", ".join(f"{k}={v}" for k, v in self.params.items()) or "-"

    @property
    def label(self) -> str:
        """``name(params)``, e.g. ``inputdorefa(bits=2)``."""
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({inner})"


class RegistryMismatch(ValueError):
    """The two registries do not hold the same keys."""


def registry_keys() -> tuple[list[str], list[str]]:
    """``(bitorch keys, bitorch_jax keys)``, each sorted."""
    return sorted(bt.quantization_names()), sorted(bj.quantization_names())


def check_registries() -> list[str]:
    """The common keys; :class:`RegistryMismatch` names every key only one side has."""
    torch_keys, jax_keys = registry_keys()
    only_torch = sorted(set(torch_keys) - set(jax_keys))
    only_jax = sorted(set(jax_keys) - set(torch_keys))
    if only_torch or only_jax:
        raise RegistryMismatch(
            "the registries differ: only in bitorch: "
            f"{only_torch or 'none'}; only in bitorch_jax: {only_jax or 'none'}"
        )
    return torch_keys


def torch_quantizer(key: str, **params: Any) -> Any:
    """bitorch's quantizer of registry key ``key`` built from a table row's ``params``.

    A ``training`` parameter is torch's module mode, not a constructor argument (bitorch
    0.4.1's constructors, ``ProgressiveSign``'s included, do not take it): it is set with
    ``.train(training)`` after construction. bitorch_jax objects take it as a field.
    """
    training = params.pop("training", None)
    quantizer = bt.quantization_from_name(key)(**params)
    if training is not None:
        quantizer.train(training)
    return quantizer


def case_for(key: str, **params: Any) -> Case:
    """The :class:`Case` of registry key ``key`` with ``params`` (e.g. ``bits=2``).

    Everything but the two implementations comes from the key's row of the quantizer
    table (:mod:`bitorch_common.quantizers`); a key registered in both frameworks without
    a row is compared without oracle knowledge (every forward difference fails).
    """
    torch_q = torch_quantizer(key, **params)
    jax_q = bj.quantization_from_name(key)(**params)
    try:
        spec = row(key)
    except KeyError:
        return Case(name=key, params=params, torch_fn=torch_q, jax_fn=jax_q)
    variant = Variant(spec, params)
    return Case(
        name=key,
        params=params,
        torch_fn=torch_q,
        jax_fn=jax_q,
        tensor_wide=spec.tensor_wide,
        extra_edges=variant.extra_edges,
        **variant.comparison_rules(),
    )


def registry_cases(keys: Iterable[str] | None = None) -> list[Case]:
    """Every case of ``keys`` (default: all keys, checked equal in both registries), with
    the parameter variants of the quantizer table.

    Unknown keys raise ``ValueError`` naming the known ones.
    """
    known = check_registries()
    chosen = known if keys is None else list(keys)
    unknown = [k for k in chosen if k not in known]
    if unknown:
        raise ValueError(f"unknown quantizer(s) {unknown}; known: {', '.join(known)}")
    cases = []
    for key in chosen:
        try:
            param_sets = row(key).variants
        except KeyError:
            param_sets = ({},)
        for params in param_sets:
            cases.append(case_for(key, **dict(params)))
    return cases
