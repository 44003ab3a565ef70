"""The mutation catalogue (``parity_tests/mutants.py``) stays applicable, and a fast subset
of it is caught by the parity command and by the tests.

The whole catalogue takes half an hour (``python -m parity_tests.mutation``, see
docs/MUTATIONS.md); CI runs only what is here:

* every mutant's snippet occurs exactly once in the current sources and the mutated file
  compiles (no runs, a fraction of a second): a code change that moves a snippet fails
  here, naming the mutant, instead of silently shrinking the catalogue;
* two quick mutants, one per framework, run end to end through the runner with a small
  parity command and a small test file, and must be caught by both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from parity_tests.mutants import CATEGORIES, MUTANTS, Mutant, by_id
from parity_tests.mutation import REPO, check

# Quick to run and caught by SPEC.md's worked values (tests/test_spec_worked_values.py):
# sign(0) = +1, and swishsign(5)'s gradient factor 5 at 0.
FAST = ("torch-sign-zero-negative", "jax-swishsign-beta-dropped")
FAST_PARITY_ARGS = "--quantizers sign swishsign --layers none --dtypes float32"
FAST_TESTS = "tests/test_spec_worked_values.py"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_applies_exactly_once(mutant: Mutant) -> None:
    status, detail = check(mutant, REPO)
    assert status == "ok", (
        f"mutant {mutant.id!r} is {status.upper()}: {detail}. Copy the current snippet of "
        f"{mutant.file} into parity_tests/mutants.py (or drop the mutant if the code is gone)."
    )
    for path in mutant.tests:
        assert (REPO / path.split("::", 1)[0]).exists(), f"{mutant.id}: no test path {path}"


def test_catalogue_is_complete() -> None:
    assert len(by_id()) == len(MUTANTS)  # unique ids
    counted = [m for m in MUTANTS if not m.equivalent]
    assert len(counted) >= 40
    assert set(Counter(m.category for m in counted)) == set(CATEGORIES)
    for m in MUTANTS:
        assert m.description and "\n" not in m.description, m.id
        assert m.equivalent is None or len(m.equivalent) > 20, f"{m.id}: say why it is equivalent"
        assert not (m.equivalent and m.command_blind), m.id
    # the command must be able to see almost everything
    blind = [m for m in counted if m.command_blind]
    assert len(blind) <= len(counted) // 10, [m.id for m in blind]


def test_fast_subset_is_caught(tmp_path) -> None:
    report = tmp_path / "mutation.json"
    cmd = [
        sys.executable,
        "-m",
        "parity_tests.mutation",
        "--only",
        ",".join(FAST),
        "--size",
        "2000",
        "--parity-args",
        FAST_PARITY_ARGS,
        "--tests",
        FAST_TESTS,
        "--jobs",
        "2",
        "--json",
        str(report),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    results = {r["id"]: r for r in json.loads(report.read_text())["results"]}
    assert sorted(results) == sorted(FAST)
    for r in results.values():
        assert r["status"] == "ok", r
        assert r["command_caught"], f"{r['id']}: not caught by the command\n{r['command_tail']}"
        assert r["tests_caught"], f"{r['id']}: not caught by the tests\n{r['tests_tail']}"
