"""The array backend the kernels run on (NumPy, or CuPy on one CUDA device) and its timing.

Kernels take a :class:`Backend` and use ``backend.xp`` as their array module, so one body
of code runs on both. Everything that differs between the two (the device context,
synchronising, timing, moving data to and from the device) lives here, selected by
``Backend.name``. Choosing a backend (and proving CuPy works first) is ``kernels.backend``.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import re
import statistics
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

# A NumPy or CuPy array. CuPy ships no type information, so device arrays are ``Any``.
Array: TypeAlias = Any

ENV_VAR = "OMNITENSOR_BACKEND"
BACKEND_CHOICES = ("auto", "numpy", "cupy")

DEFAULT_LLC_BYTES = 32 * 1024 * 1024
_CPU_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
_CPUINFO = Path("/proc/cpuinfo")


class BackendError(Exception):
    """The requested backend cannot be used; ``str(err)`` is one line for the user."""


class BenchmarkCancelled(Exception):
    """A benchmark stopped early because its ``should_stop`` callback returned True."""


@dataclass(frozen=True)
class Backend:
    """An array module plus what the kernels need to know about the device behind it.

    On CuPy a backend is bound to one device: ``index`` is its CUDA device id (an index in
    the set ``CUDA_VISIBLE_DEVICES`` leaves visible) and ``stream`` the CuPy stream made for
    it. Kernels run inside :meth:`activate`, which makes that device and stream current in
    the calling thread; CuPy then keeps the device's own memory pool and cuBLAS handle.
    """

    name: str  # "numpy" or "cupy"
    xp: types.ModuleType
    device: str  # a display name: the CPU model, or the GPU's name
    llc_bytes: int
    index: int | None = None  # CUDA device id; None on NumPy
    uuid: str = ""  # NVML's form of the GPU's UUID ("GPU-..."), to match telemetry
    pci_bus_id: str = ""  # "0000:01:00.0", to match telemetry when the UUID is unreadable
    stream: Any = field(default=None, compare=False, repr=False)

    @property
    def is_cupy(self) -> bool:
        """True when arrays live on a CUDA device."""
        return self.name == "cupy"

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make this backend's device and stream current in this thread (no-op on NumPy).

        Re-entrant and cheap: CuPy only calls cudaSetDevice when the device changes.
        """
        if not self.is_cupy:
            yield
            return
        with self.xp.cuda.Device(self.index):
            if self.stream is None:
                yield
            else:
                with self.stream:
                    yield

    def synchronize(self) -> None:
        """Wait until all queued device work is done (NumPy work is already done)."""
        if self.is_cupy:
            with self.activate():
                self.xp.cuda.get_current_stream().synchronize()

    def to_host(self, a: Array) -> npt.NDArray[Any]:
        """Copy ``a`` to host memory as a NumPy array (no copy on NumPy)."""
        if self.is_cupy:
            with self.activate():
                host: npt.NDArray[Any] = self.xp.asnumpy(a)
            return host
        return np.asarray(a)

    def asarray(self, host_array: npt.NDArray[Any]) -> Array:
        """Move a NumPy array to the device (no copy on NumPy)."""
        with self.activate():
            return self.xp.asarray(host_array)

    def time_call(self, fn: Callable[[], object]) -> float:
        """Run ``fn`` once and return how long it took on the device, in seconds."""
        if self.is_cupy:
            # Kernel launches are asynchronous: wall-clock time around fn() would measure
            # the launch, not the work. CUDA events time the work on the stream itself;
            # both are made and recorded on this backend's device and stream.
            with self.activate():
                cuda = self.xp.cuda
                start = cuda.Event()
                end = cuda.Event()
                start.record()
                fn()
                end.record()
                # The end event must have completed before its time can be read: CUDA
                # answers cudaErrorNotReady otherwise.
                end.synchronize()
                return float(cuda.get_elapsed_time(start, end)) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def timed_trials(
    backend: Backend,
    fn: Callable[[], object],
    *,
    trials: int,
    warmup: int,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[float], None] | None = None,
) -> float:
    """Run ``fn`` ``warmup`` times untimed, then ``trials`` times timed; return the median.

    ``should_stop`` is polled before every run and raises :class:`BenchmarkCancelled`;
    ``on_step`` gets the fraction of runs done after each one.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if warmup < 0:
        raise ValueError(f"warmup must not be negative, got {warmup}")
    total = warmup + trials
    times: list[float] = []
    for step in range(total):
        if should_stop is not None and should_stop():
            raise BenchmarkCancelled("benchmark cancelled")
        elapsed = backend.time_call(fn)
        if step >= warmup:
            times.append(elapsed)
        if on_step is not None:
            on_step((step + 1) / total)
    return statistics.median(times)


@functools.cache
def numpy_backend() -> Backend:
    """The host backend; always available (made once: it reads /proc and /sys)."""
    return Backend(name="numpy", xp=np, device=_cpu_name(), llc_bytes=_cpu_llc_bytes())


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _cpu_name() -> str:
    try:
        for line in _CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def parse_cache_size(text: str) -> int | None:
    """Parse a sysfs cache size such as ``32768K`` or ``1M`` into bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, flags=re.IGNORECASE)
    if match is None:
        return None
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    return int(match.group(1)) * scale


def _cpu_llc_bytes(cache_dir: Path = _CPU_CACHE_DIR) -> int:
    # The largest cache cpu0 sees is the last level; sysfs may be absent (containers, macOS).
    sizes: list[int] = []
    try:
        for size_file in cache_dir.glob("index*/size"):
            size = parse_cache_size(size_file.read_text())
            if size:
                sizes.append(size)
    except OSError:
        pass
    return max(sizes, default=DEFAULT_LLC_BYTES)
