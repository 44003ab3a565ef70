"""Fixtures of the layer tests (bitorch layers vs bitorch_jax layers, conversion, example).

float64 needs ``jax_enable_x64``; it is switched on only inside the ``dtype`` fixture's
``float64`` case and the ``x64`` fixture, with ``jax.enable_x64`` (a context manager),
never globally at import.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import pytest
import torch


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Iterator[str]:
    """``"float32"`` or ``"float64"``; the latter runs inside a scoped ``jax.enable_x64``."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield request.param
        assert not jax.config.jax_enable_x64, "x64 leaked out of the dtype fixture"
    else:
        yield request.param


@pytest.fixture
def gpu() -> Iterator[tuple[torch.device, jax.Device]]:
    """torch's CUDA device and JAX's GPU, TF32 off in torch; skips with a reason if absent."""
    if not torch.cuda.is_available():
        pytest.skip("no GPU: torch.cuda.is_available() is False (GPU layer parity not run)")
    try:
        jax_gpu = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("no GPU: JAX has no 'gpu' backend (GPU layer parity not run)")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield torch.device("cuda"), jax_gpu
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
