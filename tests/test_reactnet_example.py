"""``examples/reactnet_digits.py``: a few float64 steps of the ReActNet twins (torch and
Flax NNX, Bop + Adam) must give the same loss curve to rounding and the same binary
kernels, print both summaries and ``nnx.tabulate``, and write the CSV (and PNG)."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the example needs scikit-learn's digits ([examples] extra)")

from examples import reactnet_digits  # noqa: E402

STEPS = 6


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    out = tmp_path_factory.mktemp("reactnet")
    with contextlib.redirect_stdout(io.StringIO()) as buffer:
        code = reactnet_digits.main(["--steps", str(STEPS), "--out", str(out), "--every", "1"])
    return code, out, buffer.getvalue()


def test_float64_curves_agree_and_files_are_written(example_run: tuple) -> None:
    code, out, text = example_run
    assert code == 0, text[-2000:]
    with (out / "losses.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    torch_losses = np.array([float(r["loss_torch"]) for r in rows])
    jax_losses = np.array([float(r["loss_jax"]) for r in rows])
    rel = np.abs(torch_losses - jax_losses) / np.abs(torch_losses)
    assert rel.max() <= reactnet_digits.TOLERANCE_FLOAT64, rel
    np.testing.assert_array_equal(rel, [float(r["rel_diff"]) for r in rows])
    assert torch_losses[-1] < torch_losses[0]  # it trains
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "plot: skipped" in text
    else:
        assert (out / "losses.png").stat().st_size > 1000
    assert "OK: relative loss difference" in text
    assert "the JAX binary kernels are equal to torch's" in text


def test_summaries_and_tabulate_are_printed(example_run: tuple) -> None:
    _, _, text = example_run
    for heading in ("bitorch.summary (torch)", "bitorch_jax.summary (Flax NNX)", "nnx.tabulate"):
        assert heading in text
    # the RSign/RPReLU parameters count as full precision (64-bit here), the kernels as 1-bit
    assert text.count("| blocks.0.sign | RSign ") == 2
    assert text.count("Total params                 5,242") == 2
    assert text.count("  1-bit                      4,608") == 2
    assert text.count("MACs binary / FP             294,912 / 9,376") == 2
    assert "Total Parameters: 5,242" in text  # nnx.tabulate agrees on the count
    assert "\x1b[" not in text  # no terminal colour codes


def test_a_loose_curve_fails_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The check can fail: a torch run that differs (Adam's learning rate 1% higher for
    torch only; the JAX step stays as compiled by the run above) must give exit status 1."""
    original = reactnet_digits._torch_optimizers

    def other_optimizers(net: object) -> list:
        optimizers = original(net)
        for group in optimizers[1].param_groups:
            group["lr"] *= 1.01
        return optimizers

    monkeypatch.setattr(reactnet_digits, "_torch_optimizers", other_optimizers)
    with contextlib.redirect_stdout(io.StringIO()) as buffer:
        code = reactnet_digits.main(["--steps", str(STEPS), "--out", str(tmp_path)])
    assert code == 1, buffer.getvalue()[-1500:]
    assert "FAIL: relative loss difference" in buffer.getvalue()
