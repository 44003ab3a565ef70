"""The layer case table and its runners now live in :mod:`parity_tests.layers`, shared by
``python -m parity_tests`` and these tests; this module re-exports them for old imports.

:attr:`parity_tests.layers.LayerCase.exact_forward` keeps its meaning: outputs are exact
sums (both quantizers 1-bit), so they must be equal bit for bit.
"""

from __future__ import annotations

from parity_tests.layers import (  # noqa: F401  (re-exports)
    CASE_IDS,
    CASES,
    HIGHEST,
    Case,
    LayerCase,
    from_flax_layout,
    jax_kwargs,
    jax_quantization,
    make_arrays,
    run_flax,
    run_jax,
    run_linen,
    run_nnx,
    run_torch,
    to_flax_layout,
    torch_layer,
    torch_quantization,
)
