"""GPU telemetry from NVML, sampled off the event loop.

``GpuSampler`` calls the pynvml module's functions by their real names on an injected module
object (the real ``pynvml`` by default, ``core.fake_nvml.FakeNvml`` on machines without a GPU),
so the code that runs in tests is the code that runs on a GPU host. Every NVML call runs in one
dedicated thread owned by the sampler (like aiosqlite's one thread per connection): NVML calls
block, some for milliseconds, and must never stall the event loop.

A missing driver is a normal state, not an error: the node keeps running on CPU and the status
says why there is no GPU telemetry. The sampler retries ``nvmlInit`` on every tick while NVML is
unavailable (a failed init costs about 30 µs), so installing or reloading the driver recovers
without restarting the node.

Caching: readings that change every second (utilization, memory used, temperature, power,
clocks) are read on every tick. Name, UUID, enforced power limit, fan speed and the list of
compute processes are read at most once per ``slow_ttl`` seconds per GPU: they change rarely
(or, for fan and processes, slowly enough that a few seconds of staleness does not matter in a
status view), and the process query is the most expensive NVML call. Memory total comes free
with the memory-used query, so it is read every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import pynvml

from core.node.frames import GpuProcess, GpuSnapshot, TelemetryFrame, TelemetryStatus

MIN_INTERVAL = 0.25

_T = TypeVar("_T")

# Answers meaning "this card/driver will never give this field": remember and stop asking.
# A permission denial cannot change while the process runs, so it is treated the same way.
_UNSUPPORTED_CODES = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_NO_PERMISSION,
    }
)
# Answers meaning NVML itself went away (driver unloaded or upgraded under us), not one card:
# the whole tick becomes "unavailable" and the next tick re-initialises NVML.
_NVML_DOWN_CODES = frozenset(
    {
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)
# Kept across a failed tick so the UI can still say which card failed.
_IDENTITY_FIELDS = ("name", "uuid")


@dataclass(slots=True)
class _GpuState:
    """Per-GPU memory of the sampler; touched only from the NVML thread."""

    handle: Any = None
    unsupported: set[str] = field(default_factory=set)
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)


class _NvmlDown(Exception):
    """Internal: NVML as a whole failed mid-tick."""

    def __init__(self, err: pynvml.NVMLError) -> None:
        super().__init__(str(err))
        self.err = err


def _code(err: BaseException) -> int | None:
    value = getattr(err, "value", None)
    return value if isinstance(value, int) else None


def _reason(err: BaseException) -> str:
    """The user-facing line for an NVML failure that makes telemetry unavailable."""
    if _code(err) == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return "NVML library not found (no NVIDIA driver installed)"
    return f"NVML error: {err}"


def _text(value: Any) -> str:
    # pynvml returns bytes before 11.5 and str after; accept both.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _processes(raw: Any) -> tuple[GpuProcess, ...]:
    return tuple(
        GpuProcess(
            pid=int(p.pid),
            used_memory_bytes=None
            if getattr(p, "usedGpuMemory", None) is None
            else int(p.usedGpuMemory),
        )
        for p in raw
    )


def _watts(milliwatts: Any) -> float | None:
    return None if milliwatts is None else milliwatts / 1000.0


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class GpuSampler:
    """Samples every GPU through NVML in one dedicated thread.

    Use as ``async with GpuSampler() as s:`` then ``await s.sample()`` or
    ``async for frame in s.frames()``. NVML failures never raise: they become the ``status``
    (NVML unavailable) or a snapshot's ``error`` (one GPU failed this tick).
    """

    def __init__(
        self, nvml: Any | None = None, *, interval: float = 1.0, slow_ttl: float = 5.0
    ) -> None:
        if not math.isfinite(interval) or interval < MIN_INTERVAL:
            raise ValueError("telemetry interval must be at least 0.25 s")
        if math.isnan(slow_ttl) or slow_ttl < 0:
            raise ValueError("slow_ttl must be at least 0 s")
        self._nvml: Any = pynvml if nvml is None else nvml
        self._interval = interval
        self._slow_ttl = slow_ttl
        # One thread for every NVML call: NVML calls stay ordered (init, reads, shutdown)
        # and never run concurrently, whatever the callers on the loop do.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvml")
        self._closed = False
        self._status = TelemetryStatus(False, "not started", None, 0)
        # Below: touched only from the NVML thread.
        self._initialised = False
        self._driver_version: str | None = None
        self._gpus: list[_GpuState] = []

    @property
    def interval(self) -> float:
        """Seconds between frames in ``frames()``."""
        return self._interval

    @property
    def status(self) -> TelemetryStatus:
        """The status from the last sample (or from opening the sampler)."""
        return self._status

    async def __aenter__(self) -> Self:
        self._status = await self._in_thread(self._open_sync)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def sample(self) -> TelemetryFrame:
        """Read every GPU once (in the NVML thread)."""
        frame = await self._in_thread(self._sample_sync)
        self._status = frame.status
        return frame

    async def frames(self) -> AsyncIterator[TelemetryFrame]:
        """Yield a frame every ``interval`` seconds until the sampler is closed.

        Samples never overlap: the next one starts only after the previous one finished and
        the consumer took it. Deadlines are on the monotonic clock so the cadence does not
        drift; when a tick is late (slow NVML, slow consumer) missed slots are skipped rather
        than sampled in a burst.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while not self._closed:
            yield await self.sample()
            deadline += self._interval
            now = loop.time()
            if now > deadline:
                deadline += math.ceil((now - deadline) / self._interval) * self._interval
            await asyncio.sleep(deadline - now)

    async def aclose(self) -> None:
        """Shut NVML down and stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            # Queued behind any sample still running, so NVML shuts down after it.
            await loop.run_in_executor(self._executor, self._drop_session)
        finally:
            self._executor.shutdown(wait=False)
            self._status = TelemetryStatus(False, "closed", None, 0)

    async def _in_thread(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise RuntimeError("GpuSampler is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # ---- NVML thread only below ----

    def _open_sync(self) -> TelemetryStatus:
        failed = self._ensure_init()
        if failed is not None:
            return failed
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as err:
            self._drop_session()
            return TelemetryStatus(False, _reason(err), None, 0)
        return self._status_for(count)

    def _status_for(self, count: int) -> TelemetryStatus:
        if count == 0:
            return TelemetryStatus(False, "NVML found no GPU", self._driver_version, 0)
        return TelemetryStatus(True, "ok", self._driver_version, count)

    def _ensure_init(self) -> TelemetryStatus | None:
        """Initialise NVML if needed; the unavailable status when that fails."""
        if self._initialised:
            return None
        try:
            self._nvml.nvmlInit()
        except pynvml.NVMLError as err:
            return TelemetryStatus(False, _reason(err), None, 0)
        self._initialised = True
        self._gpus = []
        try:
            self._driver_version = _text(self._nvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError:
            # Cosmetic: not worth declaring telemetry unavailable for.
            self._driver_version = None
        return None

    def _drop_session(self) -> None:
        """Shut NVML down (best effort) and forget every handle and cached field."""
        if self._initialised:
            # Balances nvmlInit: pynvml reference-counts init/shutdown.
            with contextlib.suppress(pynvml.NVMLError):
                self._nvml.nvmlShutdown()
        self._initialised = False
        self._driver_version = None
        self._gpus = []

    def _sample_sync(self) -> TelemetryFrame:
        timestamp = time.time()
        started = time.perf_counter()
        status, gpus = self._tick()
        return TelemetryFrame(timestamp, status, gpus, time.perf_counter() - started)

    def _tick(self) -> tuple[TelemetryStatus, tuple[GpuSnapshot, ...]]:
        failed = self._ensure_init()
        if failed is not None:
            return failed, ()
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
            if count != len(self._gpus):
                # Indices may now name other cards: forget handles, caches, unsupported sets.
                self._gpus = [_GpuState() for _ in range(count)]
            now = time.monotonic()
            gpus = tuple(self._sample_gpu(i, st, now) for i, st in enumerate(self._gpus))
        except pynvml.NVMLError as err:
            self._drop_session()
            return TelemetryStatus(False, _reason(err), None, 0), ()
        except _NvmlDown as down:
            self._drop_session()
            return TelemetryStatus(False, _reason(down.err), None, 0), ()
        return self._status_for(count), gpus

    def _sample_gpu(self, index: int, st: _GpuState, now: float) -> GpuSnapshot:
        nv = self._nvml
        try:
            if st.handle is None:
                st.handle = nv.nvmlDeviceGetHandleByIndex(index)
            h = st.handle
            name = self._slow(st, "name", now, _text, nv.nvmlDeviceGetName, h)
            uuid = self._slow(st, "uuid", now, _text, nv.nvmlDeviceGetUUID, h)
            util = self._read(st, "utilization", nv.nvmlDeviceGetUtilizationRates, h)
            mem = self._read(st, "memory", nv.nvmlDeviceGetMemoryInfo, h)
            temp = self._read(
                st, "temperature", nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU
            )
            power = self._read(st, "power", nv.nvmlDeviceGetPowerUsage, h)
            limit = self._slow(
                st, "power_limit", now, _watts, nv.nvmlDeviceGetEnforcedPowerLimit, h
            )
            clock_sm = self._read(st, "clock_sm", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
            clock_mem = self._read(st, "clock_mem", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM)
            fan = self._slow(st, "fan", now, _opt_int, nv.nvmlDeviceGetFanSpeed, h)
            procs = self._slow(
                st, "processes", now, _processes, nv.nvmlDeviceGetComputeRunningProcesses, h
            )
        except pynvml.NVMLError as err:
            if _code(err) in _NVML_DOWN_CODES:
                raise _NvmlDown(err) from err
            # Re-fetch the handle and every cached field next tick; keep identity for display.
            st.handle = None
            st.cache = {k: v for k, v in st.cache.items() if k in _IDENTITY_FIELDS}
            known_name = st.cache.get("name", (0.0, None))[1]
            known_uuid = st.cache.get("uuid", (0.0, None))[1]
            return GpuSnapshot.failed(index, known_name, known_uuid, str(err))
        return GpuSnapshot(
            index=index,
            name=name,
            uuid=uuid,
            utilization_pct=None if util is None else int(util.gpu),
            memory_utilization_pct=None if util is None else int(util.memory),
            memory_used_bytes=None if mem is None else int(mem.used),
            memory_total_bytes=None if mem is None else int(mem.total),
            temperature_c=_opt_int(temp),
            power_w=_watts(power),
            power_limit_w=limit,
            clock_sm_mhz=_opt_int(clock_sm),
            clock_mem_mhz=_opt_int(clock_mem),
            fan_pct=fan,
            processes=() if procs is None else procs,
            error=None,
        )

    @staticmethod
    def _read(st: _GpuState, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn``; None (and never ask again) when the card does not support the field."""
        if name in st.unsupported:
            return None
        try:
            return fn(*args)
        except pynvml.NVMLError as err:
            if _code(err) in _UNSUPPORTED_CODES:
                st.unsupported.add(name)
                return None
            raise
        except pynvml.NVMLLibraryMismatchError:
            # pynvml's unversioned wrapper on a driver too old for it: never going to work.
            st.unsupported.add(name)
            return None

    def _slow(
        self,
        st: _GpuState,
        name: str,
        now: float,
        convert: Callable[[Any], Any],
        fn: Callable[..., Any],
        *args: Any,
    ) -> Any:
        """Like ``_read`` for a slow-changing field, cached (converted) for ``slow_ttl``."""
        hit = st.cache.get(name)
        if hit is not None and now - hit[0] < self._slow_ttl:
            return hit[1]
        raw = self._read(st, name, fn, *args)
        value = None if raw is None else convert(raw)
        st.cache[name] = (now, value)
        return value


async def measure_sampler_cost(
    nvml: Any, ticks: int = 200, *, slow_ttl: float = 0.0
) -> dict[str, float]:
    """Wall and CPU time per ``sample()`` over ``ticks`` back-to-back samples.

    CPU time is ``time.process_time`` so it counts both the event loop's side (scheduling the
    job, waking up) and the NVML thread. ``slow_ttl`` defaults to 0, reading every field on
    every tick: an upper bound on the real cost, since back-to-back samples would otherwise hit
    the slow-field cache far more often than a 1 s cadence does.
    """
    if ticks < 1:
        raise ValueError("ticks must be at least 1")
    async with GpuSampler(nvml, slow_ttl=slow_ttl) as sampler:
        frame = await sampler.sample()  # warm up: start the thread, fetch handles
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        for _ in range(ticks):
            frame = await sampler.sample()
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    return {
        "ticks": ticks,
        "wall_ms_per_tick": wall * 1000.0 / ticks,
        "cpu_ms_per_tick": cpu * 1000.0 / ticks,
        "gpus": len(frame.gpus),
    }
