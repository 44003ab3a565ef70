"""parity_tests: proof that bitorch_jax (JAX) matches bitorch (PyTorch)."""
