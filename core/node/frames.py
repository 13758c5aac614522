"""What the GPU sampler produces: immutable frames of per-GPU readings and the NVML status.

A field the card or driver does not report is None (never a crash in a panel); a GPU whose
read failed carries the error instead of readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process holding a GPU; memory is None where the driver hides it (WDDM)."""

    pid: int
    used_memory_bytes: int | None


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    """One GPU at one tick. None means the card does not report that field.

    When ``error`` is set the device failed this tick: every reading is None and only the
    identity (name, uuid) is kept if it was known from an earlier tick.
    """

    index: int
    name: str | None
    uuid: str | None
    utilization_pct: int | None
    memory_utilization_pct: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    clock_sm_mhz: int | None
    clock_mem_mhz: int | None
    fan_pct: int | None
    processes: tuple[GpuProcess, ...]
    error: str | None

    @classmethod
    def failed(cls, index: int, name: str | None, uuid: str | None, error: str) -> GpuSnapshot:
        """A snapshot for a device whose query failed this tick."""
        return cls(
            index, name, uuid, None, None, None, None, None, None, None, None, None, None, (), error
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "utilization_pct": self.utilization_pct,
            "memory_utilization_pct": self.memory_utilization_pct,
            "memory_used_bytes": self.memory_used_bytes,
            "memory_total_bytes": self.memory_total_bytes,
            "temperature_c": self.temperature_c,
            "power_w": self.power_w,
            "power_limit_w": self.power_limit_w,
            "clock_sm_mhz": self.clock_sm_mhz,
            "clock_mem_mhz": self.clock_mem_mhz,
            "fan_pct": self.fan_pct,
            "processes": [
                {"pid": p.pid, "used_memory_bytes": p.used_memory_bytes} for p in self.processes
            ],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class TelemetryStatus:
    """Whether GPU telemetry works, and if not, why (one line for the user)."""

    available: bool
    reason: str
    driver_version: str | None
    gpu_count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "available": self.available,
            "reason": self.reason,
            "driver_version": self.driver_version,
            "gpu_count": self.gpu_count,
        }


@dataclass(frozen=True, slots=True)
class TelemetryFrame:
    """All GPUs at one tick; ``timestamp`` is ``time.time()`` when the tick started."""

    timestamp: float
    status: TelemetryStatus
    gpus: tuple[GpuSnapshot, ...]
    sample_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "timestamp": self.timestamp,
            "status": self.status.to_dict(),
            "gpus": [g.to_dict() for g in self.gpus],
            "sample_seconds": self.sample_seconds,
        }
