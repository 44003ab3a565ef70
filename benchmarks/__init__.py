"""Benchmarks of bitorch (PyTorch) and bitorch_jax (JAX): speed, memory floor, residuals.

Run ``python -m benchmarks --help``. The parts: :mod:`benchmarks.quantizers`
(forward+backward time of every quantizer in torch eager, torch.compile and jax.jit,
next to a measured memory floor, :mod:`benchmarks.floor`), :mod:`benchmarks.memory`
(bytes saved for backward), :mod:`benchmarks.training` (a training step of the example
network), :mod:`benchmarks.report` (tables, targets, Markdown).
"""
