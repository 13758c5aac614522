"""The network's GEMM task on the node: multiply a task's seeded operands, commit to the product."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.backend import Array, Backend
from kernels.freivalds import commit
from kernels.gemm import check_dtype, gemm, gemm_flops, make_operands


@dataclass(frozen=True)
class WorkProduct:
    """One network work unit's answer: the product's bytes and the commitment to them."""

    result: bytes  # row-major, little-endian, in the task's dtype
    commitment: str
    elapsed_s: float
    tflops: float


def run_work_unit(backend: Backend, n: int, dtype: str, seed: int) -> WorkProduct:
    """Multiply the task's seeded operands and commit to the product (the node's side)."""
    check_dtype(dtype)
    a, b = make_operands(backend, n, dtype, seed)
    holder: list[Array] = []
    elapsed = backend.time_call(lambda: holder.append(gemm(backend, a, b)))
    host = backend.to_host(holder[0]).astype(np.dtype(dtype).newbyteorder("<"), copy=False)
    return WorkProduct(
        result=np.ascontiguousarray(host).tobytes(),
        commitment=commit(host),
        elapsed_s=elapsed,
        tflops=gemm_flops(n) / max(elapsed, 1e-9) / 1e12,
    )
