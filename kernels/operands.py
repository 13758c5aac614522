"""Seeded small-integer GEMM operands, generated elementwise from a counter so any rows can be made.

A work unit multiplies ``A`` (m x k) by ``Bt.T`` where ``Bt`` is n x k: both operands are
"row" matrices, so the verifier regenerates the rows of A and the columns of B = Bt.T a
sampled block needs and nothing else. Row ``r`` of a matrix with key ``K`` is made of
``2 * k / 64`` 64-bit words ``h_j = splitmix64(K + (r * 2k/64 + j + 1) * gamma)``: the first
``k/64`` words hold the sign bits, the next ``k/64`` the magnitude bits of the row's
elements (bit ``t % 64`` of word ``t // 64``). Element value::

    v = (2 * sign - 1) * (1 + big)      in {-2, -1, 1, 2}

Exactness: values and their products (|.| <= 4) are exact in fp16, bf16, TF32 and fp32, and
every partial sum of a length-k dot product is an integer of magnitude <= 4k, exact in fp32
while 4k <= 2**24. So any GEMM that accumulates in fp32 (cuBLAS with TF32 on or off, CPU
BLAS in any summation order) gives the exact integer product, and so does fp16 with fp16
accumulation over chunks of k <= 512 (sums <= 2048 = 2**11). The key is not secret: the
node needs it. The generator only has to make C unstructured; secrecy lives in the challenge.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import Array

__all__ = ["K_ALIGN", "host_rows", "operand_key", "operand_rows"]

K_ALIGN = 64  # k is a multiple of one 64-bit word of bits
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def operand_key(seed: bytes, which: str) -> int:
    """The 64-bit generator key of operand ``which`` ("A" or "Bt") of the unit with ``seed``."""
    if which not in ("A", "Bt"):
        raise ValueError(f"operand must be 'A' or 'Bt', got {which!r}")
    digest = hashlib.sha256(b"OTG1" + seed + which.encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _words(xp: Any, key: int, rows: Array, k: int) -> Array:
    """The (len(rows), 2k/64) uint64 words of the given rows: splitmix64 of the counter."""
    per_row = 2 * (k // K_ALIGN)
    u = xp.uint64
    ctr = rows.astype(u)[:, None] * u(per_row) + xp.arange(1, per_row + 1, dtype=u)[None, :]
    x = ctr * u(_GAMMA) + u(key)
    x = (x ^ (x >> u(30))) * u(_MIX1)
    x = (x ^ (x >> u(27))) * u(_MIX2)
    return x ^ (x >> u(31))


def operand_rows(xp: Any, key: int, rows: Array, k: int, dtype: Any = None) -> Array:
    """Rows ``rows`` (an integer array on ``xp``) of the operand with ``key``: (len, k) values.

    Written on the array module, so the node makes its panels on the device. ``dtype``
    defaults to float32; any float type that holds {-2, -1, 1, 2} works.
    """
    _check_k(k)
    out_dtype = xp.float32 if dtype is None else dtype
    h = _words(xp, key, rows, k)
    # Bytes first, then bits, so the temporaries are one byte per element, not eight.
    shifts8 = xp.arange(0, 64, 8, dtype=xp.uint64)
    by = ((h[:, :, None] >> shifts8[None, None, :]) & xp.uint64(0xFF)).astype(xp.uint8)
    bits = (by[..., None] >> xp.arange(8, dtype=xp.uint8)) & xp.uint8(1)
    bits = bits.reshape(len(rows), 2, k).astype(xp.int8)
    # Array first in every operation: CuPy arrays then never meet a NumPy scalar's operator.
    values = (bits[:, 0] * xp.int8(2) - xp.int8(1)) * (bits[:, 1] + xp.int8(1))
    return values.astype(out_dtype)


def host_rows(key: int, rows: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.float32]:
    """The same values as :func:`operand_rows` on NumPy, faster (the coordinator's path)."""
    _check_k(k)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), k), dtype=np.float32)
    # A few rows at a time so every temporary stays in cache (this is memory-bound).
    step = max(1, (1 << 18) // k)
    for start in range(0, len(rows), step):
        h = _words(np, key, rows[start : start + step], k)
        bits = np.unpackbits(h.astype("<u8").view(np.uint8), axis=-1, bitorder="little")
        bits = bits.reshape(len(h), 2, k).view(np.int8)
        values = (np.int8(2) * bits[:, 0] - np.int8(1)) * (np.int8(1) + bits[:, 1])
        out[start : start + len(h)] = values
    return out


def _check_k(k: int) -> None:
    if k < K_ALIGN or k % K_ALIGN:
        raise ValueError(f"k must be a positive multiple of {K_ALIGN}, got {k}")
