"""Re-registering a quantizer, in both frameworks (``bitorch_common.registry.Registry``).

A notebook cell (or a module) run a second time defines a new class object with the same
module and qualified name: it replaces the old one with a ``UserWarning``. The same class
object again changes nothing, silently; a different class under a taken name is a
``ValueError`` naming both. The registry's ``snapshot()``/``restore()`` put it back.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import jax.numpy as jnp
import pytest

import bitorch.quantizations as bt
import bitorch_jax.quantizations as bj

# One notebook cell per framework: run it twice and it defines ``Cell`` twice, each time a
# new class object with module ``notebook`` and qualified name ``Cell``.
CELLS = {
    "torch": """
from bitorch.quantizations import Quantization, register_custom_quantization

@register_custom_quantization
class Cell(Quantization):
    name = "test_cell"
    bit_width = 8

    def quantize(self, x):
        return x.floor()
""",
    "jax": """
import jax.numpy as jnp
from bitorch_jax.quantizations import Quantization, register_custom_quantization, straight_through

@register_custom_quantization
class Cell(Quantization):
    name = "test_cell"
    bit_width = 8
    offset: float = 0.0

    def quantize(self, x):
        return straight_through(jnp.floor)(x + self.offset)
""",
}

PACKAGES: dict[str, ModuleType] = {"torch": bt, "jax": bj}


def run_cell(framework: str, module: str = "notebook") -> type:
    """Run the framework's cell as the module ``module``; return the class it defined."""
    namespace: dict[str, Any] = {"__name__": module}
    # dont_inherit: compiled as a notebook cell is, without this file's __future__ import
    code = compile(CELLS[framework], f"<cell in {module}>", "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102
    return namespace["Cell"]


@pytest.fixture(params=["torch", "jax"])
def framework(request: pytest.FixtureRequest) -> Iterator[str]:
    """The framework under test; its registry is checked to be restored afterwards."""
    registry = PACKAGES[request.param]._REGISTRY
    before = registry.names()
    saved = registry.snapshot()
    try:
        yield request.param
    finally:
        registry.restore(saved)
        assert registry.names() == before and "test_cell" not in registry


def test_the_same_class_again_is_silent(framework: str) -> None:
    pkg = PACKAGES[framework]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        cls = run_cell(framework)
        assert pkg.register_custom_quantization(cls) is cls
        assert pkg.register_custom_quantization(cls) is cls
    assert pkg.quantization_from_name("test_cell") is cls
    assert pkg.quantization_names().count("test_cell") == 1


def test_a_cell_run_twice_replaces_the_class_with_a_warning(framework: str) -> None:
    pkg = PACKAGES[framework]
    first = run_cell(framework)
    with pytest.warns(UserWarning) as record:
        second = run_cell(framework)
    assert first is not second
    assert (first.__module__, first.__qualname__) == (second.__module__, second.__qualname__)
    (warning,) = record
    assert str(warning.message) == (
        "quantization name 'test_cell': replacing notebook.Cell with a new definition of the "
        "same class (was the defining code run twice?)"
    )
    assert pkg.quantization_from_name("test_cell") is second
    assert pkg.quantization_names().count("test_cell") == 1
    assert type(pkg._REGISTRY.resolve("test_cell", "test")) is second  # built by name


def test_a_class_defined_twice_in_a_function_is_replaced(framework: str) -> None:
    """The same holds for a class defined inside a function called twice: same qualified
    name (``...<locals>.define.<locals>.Cell``), a new class object each call."""
    pkg = PACKAGES[framework]

    def define() -> type:
        if framework == "torch":

            class Cell(bt.Quantization):
                name = "test_cell"

                def quantize(self, x: Any) -> Any:
                    return x.floor()

        else:

            class Cell(bj.Quantization):  # type: ignore[no-redef]
                name = "test_cell"

                def quantize(self, x: Any) -> Any:
                    return bj.straight_through(jnp.floor)(x)

        return pkg.register_custom_quantization(Cell)

    first = define()
    with pytest.warns(UserWarning, match=r"replacing .*<locals>\.define\.<locals>\.Cell with"):
        second = define()
    assert pkg.quantization_from_name("test_cell") is second is not first


def test_a_different_class_under_a_taken_name_is_refused(framework: str) -> None:
    pkg = PACKAGES[framework]
    first = run_cell(framework)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as info:
            run_cell(framework, module="other_notebook")
    assert str(info.value) == (
        "quantization name 'test_cell' is already registered to notebook.Cell; "
        "other_notebook.Cell cannot take it (give it another name)"
    )
    assert pkg.quantization_from_name("test_cell") is first
    # a built-in name is refused the same way, and the built-in stays
    builtin = pkg.quantization_from_name("sign")
    with pytest.raises(ValueError, match=r"'sign' is already registered to .*Sign; .*Cell"):
        pkg.register_custom_quantization(type("Cell", (first,), {"name": "sign"}))
    assert pkg.quantization_from_name("sign") is builtin


def test_restore_removes_what_a_test_registered(framework: str) -> None:
    registry = PACKAGES[framework]._REGISTRY
    saved = registry.snapshot()
    run_cell(framework)
    assert "test_cell" in registry
    registry.restore(saved)
    assert "test_cell" not in registry
    assert registry.snapshot() == saved
    # the snapshot is a copy both ways: registering after a restore does not change it
    run_cell(framework)
    registry.restore(saved)
    assert "test_cell" not in registry and "test_cell" not in saved
