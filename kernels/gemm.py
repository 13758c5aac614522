"""Dense matrix multiply (GEMM): seeded operands, the product, and a throughput benchmark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.backend import Array, Backend, BenchmarkCancelled, timed_trials

__all__ = [
    "GEMM_DTYPES",
    "BenchmarkCancelled",
    "GemmResult",
    "benchmark_gemm",
    "check_dtype",
    "gemm",
    "gemm_flops",
    "make_operands",
]

GEMM_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class GemmResult:
    """Median time and throughput of an n x n x n GEMM."""

    dtype: str
    n: int
    tflops: float
    median_s: float
    trials: int


def make_operands(xp_backend: Backend, n: int, dtype: str, seed: int) -> tuple[Array, Array]:
    """Return A and B (n x n, uniform in [-1, 1)) on the backend's device.

    Both are drawn on the host from PCG64(seed) and cast there, so every backend gets the
    same bits: the verifier regenerates A and B from the seed alone.
    """
    check_dtype(dtype)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.uniform(-1.0, 1.0, size=(n, n)).astype(dtype)
    b = rng.uniform(-1.0, 1.0, size=(n, n)).astype(dtype)
    return xp_backend.asarray(a), xp_backend.asarray(b)


def gemm(backend: Backend, a: Array, b: Array) -> Array:
    """The product ``a @ b`` computed on the backend's device."""
    with backend.activate():
        return backend.xp.matmul(a, b)


def gemm_flops(n: int) -> int:
    """Floating-point operations in an n x n x n GEMM (one multiply and one add per term)."""
    return 2 * n**3


def benchmark_gemm(
    backend: Backend,
    n: int,
    dtype: str,
    *,
    trials: int = 5,
    warmup: int = 1,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> GemmResult:
    """Time ``trials`` GEMMs after ``warmup`` untimed ones and report the median rate.

    Raises :class:`BenchmarkCancelled` when ``should_stop()`` turns True between runs;
    ``progress`` gets the fraction of runs done.
    """
    with backend.activate():
        a, b = make_operands(backend, n, dtype, seed)
        median_s = timed_trials(
            backend,
            lambda: gemm(backend, a, b),
            trials=trials,
            warmup=warmup,
            should_stop=should_stop,
            on_step=progress,
        )
    # A clock tick of zero would divide by zero; the clock's resolution is the honest floor.
    median_s = max(median_s, 1e-9)
    return GemmResult(
        dtype=dtype,
        n=n,
        tflops=gemm_flops(n) / median_s / 1e12,
        median_s=median_s,
        trials=trials,
    )


def check_dtype(dtype: str) -> None:
    if dtype not in GEMM_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(GEMM_DTYPES)}, got {dtype!r}")
