"""parity_tests: proof that bitorch_jax (JAX) matches bitorch (PyTorch).

Run ``python -m parity_tests`` (or ``bitorch-parity``) for the whole table, or compare
your own pair of quantizers::

    >>> import parity_tests, bitorch.quantizations as bt, bitorch_jax.quantizations as bj
    >>> print(parity_tests.compare(bt.Sign(), bj.Sign(), shape=(64,), boundaries="zero"))
    ... # doctest: +ELLIPSIS
    quantizer  params  dtype    device  max fwd diff  max grad diff  boundary flips  verdict
    ...

The public names are loaded lazily, so ``from bitorch_common.oracles import oracle`` does
not import torch or JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "compare",
    "run_cases",
    "Case",
    "registry_cases",
    "ParityReport",
    "ParityResult",
    "grad_tolerance",
    "layer_tolerance",
    "FLIP_ULPS",
]

_WHERE = {
    "compare": "parity_tests.api",
    "run_cases": "parity_tests.api",
    "Case": "parity_tests.cases",
    "registry_cases": "parity_tests.cases",
    "ParityReport": "parity_tests.report",
    "ParityResult": "parity_tests.report",
    "grad_tolerance": "bitorch_common.tolerances",
    "layer_tolerance": "bitorch_common.tolerances",
    "FLIP_ULPS": "bitorch_common.tolerances",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'parity_tests' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
