"""Tests of the kernels added for verifiable work units."""
