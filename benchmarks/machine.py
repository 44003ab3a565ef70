"""What the benchmark ran on: CPU model, cores, memory, load, library versions, settings.

>>> info = machine_info()
>>> "cpu_model" in info and "versions" in info
True
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from typing import Any

__all__ = ["machine_info", "load_average", "MALLOC_REUSE_TUNABLES"]

# glibc settings under which freed memory is reused instead of returned to the OS: one
# arena (worker threads allocate from the main heap), no mmap for large blocks, no trim.
MALLOC_REUSE_TUNABLES = (
    "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of the machine and the software versions."""
    import flax
    import jax
    import jaxlib
    import numpy
    import torch

    cpu = _lscpu()
    jax_devices = [str(d) for d in jax.devices()]
    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu.get("Model name", platform.processor() or "unknown"),
        "cpu_family_model_stepping": "/".join(
            cpu.get(k, "?") for k in ("CPU family", "Model", "Stepping")
        ),
        "avx512": "avx512f" in cpu.get("Flags", "").split(),
        "cpus": os.cpu_count(),
        "threads_per_core": cpu.get("Thread(s) per core"),
        "l3_cache": cpu.get("L3 cache"),
        "hypervisor": cpu.get("Hypervisor vendor"),
        "memory_gib": _mem_total_gib(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "torch": torch.__version__,
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "numpy": numpy.__version__,
        },
        "jax_devices": jax_devices,
        "torch_threads": torch.get_num_threads(),
        "env": {
            k: os.environ.get(k)
            for k in ("GLIBC_TUNABLES", "XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
        "load_average": load_average(),
    }
