"""A fake NVML backend for machines without a GPU: tests, demos and benchmarks.

``FakeNvml`` looks like the ``pynvml`` module to ``GpuSampler``: the same function names and
constants (values taken from pynvml itself), the same result shapes (pynvml's own ctypes
structs), and it raises the real ``pynvml.NVMLError`` subclasses. Readings are deterministic
and vary smoothly with a time base: an injected clock, or by default one fake second per
``nvmlDeviceGetCount`` call (one per sampler tick).
"""

from __future__ import annotations

import math
import threading
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pynvml

GIB = 2**30

# (name, memory, enforced power limit) for FakeNvml.with_gpus.
_MODELS: tuple[tuple[str, int, float], ...] = (
    ("NVIDIA GeForce RTX 3080", 10 * GIB, 320.0),
    ("NVIDIA GeForce RTX 4090", 24 * GIB, 450.0),
    ("NVIDIA A100-SXM4-40GB", 40 * GIB, 400.0),
    ("NVIDIA RTX A6000", 48 * GIB, 300.0),
)

# The FakeGpu.unsupported name each device function belongs to.
_FIELD_OF: dict[str, str] = {
    "nvmlDeviceGetName": "name",
    "nvmlDeviceGetUUID": "uuid",
    "nvmlDeviceGetUtilizationRates": "utilization",
    "nvmlDeviceGetMemoryInfo": "memory",
    "nvmlDeviceGetTemperature": "temperature",
    "nvmlDeviceGetPowerUsage": "power",
    "nvmlDeviceGetEnforcedPowerLimit": "power_limit",
    "nvmlDeviceGetClockInfo": "clocks",
    "nvmlDeviceGetFanSpeed": "fan",
    "nvmlDeviceGetComputeRunningProcesses": "processes",
}
FIELDS = frozenset(_FIELD_OF.values())
FUNCTIONS = frozenset(
    {
        "nvmlInit",
        "nvmlShutdown",
        "nvmlSystemGetDriverVersion",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        *_FIELD_OF,
    }
)


@dataclass
class FakeGpu:
    """One fake card; ``unsupported`` names fields (see ``FIELDS``) that raise NotSupported."""

    name: str = "NVIDIA GeForce RTX 3080"
    memory_total_bytes: int = 10 * GIB
    power_limit_w: float = 320.0
    unsupported: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.unsupported) - FIELDS
        if unknown:
            # A typo here would silently make a test pass; refuse it.
            raise ValueError(f"unknown fake NVML fields {sorted(unknown)}; known: {sorted(FIELDS)}")


@dataclass(frozen=True)
class FakeHandle:
    """An opaque device handle, valid for one NVML session (init to final shutdown)."""

    index: int
    session: int


@dataclass
class _Failure:
    function: str
    code: int
    remaining: int
    index: int | None


@dataclass
class _Overrides:
    utilization: int | None = None
    temperature: int | None = None
    power_w: float | None = None
    lost: bool = False


@dataclass
class _Recorder:
    calls: Counter[str] = field(default_factory=Counter)
    device_calls: Counter[tuple[str, int]] = field(default_factory=Counter)
    threads: set[threading.Thread] = field(default_factory=set)


def _error(code: int) -> pynvml.NVMLError:
    # pynvml maps the code to its subclass (NVMLError_NotSupported, NVMLError_GpuIsLost, ...).
    return pynvml.NVMLError(code)


