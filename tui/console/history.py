"""A short per-GPU history of telemetry for the dashboard's sparklines.

The app owns it and feeds it every frame, whichever screen is showing, so a history has no
gap after a visit to another screen. A frame is recorded once: the periodic snapshot carries
the same frame the event stream already delivered, and its timestamp says so.
"""

from __future__ import annotations

from collections import deque
from typing import Any

HISTORY_SAMPLES = 60


class TelemetryHistory:
    """Utilization and memory use (both percent) per GPU index, newest last."""

    def __init__(self, samples: int = HISTORY_SAMPLES) -> None:
        self.samples = samples
        self._util: dict[int, deque[float | None]] = {}
        self._mem: dict[int, deque[float | None]] = {}
        self._last_ts: float | None = None

    def add(self, telemetry: dict[str, Any] | None) -> bool:
        """Record a frame; False when it was already recorded (or carries no timestamp)."""
        if not telemetry:
            return False
        ts = telemetry.get("timestamp")
        if ts is None or ts == self._last_ts:
            return False
        self._last_ts = ts
        for gpu in telemetry.get("gpus") or []:
            index = int(gpu["index"])
            util = gpu.get("utilization_pct")
            used, total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
            mem = 100.0 * used / total if used is not None and total else None
            self._series(self._util, index).append(None if util is None else float(util))
            self._series(self._mem, index).append(mem)
        return True

    def _series(self, table: dict[int, deque[float | None]], index: int) -> deque[float | None]:
        series = table.get(index)
        if series is None:
            series = table[index] = deque(maxlen=self.samples)
        return series

    def utilization(self, index: int) -> tuple[float | None, ...]:
        """GPU ``index``'s utilization samples (percent; None where not reported)."""
        return tuple(self._util.get(index, ()))

    def memory(self, index: int) -> tuple[float | None, ...]:
        """GPU ``index``'s memory-use samples (percent of total)."""
        return tuple(self._mem.get(index, ()))
