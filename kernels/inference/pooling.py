"""Mean pooling over each sentence's real tokens, and L2 normalisation, as sentence-transformers.

Pooling is one small GEMM with a (sentences, tokens) matrix holding 1/length over each
sentence's rows of the packed batch: the same code for any layout, on NumPy and CuPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import Array

__all__ = ["l2_normalize", "mean_pool_matrix"]

# sentence-transformers' Normalize is torch.nn.functional.normalize: x / max(|x|, 1e-12).
_NORM_EPS = 1e-12


def mean_pool_matrix(lengths: Sequence[int], dtype: str) -> npt.NDArray[Any]:
    """(len(lengths), sum(lengths)) matrix P with P @ tokens = each sentence's mean token."""
    pool = np.zeros((len(lengths), sum(lengths)), dtype=dtype)
    start = 0
    for i, size in enumerate(lengths):
        pool[i, start : start + size] = 1.0 / size
        start += size
    return pool


def l2_normalize(x: Array, xp: Any) -> Array:
    """Rows of ``x`` scaled to unit length, in float32 whatever ``x``'s dtype."""
    x32 = x.astype(np.float32, copy=False)
    norms = xp.sqrt(xp.einsum("ij,ij->i", x32, x32))[:, None]
    return x32 / xp.maximum(norms, _NORM_EPS)
