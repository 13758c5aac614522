"""Tests of reading and validating contributed datasets (kernels.data)."""
