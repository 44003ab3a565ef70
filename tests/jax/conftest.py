"""Fixtures of the bitorch_jax tests.

The scoped ``x64`` fixture (float64) is shared by all test folders: ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import bitorch_jax.quantizations as bq
from bitorch_jax.quantizations import config


@pytest.fixture
def clean_registry() -> Iterator[dict]:
    """Restore the quantization registry after a test that registers its own quantizers."""
    saved = bq._REGISTRY.snapshot()
    yield bq._REGISTRY
    bq._REGISTRY.restore(saved)


@pytest.fixture
def restore_config() -> Iterator[bq.QuantizationConfig]:
    """Restore the default hyperparameters after a test that changes them."""
    saved = (config.dorefa_bits, config.beta)
    yield config
    config.dorefa_bits, config.beta = saved
