"""A JAX-only install: torch is the ``torch`` extra, and everything else works without it.

- Without torch (a child interpreter where ``import torch`` fails as if it were not
  installed), ``bitorch_jax`` imports and its quantizers and linen/NNX layers run, forward
  and ``jax.grad``, and torch is never imported; ``bitorch``, the torch functions of
  ``bitorch_jax.convert``, ``parity_tests``, ``python -m parity_tests`` and
  ``bitorch-parity`` fail with an ImportError that names the extra. Run with ``-s`` to see
  the messages a user gets.
- The metadata lists torch only under the ``torch`` extra (and ``dev`` pulls that extra in).
- A built wheel holds ``bitorch``, ``bitorch_jax``, ``bitorch_common`` and ``parity_tests``,
  and no top-level ``examples`` or ``benchmarks`` package.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRA = 'pip install "bitorch-jax[torch]"'

# Loaded as sitecustomize in each child: torch and torch.* import as if not installed.
NO_TORCH = """\
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
"""

JAX_ONLY = """\
import json
import sys

try:
    import torch  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the torch blocker did not work")

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import bitorch_jax
import bitorch_jax.quantizations as bq
from bitorch_jax.layers import linen as bl, nnx as bnnx

x = jnp.array([-1.5, -0.3, 0.0, 0.3, 1.5])
assert bq.sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0], bq.sign(x)
grad = jax.grad(lambda v: bq.approx_sign(v).sum())(x)
np.testing.assert_allclose(np.asarray(grad), [0.0, 1.4, 2.0, 1.4, 0.0], rtol=1e-6)
q = bq.quantization_from_name("inputdorefa")(bits=2)
np.testing.assert_allclose(np.asarray(jax.jit(q)(jnp.array([0.2, 0.5, 0.9]))),
                           [1 / 3, 2 / 3, 1.0], rtol=1e-6)

inputs = jax.random.normal(jax.random.key(0), (4, 8))
dense = bl.QDense(3)
variables = dense.init(jax.random.key(1), inputs)
out = dense.apply(variables, inputs)
assert out.shape == (4, 3)
kernel_grad = jax.grad(lambda p: dense.apply({"params": p}, inputs).sum())(variables["params"])
assert kernel_grad["kernel"].shape == (8, 3)

layer = bnnx.QLinear(8, 3, rngs=nnx.Rngs(0))
act = bnnx.QActivation("approxsign", gradient_cancellation_threshold=1.0)
out = layer(act(inputs))
assert out.shape == (4, 3)
assert set(np.unique(np.asarray(act(inputs)))) <= {-1.0, 1.0}
nnx_grad = nnx.grad(lambda m: m(inputs).sum())(layer)
assert nnx_grad.kernel[...].shape == (8, 3)

assert "torch" not in sys.modules, "a JAX-only import pulled in torch"
assert not [m for m in sys.modules if m.startswith("torch.")]

errors = {}
try:
    import bitorch  # noqa: F401
except ImportError as error:
    errors["import bitorch"] = str(error)

import bitorch_jax.convert as convert

assert convert.nhwc_flatten_kernel(np.zeros((12, 2)), (3, 2, 2)).shape == (12, 2)
for name, call in [
    ("torch_to_linen", lambda: convert.torch_to_linen({})),
    ("nnx_to_torch", lambda: convert.nnx_to_torch(layer)),
    ("load_torch_state_dict", lambda: convert.load_torch_state_dict("missing.pt")),
]:
    try:
        call()
    except ImportError as error:
        errors[f"bitorch_jax.convert.{name}(...)"] = str(error)

try:
    import parity_tests  # noqa: F401
except ImportError as error:
    errors["import parity_tests"] = str(error)

assert "torch" not in sys.modules
print(json.dumps(errors))
"""


def _no_torch_env(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TORCH)
    path = os.pathsep.join([str(blocker), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path, "JAX_PLATFORMS": "cpu"}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_jax_only_works_and_torch_parts_name_the_extra(tmp_path: Path) -> None:
    env = _no_torch_env(tmp_path)
    done = _run([sys.executable, "-c", JAX_ONLY], env)
    assert done.returncode == 0, done.stdout + done.stderr
    errors = json.loads(_last_line(done.stdout))
    assert set(errors) == {
        "import bitorch",
        "bitorch_jax.convert.torch_to_linen(...)",
        "bitorch_jax.convert.nnx_to_torch(...)",
        "bitorch_jax.convert.load_torch_state_dict(...)",
        "import parity_tests",
    }, errors

    commands = {"python -m parity_tests": [sys.executable, "-m", "parity_tests"]}
    script = Path(sys.executable).with_name("bitorch-parity")
    if script.exists():
        commands["bitorch-parity"] = [str(script)]
    for label, args in commands.items():
        done = _run([*args, "--quantizers", "sign", "--size", "10"], env)
        assert done.returncode != 0, f"{label} ran without torch:\n{done.stdout}"
        last = _last_line(done.stderr)
        assert last.startswith("ImportError: "), f"{label}:\n{done.stderr}"
        errors[label] = last.removeprefix("ImportError: ")

    print()
    for label, text in errors.items():
        print(f"without torch, {label}:\n    ImportError: {text}")
        assert EXTRA in text, f"{label}: the message does not name the extra: {text}"
        assert "PyTorch" in text


def test_metadata_lists_torch_only_under_the_torch_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> list[str]:
        return [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements]

    assert "torch" not in names(project["dependencies"])
    assert {"numpy", "ml_dtypes", "jax", "flax"} <= set(names(project["dependencies"]))
    extras = project["optional-dependencies"]
    assert names(extras["torch"]) == ["torch"]
    for extra, requirements in extras.items():
        if extra != "torch":
            assert "torch" not in names(requirements), f"torch listed under [{extra}]"
    assert any(re.search(r"bitorch-jax\[[^\]]*\btorch\b", r) for r in extras["dev"])
    assert project["scripts"]["bitorch-parity"] == "parity_tests.__main__:main"

    try:
        installed = importlib.metadata.requires("bitorch-jax") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("bitorch-jax is not installed in this environment")
    torch_lines = [r for r in installed if names([r]) == ["torch"]]
    assert torch_lines, f"installed metadata lacks torch: {installed}"
    for line in torch_lines:
        assert re.search(r"""extra\s*==\s*["']torch["']""", line), (
            f"installed metadata lists torch outside the torch extra: {line!r} "
            "(reinstall: pip install --no-deps -e .)"
        )


def test_wheel_holds_the_four_packages_only(tmp_path: Path) -> None:
    # Built from a copy, so the build leaves no build/ or *.egg-info in the work tree.
    build = tmp_path / "src"
    build.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, build / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "out")
    for name in ("bitorch", "bitorch_jax", "bitorch_common", "parity_tests", "examples",
                 "benchmarks", "tests"):  # fmt: skip
        shutil.copytree(ROOT / name, build / name, ignore=skip)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(build), "-w", str(tmp_path / "wheels")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {_last_line(done.stderr)}")
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "wheels").glob("bitorch_jax-*.whl")
    files = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in files if "/" in name}
    packages = {t for t in top if not t.endswith((".dist-info", ".data"))}
    assert packages == {"bitorch", "bitorch_jax", "bitorch_common", "parity_tests"}, packages
    assert "bitorch_jax/convert.py" in files
    assert "bitorch_common/__init__.py" in files
    metadata = next(n for n in files if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    torch_lines = [line for line in text.splitlines() if line.startswith("Requires-Dist: torch")]
    assert torch_lines and all('extra == "torch"' in line for line in torch_lines), torch_lines
