"""bitorch: the PyTorch reference quantizers of bitorch-jax (``bitorch.quantizations``).

It needs PyTorch, which is the ``torch`` extra: ``pip install "bitorch-jax[torch]"``. The JAX
port, ``bitorch_jax``, works without it.
"""

try:
    import torch as _torch  # noqa: F401  (only checks that PyTorch is there)
except ImportError as _exc:
    raise ImportError(
        "bitorch is the PyTorch reference and needs PyTorch, which is not installed (or "
        'failed to import). Install the torch extra: pip install "bitorch-jax[torch]" '
        '(from a checkout: pip install -e ".[torch]"). The JAX port, bitorch_jax, works '
        "without torch.",
        name="torch",
    ) from _exc

from bitorch import layers, quantizations
from bitorch.config import (
    Config,
    add_config_args,
    apply_args_to_configuration,
    config_from_name,
    config_names,
    configs_by_name,
    register_custom_config,
)

__all__ = [
    "layers",
    "quantizations",
    "Config",
    "add_config_args",
    "apply_args_to_configuration",
    "config_from_name",
    "config_names",
    "configs_by_name",
    "register_custom_config",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Loaded on first use: bitorch.optim and bitorch.summary, a callable
    # module (bitorch.summary(model, *example_inputs)).
    if name in ("optim", "summary"):
        import importlib

        return importlib.import_module(f"bitorch.{name}")
    raise AttributeError(f"module 'bitorch' has no attribute {name!r}")
