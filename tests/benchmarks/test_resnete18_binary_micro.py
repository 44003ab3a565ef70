"""The ``--explain`` micro-benchmark of one binary convolution in
``benchmarks.resnete18_step``, at tiny sizes: every variant is timed, q_conv is compared
bit for bit with its former (VALID) formulation, and the finding sentence is built from
the measured numbers only."""

from __future__ import annotations

import math

import pytest

from benchmarks.resnete18_step import (
    _binary_conv_micro_jax,
    _binary_conv_micro_torch,
    _binary_micro_finding,
    _findings,
    _ms,
)

JAX_VARIANTS = {
    "float_pad_in_conv",
    "float_pad_-1_valid",
    "sign_pad_in_conv",
    "binary_pad_-1_valid",
    "q_conv",
}


@pytest.fixture(scope="module")
def micro() -> tuple[dict, dict]:
    import jax
    import torch

    jax_micro = _binary_conv_micro_jax(2, 8, jax.devices("cpu")[0], 1)
    torch_micro = _binary_conv_micro_torch(2, 8, torch.device("cpu"), 1)
    return jax_micro, torch_micro


def _finite_positive(values: dict) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values.values())


def test_every_variant_is_timed_and_q_conv_matches_the_valid_form(micro) -> None:
    jax_micro, torch_micro = micro
    assert "errors" not in jax_micro
    assert set(jax_micro["fwd_bwd_ms"]) == JAX_VARIANTS
    assert set(jax_micro["forward_ms"]) == JAX_VARIANTS | {"pad_-1_only"}
    assert _finite_positive(jax_micro["fwd_bwd_ms"]) and _finite_positive(jax_micro["forward_ms"])
    assert jax_micro["q_conv_vs_valid_bit_identical"] == {"y": True, "dx": True, "dw": True}
    for name in ("binary_pad_-1_valid", "q_conv"):
        convs = jax_micro["hlo_convolutions"][name]
        assert len(convs) == 3 and all(isinstance(c["ynnpack"], bool) for c in convs)
    # q_conv's forward convolution is padded (the cropped ring), the VALID form's is not
    assert "pad=" in jax_micro["hlo_convolutions"]["q_conv"][0]["window"]
    assert set(torch_micro["fwd_bwd_ms"]) == {"float_pad_in_conv", "float_pad_-1_valid", "QConv2d"}
    assert _finite_positive(torch_micro["fwd_bwd_ms"])


def test_the_finding_is_computed_from_the_measured_numbers(micro) -> None:
    jax_micro, torch_micro = micro
    settings = {"batch": 2, "image": 8, "torch_threads": None}
    text = _binary_micro_finding(jax_micro, torch_micro, {"settings": settings})
    fb, tfb = jax_micro["fwd_bwd_ms"], torch_micro["fwd_bwd_ms"]
    assert f"padding of -1) {_ms(fb['q_conv'])}" in text
    assert f"former formulation) {_ms(fb['binary_pad_-1_valid'])}" in text
    assert f"VALID {_ms(fb['binary_pad_-1_valid'] - fb['sign_pad_in_conv'])}" in text
    assert f"QConv2d {_ms(tfb['QConv2d'])}" in text
    assert _ms(123.4) == "123 ms" and _ms(1.234) == "1.2 ms" and _ms(None) == "- ms"
    assert f"{fb['binary_pad_-1_valid'] / fb['q_conv']:.2f}x as fast as the VALID" in text
    assert "output, input and weight gradients bit-identical." in text
    assert _binary_micro_finding(None, torch_micro, {"settings": settings}) is None
    runs = [
        {"ok": True, "framework": fw, "variant": "binary", "torch_threads_setting": None,
         "step_median_s": 1.0, "binary_conv_micro": m}
        for fw, m in (("jax", jax_micro), ("torch_eager", torch_micro))
    ]  # fmt: skip
    result = {"settings": settings, "runs": runs, "ratios": {}, "machine": {}}
    assert text in _findings(result)
