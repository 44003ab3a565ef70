"""Worked examples: one binary network trained with bitorch (PyTorch) and bitorch_jax (Flax)."""
