"""Fixtures shared by every test folder.

float64 needs ``jax_enable_x64``. It is switched on only inside the ``x64`` fixture, with
``jax.enable_x64`` (a context manager), never globally at import: every other test runs
in JAX's default 32-bit mode, and the fixture checks that nothing leaks out.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import pytest


@pytest.fixture
def x64() -> Iterator[None]:
    """Enable 64-bit JAX types for one test only."""
    with jax.enable_x64(True):
        yield
    assert not jax.config.jax_enable_x64, "x64 leaked out of the x64 fixture"