class FakeNvml:
    """A module-like stand-in for ``pynvml`` driving ``GpuSampler`` without a GPU.

    Test hooks: ``set_utilization``, ``set_temperature``, ``set_power`` (None restores the
    model), ``fail`` (inject NVML errors), ``lose_gpu``/``restore_gpu``, ``library_missing``
    (``nvmlInit`` raises LIBRARY_NOT_FOUND while True). ``calls`` counts calls per function,
    ``device_calls`` per (function, index), ``threads`` records the threads that called.
    """

    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_GRAPHICS = pynvml.NVML_CLOCK_GRAPHICS
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_CLOCK_VIDEO = pynvml.NVML_CLOCK_VIDEO
    NVML_ERROR_UNINITIALIZED = pynvml.NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = pynvml.NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
    NVML_ERROR_DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_TIMEOUT = pynvml.NVML_ERROR_TIMEOUT
    NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_UNKNOWN = pynvml.NVML_ERROR_UNKNOWN
    NVMLError = pynvml.NVMLError

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        clock: Callable[[], float] | None = None,
        driver_version: str = "550.54.15",
        bytes_strings: bool = False,
        library_missing: bool = False,
    ) -> None:
        self.gpus = list(gpus)
        self.driver_version = driver_version
        # pynvml before 11.5 returned bytes for names; tests use this to cover both.
        self.bytes_strings = bytes_strings
        self.library_missing = library_missing
        self._clock = clock
        self._ticks = 0
        self._refcount = 0
        self._session = 0
        self._failures: list[_Failure] = []
        self._overrides = [_Overrides() for _ in self.gpus]
        self._rec = _Recorder()
        # Hooks run on the test's thread while the sampler calls from its NVML thread.
        self._lock = threading.Lock()

    @classmethod
    def with_gpus(cls, n: int, **kwargs: Any) -> FakeNvml:
        """``n`` cards cycling through RTX 3080, RTX 4090, A100, RTX A6000."""
        gpus = [FakeGpu(*_MODELS[i % len(_MODELS)]) for i in range(n)]
        return cls(gpus, **kwargs)

    @classmethod
    def missing_library(cls) -> FakeNvml:
        """A machine without the NVIDIA driver: ``nvmlInit`` raises LIBRARY_NOT_FOUND."""
        return cls.with_gpus(1, library_missing=True)

    # ---- recording ----

    @property
    def calls(self) -> Counter[str]:
        """Calls per function name (including calls that raised)."""
        return self._rec.calls

    @property
    def device_calls(self) -> Counter[tuple[str, int]]:
        """Calls per (function name, device index)."""
        return self._rec.device_calls

    @property
    def threads(self) -> set[threading.Thread]:
        """Every thread that called an NVML function."""
        return self._rec.threads

    @property
    def initialised(self) -> bool:
        """True between nvmlInit and the matching final nvmlShutdown."""
        return self._refcount > 0

    # ---- test hooks ----

    def set_utilization(self, index: int, pct: int | None) -> None:
        """Pin GPU ``index``'s load (temperature, power, clocks follow it); None: the model."""
        with self._lock:
            self._overrides[index].utilization = pct

    def set_temperature(self, index: int, celsius: int | None) -> None:
        """Pin GPU ``index``'s temperature; None restores the model."""
        with self._lock:
            self._overrides[index].temperature = celsius

    def set_power(self, index: int, watts: float | None) -> None:
        """Pin GPU ``index``'s power draw; None restores the model."""
        with self._lock:
            self._overrides[index].power_w = watts

    def fail(
        self, function_name: str, error_code: int, times: int = 1, *, index: int | None = None
    ) -> None:
        """Make the next ``times`` calls of ``function_name`` (on GPU ``index``) raise."""
        if function_name not in FUNCTIONS:
            raise ValueError(f"FakeNvml has no function {function_name!r}")
        with self._lock:
            self._failures.append(_Failure(function_name, error_code, times, index))

    def lose_gpu(self, index: int) -> None:
        """Every later call on GPU ``index`` raises GPU_IS_LOST (until ``restore_gpu``)."""
        with self._lock:
            self._overrides[index].lost = True

    def restore_gpu(self, index: int) -> None:
        """Undo ``lose_gpu`` (as a GPU reset would)."""
        with self._lock:
            self._overrides[index].lost = False

    # ---- plumbing ----

    def _enter(self, function: str, handle: FakeHandle | None = None) -> None:
        """Record the call and raise whatever NVML would; caller holds the lock."""
        rec = self._rec
        rec.calls[function] += 1
        rec.threads.add(threading.current_thread())
        index = None if handle is None else handle.index
        if index is not None:
            rec.device_calls[function, index] += 1
        if function != "nvmlInit" and self._refcount == 0:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        for failure in self._failures:
            if failure.function == function and failure.index in (None, index):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                raise _error(failure.code)
        if handle is not None:
            if handle.session != self._session or not 0 <= handle.index < len(self.gpus):
                # A handle from before a shutdown: a sampler bug the fake must expose.
                raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if self._overrides[handle.index].lost:
                raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
            if _FIELD_OF.get(function) in self.gpus[handle.index].unsupported:
                raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def _str(self, value: str) -> str | bytes:
        return value.encode() if self.bytes_strings else value

    def _now(self) -> float:
        return self._clock() if self._clock is not None else float(self._ticks)

    def _util_at(self, index: int, t: float) -> int:
        pinned = self._overrides[index].utilization
        if pinned is not None:
            return pinned
        # A slow wave per card, out of phase between cards, between 5 % and 95 %.
        return round(50 + 45 * math.sin(t / 6.0 + index * 1.7))

    def _util(self, index: int) -> int:
        return self._util_at(index, self._now())

    def _temperature(self, index: int) -> int:
        pinned = self._overrides[index].temperature
        if pinned is not None:
            return pinned
        # Follows the load a few seconds late, as a heatsink does; stays under 85 °C.
        return round(36 + 0.42 * self._util_at(index, self._now() - 3.0) + index % 3)

    def _power_w(self, index: int) -> float:
        pinned = self._overrides[index].power_w
        if pinned is not None:
            return pinned
        limit = self.gpus[index].power_limit_w
        return limit * (0.08 + 0.8 * self._util(index) / 100.0)

    def _memory_used(self, index: int) -> int:
        total = self.gpus[index].memory_total_bytes
        return int(total * (0.05 + 0.6 * self._util(index) / 100.0))

    # ---- the pynvml API ----

    def nvmlInit(self) -> None:
        with self._lock:
            self._enter("nvmlInit")
            if self.library_missing:
                raise _error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
            # Reference-counted like pynvml: each init needs its own shutdown.
            if self._refcount == 0:
                self._session += 1
            self._refcount += 1

    def nvmlShutdown(self) -> None:
        with self._lock:
            self._enter("nvmlShutdown")
            self._refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        with self._lock:
            self._enter("nvmlSystemGetDriverVersion")
            return self._str(self.driver_version)

    def nvmlDeviceGetCount(self) -> int:
        with self._lock:
            self._enter("nvmlDeviceGetCount")
            self._ticks += 1
            return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        with self._lock:
            self._enter("nvmlDeviceGetHandleByIndex")
            self.device_calls["nvmlDeviceGetHandleByIndex", index] += 1
            if not 0 <= index < len(self.gpus):
                raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if self._overrides[index].lost:
                raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
            return FakeHandle(index, self._session)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str | bytes:
        with self._lock:
            self._enter("nvmlDeviceGetName", handle)
            return self._str(self.gpus[handle.index].name)

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str | bytes:
        with self._lock:
            self._enter("nvmlDeviceGetUUID", handle)
            gpu = self.gpus[handle.index]
            fake = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"fake-nvml/{handle.index}/{gpu.name}")
            return self._str(f"GPU-{fake}")

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> pynvml.c_nvmlUtilization_t:
        with self._lock:
            self._enter("nvmlDeviceGetUtilizationRates", handle)
            util = self._util(handle.index)
            return pynvml.c_nvmlUtilization_t(gpu=util, memory=round(util * 0.6))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> pynvml.c_nvmlMemory_t:
        with self._lock:
            self._enter("nvmlDeviceGetMemoryInfo", handle)
            total = self.gpus[handle.index].memory_total_bytes
            used = self._memory_used(handle.index)
            return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        with self._lock:
            self._enter("nvmlDeviceGetTemperature", handle)
            if sensor != pynvml.NVML_TEMPERATURE_GPU:
                raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return self._temperature(handle.index)

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        with self._lock:
            self._enter("nvmlDeviceGetPowerUsage", handle)
            return round(self._power_w(handle.index) * 1000)  # NVML reports milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        with self._lock:
            self._enter("nvmlDeviceGetEnforcedPowerLimit", handle)
            return round(self.gpus[handle.index].power_limit_w * 1000)

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        with self._lock:
            self._enter("nvmlDeviceGetClockInfo", handle)
            util = self._util(handle.index)
            if clock_type in (pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_GRAPHICS):
                return 210 + round(util * 17.1)
            if clock_type == pynvml.NVML_CLOCK_MEM:
                return 405 if util < 5 else 9501
            if clock_type == pynvml.NVML_CLOCK_VIDEO:
                return 555 + round(util * 12)
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetFanSpeed(self, handle: FakeHandle) -> int:
        with self._lock:
            self._enter("nvmlDeviceGetFanSpeed", handle)
            return min(100, 30 + max(0, self._temperature(handle.index) - 40))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Any]:
        with self._lock:
            self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
            if self._util(handle.index) < 20:
                return []
            used = int(self._memory_used(handle.index) * 0.8)
            return [
                pynvml.nvmlFriendlyObject({"pid": 40_000 + handle.index, "usedGpuMemory": used})
            ]
