"""Tests of the compute kernels: benchmarks, verifiable work units, inference."""
