"""The node's state as API views: telemetry, guard, work, counters, log and benchmarks.

Pure functions from the node's own objects (frames, guard states, store rows) to the Structs
of ``core.api``: the one place the node's internals meet what front ends read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from core.api.events import LogEntry, LogHistory
from core.api.views import (
    BenchmarkResult,
    BenchProgressView,
    Counters,
    CpuView,
    GpuGuardView,
    GuardView,
    LastBenchmark,
    ModelView,
    TelemetryView,
    WorkBenchmarking,
    WorkerStateName,
    WorkerView,
    WorkIdle,
    WorkPaused,
    WorkState,
)
from core.errors import CommandError
from core.node.devices import WorkDevice
from core.node.frames import TelemetryFrame
from core.node.guard import GuardState
from core.node.store import BenchmarkRow, EventRow

log = logging.getLogger("omnitensor.node")


def telemetry_view(frame: TelemetryFrame) -> TelemetryView:
    """A telemetry frame (dataclasses) as its view."""
    return msgspec.convert(frame, TelemetryView, from_attributes=True)


def guard_view(guard: GuardState) -> GuardView:
    return GuardView(
        paused=guard.paused,
        summary=guard.summary(),
        gpus=tuple(
            GpuGuardView(index=g.index, paused=g.paused, reason=g.reason) for g in guard.per_gpu
        ),
    )


def work_view(
    *, benchmarking: bool, progress: BenchProgressView | None, guard: GuardState | None
) -> WorkState:
    """What the node does now: a benchmark, paused by the guard, or nothing."""
    if benchmarking:
        return WorkBenchmarking(progress=progress)
    if guard is not None and guard.paused:
        return WorkPaused(reason=guard.summary())
    return WorkIdle()


def counters_view(counters: Mapping[str, int]) -> Counters:
    """The store's work counters (keyed ``work.submitted``...) as their view."""
    return msgspec.convert(counters, Counters)


def benchmark_view(result: Mapping[str, Any]) -> BenchmarkResult:
    """The benchmark suite's result dict as its view."""
    try:
        return msgspec.convert(result, BenchmarkResult)
    except msgspec.ValidationError as exc:
        raise CommandError(f"the benchmark returned a malformed result ({exc})") from None


def last_benchmark_view(row: BenchmarkRow | None) -> LastBenchmark | None:
    """The stored last benchmark; None when there is none (or it cannot be read)."""
    if row is None:
        return None
    try:
        return msgspec.convert(
            {**row.result, "ts": row.ts, "verified": row.verified}, LastBenchmark
        )
    except msgspec.ValidationError as exc:
        # A result stored in another shape: not worth failing a snapshot over.
        log.debug("stored benchmark %d unreadable: %s", row.id, exc)
        return None


def log_history(rows: Iterable[EventRow]) -> LogHistory:
    """Stored log lines as their view."""
    try:
        events = tuple(msgspec.convert(row, LogEntry, from_attributes=True) for row in rows)
    except msgspec.ValidationError as exc:
        raise CommandError(f"events: the node's log is unreadable ({exc})") from None
    return LogHistory(events=events)


class _Worker(Protocol):
    index: int
    current: str | None
    done: int
    last_rate: float | None


def workers_view(
    workers: Sequence[_Worker], devices: Sequence[WorkDevice], paused: Callable[[int], bool]
) -> tuple[WorkerView, ...]:
    """One view per device's worker: what it computes, or why it waits."""
    views = []
    for worker in workers:
        device = devices[worker.index]
        state: WorkerStateName = (
            "paused"
            if paused(worker.index)
            else "computing"
            if worker.current is not None
            else "idle"
        )
        views.append(
            WorkerView(
                index=worker.index,
                gpu=device.gpu,
                label=device.label,
                state=state,
                unit=worker.current,
                done=worker.done,
                last_tflops=None if worker.last_rate is None else worker.last_rate / 1e12,
            )
        )
    return tuple(views)


def model_view(model_dir: Path | None) -> ModelView:
    """Whether the sentence-embedding model is installed (cheap: looks for its files)."""
    from kernels.inference.model import model_status

    return msgspec.convert(model_status(model_dir), ModelView)


def cpu_view(name: str) -> CpuView:
    """Load per core since the last call (psutil reads /proc: run it off the event loop)."""
    import psutil

    load = tuple(float(p) for p in psutil.cpu_percent(percpu=True))
    temperature: float | None = None
    sensors = getattr(psutil, "sensors_temperatures", None)
    if sensors is not None:
        readings = sensors() or {}
        for chip in ("coretemp", "k10temp", "zenpower", "cpu_thermal", "acpitz"):
            values = [t.current for t in readings.get(chip, ()) if t.current]
            if values:
                temperature = float(max(values))
                break
    return CpuView(
        name=name or "CPU",
        cores=len(load),
        load_pct=load,
        temperature_c=temperature,
        power_w=_rapl.watts(),
    )


class _RaplMeter:
    """Package power from the kernel's RAPL energy counter (Linux, Intel and AMD), as the
    energy used between two reads; None where it is not exposed or not readable."""

    PATH = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
    MAX = Path("/sys/class/powercap/intel-rapl:0/max_energy_range_uj")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[float, int] | None = None

    def watts(self) -> float | None:
        try:
            energy = int(self.PATH.read_text())
        except (OSError, ValueError):
            return None
        now = self._clock()
        last, self._last = self._last, (now, energy)
        if last is None or now - last[0] < 0.1:
            return None
        used = energy - last[1]
        if used < 0:  # the counter wrapped
            try:
                used += int(self.MAX.read_text())
            except (OSError, ValueError):
                return None
        return used / 1e6 / (now - last[0])


_rapl = _RaplMeter()
