"""bitorch_jax: binary and low-bit quantizers for JAX and Flax, matching bitorch (PyTorch)."""

from bitorch_jax import quantizations

__all__ = ["quantizations"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Loaded on first use: bitorch_jax.optim (it needs optax) and bitorch_jax.summary, a callable
    # module (bitorch_jax.summary(model, *example_inputs)).
    if name in ("optim", "summary"):
        import importlib

        return importlib.import_module(f"bitorch_jax.{name}")
    raise AttributeError(f"module 'bitorch_jax' has no attribute {name!r}")
