"""The README's Python examples run, and print what their comments say.

Each ```python block runs in its own interpreter (a block may register a custom
quantizer; that must not leak into other tests). A line ``print(...)  # expected`` whose
comment looks like a value (``[``, ``tensor(``, ``Array(``, a number, ``True``/``False``)
is checked against what the block printed, whitespace-insensitively, in order.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
VALUE_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s*((?:\[|tensor\(|Array\(|-?\d|True|False).*)$")


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 6, f"found only {len(BLOCKS)} python blocks in README.md"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_and_prints_what_it_says(index: int) -> None:
    code = BLOCKS[index]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"README block {index} failed:\n{code}\n{done.stderr}"
    expected = [m.group(1) for line in code.splitlines() if (m := VALUE_COMMENT.match(line))]
    printed = [_squash(line) for line in done.stdout.splitlines()]
    position = 0
    for want in expected:
        want = _squash(want)
        while position < len(printed) and printed[position] != want:
            position += 1
        assert position < len(printed), (
            f"README block {index}: expected a printed line {want!r}; got:\n{done.stdout}"
        )
        position += 1
