"""parity_tests: proof that bitorch_jax (JAX) matches bitorch (PyTorch).

Run ``python -m parity_tests`` (or ``bitorch-parity``) for the whole table, or compare
your own pair of quantizers::

    >>> import parity_tests, bitorch.quantizations as bt, bitorch_jax.quantizations as bj
    >>> print(parity_tests.compare(bt.Sign(), bj.Sign(), shape=(64,), boundaries="zero"))
    ... # doctest: +ELLIPSIS
    quantizer  params  dtype    device  max fwd diff  max grad diff  boundary flips  verdict
    ...

The suite compares against PyTorch, so it needs the ``torch`` extra
(``pip install "bitorch-jax[torch]"``); without torch, importing this package raises an
:class:`ImportError` that says so. ``bitorch_jax`` and ``bitorch_common`` need no torch.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (only checks that PyTorch is there)
except ImportError as _exc:
    raise ImportError(
        "parity_tests compares bitorch_jax with the PyTorch reference and needs PyTorch, "
        "which is not installed (or failed to import). Install the torch extra: "
        'pip install "bitorch-jax[torch]" (from a checkout: pip install -e ".[torch]").',
        name="torch",
    ) from _exc

from bitorch_common.tolerances import FLIP_ULPS, grad_tolerance, layer_tolerance
from parity_tests.api import compare, run_cases
from parity_tests.cases import Case, registry_cases
from parity_tests.models import compare_models  # whole networks (``... models``)
from parity_tests.report import ParityReport, ParityResult

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
    "compare_models",
]
