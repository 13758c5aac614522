"""Pick the array module the kernels run on: CuPy on a CUDA device, NumPy otherwise.

Kernels take a :class:`Backend` and use ``backend.xp`` as their array module, so one body
of code runs on both. Everything that differs between the two (synchronising, timing,
moving data to and from the device) lives here, selected by ``Backend.name``.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import statistics
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

# A NumPy or CuPy array. CuPy ships no type information, so device arrays are ``Any``.
Array: TypeAlias = Any

ENV_VAR = "OMNITENSOR_BACKEND"
BACKEND_CHOICES = ("auto", "numpy", "cupy")

_DEFAULT_LLC_BYTES = 32 * 1024 * 1024
_CPU_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
_CPUINFO = Path("/proc/cpuinfo")


class BackendError(Exception):
    """The requested backend cannot be used; ``str(err)`` is one line for the user."""


class BenchmarkCancelled(Exception):
    """A benchmark stopped early because its ``should_stop`` callback returned True."""


@dataclass(frozen=True)
class Backend:
    """An array module plus what the kernels need to know about the device behind it."""

    name: str  # "numpy" or "cupy"
    xp: types.ModuleType
    device: str
    llc_bytes: int

    @property
    def is_cupy(self) -> bool:
        """True when arrays live on a CUDA device."""
        return self.name == "cupy"

    def synchronize(self) -> None:
        """Wait until all queued device work is done (NumPy work is already done)."""
        if self.is_cupy:
            self.xp.cuda.get_current_stream().synchronize()

    def to_host(self, a: Array) -> npt.NDArray[Any]:
        """Copy ``a`` to host memory as a NumPy array (no copy on NumPy)."""
        if self.is_cupy:
            host: npt.NDArray[Any] = self.xp.asnumpy(a)
            return host
        return np.asarray(a)

    def asarray(self, host_array: npt.NDArray[Any]) -> Array:
        """Move a NumPy array to the device (no copy on NumPy)."""
        return self.xp.asarray(host_array)

    def time_call(self, fn: Callable[[], object]) -> float:
        """Run ``fn`` once and return how long it took on the device, in seconds."""
        if self.is_cupy:
            # Kernel launches are asynchronous: wall-clock time around fn() would measure
            # the launch, not the work. CUDA events time the work on the stream itself.
            cuda = self.xp.cuda
            start = cuda.Event()
            end = cuda.Event()
            start.record()
            fn()
            end.record()
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


def cupy_status() -> tuple[bool, str]:
    """Say whether CuPy can run here: ``(True, "")`` or ``(False, reason)``."""
    try:
        import cupy
    except ImportError:
        return False, "cupy is not installed"
    except Exception as err:  # a broken install can raise anything while loading CUDA libs
        return False, f"cupy failed to import: {_one_line(err)}"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # CUDARuntimeError (a RuntimeError), OSError from the driver...
        return False, f"no CUDA device: {_one_line(err)}"
    if count <= 0:
        return False, "no CUDA device: the CUDA runtime reports 0 devices"
    return True, ""


def select_backend(env: Mapping[str, str] | None = None) -> Backend:
    """Build the backend named by ``OMNITENSOR_BACKEND`` (auto, numpy or cupy)."""
    environ = os.environ if env is None else env
    raw = environ.get(ENV_VAR, "auto")
    choice = raw.strip().lower() or "auto"
    if choice not in BACKEND_CHOICES:
        raise BackendError(f"{ENV_VAR}={raw} is not one of {', '.join(BACKEND_CHOICES)}")
    if choice == "numpy":
        return numpy_backend()
    ok, reason = cupy_status()
    if choice == "cupy" and not ok:
        raise BackendError(f"{ENV_VAR}=cupy but CuPy cannot be used: {reason}")
    return _cupy_backend() if ok else numpy_backend()


@functools.cache
def numpy_backend() -> Backend:
    """The host backend; always available (made once: it reads /proc and /sys)."""
    return Backend(name="numpy", xp=np, device=_cpu_name(), llc_bytes=_cpu_llc_bytes())


def _cupy_backend() -> Backend:
    import cupy

    device_id = int(cupy.cuda.runtime.getDevice())
    props = cupy.cuda.runtime.getDeviceProperties(device_id)
    name = props.get("name", b"CUDA device")
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    l2 = int(cupy.cuda.Device(device_id).attributes.get("L2CacheSize", 0))
    if l2 <= 0:
        l2 = int(props.get("l2CacheSize", 0)) or _DEFAULT_LLC_BYTES
    return Backend(name="cupy", xp=cupy, device=str(name), llc_bytes=l2)


def _one_line(err: BaseException) -> str:
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
    return max(sizes, default=_DEFAULT_LLC_BYTES)
