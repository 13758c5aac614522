"""Memory bandwidth: a STREAM-style triad ``a = b + s * c`` on float32 arrays.

Each array is at least four times the last-level cache, so the arrays cannot stay in cache
between runs and the rate measured is that of main (or device) memory.

Bytes are counted the way STREAM counts them: each element read or written once per
array access, with no allowance for the extra read a CPU's write-allocate cache performs
before a store. The two implementations access memory a different number of times, and
each is charged for what it really does:

* CuPy: one fused ``ElementwiseKernel`` reads ``b`` and ``c`` and writes ``a``:
  3 accesses per element.
* NumPy: it has no fused triad, so ``multiply(c, s, out=a)`` reads ``c`` and writes ``a``,
  then ``add(a, b, out=a)`` reads ``a`` and ``b`` and writes ``a``: 5 accesses per element.
  Charging NumPy for only 3 would understate its memory traffic and its GB/s.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.backend import Array, Backend, timed_trials

TRIAD_SCALAR = np.float32(3.0)
_B_VALUE = 1.0
_C_VALUE = 2.0
_ITEMSIZE = np.dtype(np.float32).itemsize
_LLC_MULTIPLE = 4

# Memory accesses per element for each implementation (see the module docstring).
ACCESSES_PER_ELEMENT = {"cupy": 3, "numpy": 5}


@dataclass(frozen=True)
class BandwidthResult:
    """Median time of one triad pass and the rate it implies."""

    kernel: str
    array_bytes: int
    bytes_moved: int
    gbps: float
    median_s: float
    trials: int


def triad_array_bytes(
    llc_bytes: int, min_bytes: int | None = None, max_bytes: int | None = None
) -> int:
    """Bytes per array: max(4 x LLC, min_bytes), capped by max_bytes but never below 4 x LLC.

    Rounded up to whole float32 elements.
    """
    floor = _LLC_MULTIPLE * max(llc_bytes, 1)
    want = max(floor, min_bytes or 0)
    if max_bytes is not None:
        want = max(floor, min(want, max_bytes))
    elements = -(-want // _ITEMSIZE)
    return elements * _ITEMSIZE


def benchmark_bandwidth(
    backend: Backend,
    *,
    min_bytes: int | None = None,
    max_bytes: int | None = None,
    trials: int = 5,
    warmup: int = 1,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> BandwidthResult:
    """Time the triad and report GB/s = bytes this implementation moves / median time."""
    array_bytes = triad_array_bytes(backend.llc_bytes, min_bytes, max_bytes)
    elements = array_bytes // _ITEMSIZE
    xp = backend.xp
    with backend.activate():
        a = xp.empty(elements, dtype=xp.float32)
        b = xp.full(elements, _B_VALUE, dtype=xp.float32)
        c = xp.full(elements, _C_VALUE, dtype=xp.float32)
        run = _triad_fn(backend, a, b, c)
        median_s = timed_trials(
            backend, run, trials=trials, warmup=warmup, should_stop=should_stop, on_step=progress
        )
        # A triad that silently did nothing would report a fantastic rate: check its output.
        expected = xp.float32(_B_VALUE) + TRIAD_SCALAR * xp.float32(_C_VALUE)
        if not bool(xp.all(a == expected)):
            raise RuntimeError("triad kernel produced wrong values")
    median_s = max(median_s, 1e-9)  # guard a zero clock tick against division by zero
    bytes_moved = ACCESSES_PER_ELEMENT[backend.name] * array_bytes
    return BandwidthResult(
        kernel="triad",
        array_bytes=array_bytes,
        bytes_moved=bytes_moved,
        gbps=bytes_moved / median_s / 1e9,
        median_s=median_s,
        trials=trials,
    )


def _triad_fn(backend: Backend, a: Array, b: Array, c: Array) -> Callable[[], object]:
    xp = backend.xp
    if backend.is_cupy:
        kernel = _cupy_triad_kernel(xp)
        return lambda: kernel(b, c, TRIAD_SCALAR, a)

    def numpy_triad() -> object:
        xp.multiply(c, TRIAD_SCALAR, out=a)
        return xp.add(a, b, out=a)

    return numpy_triad


@functools.cache
def _cupy_triad_kernel(cupy: types.ModuleType) -> Any:
    # One fused pass: read b and c, write a. Built once; CuPy compiles it on first call.
    return cupy.ElementwiseKernel(
        "float32 b, float32 c, float32 s",
        "float32 a",
        "a = b + s * c",
        "omnitensor_triad",
    )
