"""The case table comes from both registries, and they must hold the same keys."""

from __future__ import annotations

import pytest

import bitorch.quantizations as bt
import bitorch_jax.quantizations as bj
from bitorch_common.quantizers import rows
from parity_tests.__main__ import main
from parity_tests.cases import (
    RegistryMismatch,
    check_registries,
    registry_cases,
    registry_keys,
)

CASES = registry_cases()


def test_both_registries_have_the_same_keys():
    torch_keys, jax_keys = registry_keys()
    assert torch_keys == jax_keys, (
        f"only in bitorch: {sorted(set(torch_keys) - set(jax_keys))}; "
        f"only in bitorch_jax: {sorted(set(jax_keys) - set(torch_keys))}"
    )


def test_case_table_covers_every_registered_quantizer():
    torch_keys, jax_keys = registry_keys()
    assert {c.name for c in CASES} == set(torch_keys) | set(jax_keys)


def test_parameter_variants_are_in_the_table():
    def values(key, param):
        return sorted(c.params[param] for c in CASES if c.name == key)

    for spec in rows():
        for name in {p for params in spec.variants for p in params}:
            assert values(spec.key, name) == sorted(p[name] for p in spec.variants)
    assert values("inputdorefa", "bits") == [1, 2, 3, 4, 8, 12, 16, 24]
    assert values("swishsign", "beta") == [1.0, 5.0, 10.0]


def test_each_case_uses_the_classes_of_its_key():
    for case in CASES:
        assert type(case.torch_fn) is bt.quantization_from_name(case.name)
        assert type(case.jax_fn) is bj.quantization_from_name(case.name)
        for k, v in case.params.items():
            assert getattr(case.torch_fn, k) == v and getattr(case.jax_fn, k) == v


def test_a_key_missing_on_one_side_is_caught(monkeypatch, capsys):
    real = bj.quantization_names
    monkeypatch.setattr(bj, "quantization_names", lambda: [*real(), "onlyinjax"])
    with pytest.raises(RegistryMismatch, match="only in bitorch_jax: \\['onlyinjax'\\]"):
        check_registries()
    with pytest.raises(RegistryMismatch):
        registry_cases()
    assert main(["--size", "10", "--quiet"]) == 1
    assert "onlyinjax" in capsys.readouterr().err


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown quantizer"):
        registry_cases(["sign", "nope"])
