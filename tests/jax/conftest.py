"""Fixtures of the bitorch_jax tests.

float64 needs ``jax_enable_x64``. It is switched on only inside the ``x64`` fixture, with
``jax.enable_x64`` (a context manager), never globally at import: every other test runs
in JAX's default 32-bit mode, and the fixture checks that nothing leaks out.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import pytest

import bitorch_jax.quantizations as bq
from bitorch_jax.quantizations import config


@pytest.fixture
def x64() -> Iterator[None]:
    """Enable 64-bit JAX types for one test only."""
    with jax.enable_x64(True):
        yield
    assert not jax.config.jax_enable_x64, "x64 leaked out of the x64 fixture"


@pytest.fixture
def clean_registry() -> Iterator[dict]:
    """Restore the quantization registry after a test that registers its own quantizers."""
    saved = dict(bq._REGISTRY)
    yield bq._REGISTRY
    bq._REGISTRY.clear()
    bq._REGISTRY.update(saved)


@pytest.fixture
def restore_config() -> Iterator[bq.QuantizationConfig]:
    """Restore the default hyperparameters after a test that changes them."""
    saved = (config.dorefa_bits, config.beta)
    yield config
    config.dorefa_bits, config.beta = saved
