"""Compute kernels written once against the array module (CuPy on a GPU, NumPy elsewhere)."""
