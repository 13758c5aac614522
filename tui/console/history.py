"""A short per-GPU history of telemetry for the dashboard's sparklines.

The app owns it and feeds it every frame, whichever screen is showing, so a history has no
gap after a visit to another screen. A frame is recorded once: the periodic snapshot carries
the same frame the event stream already delivered, and its timestamp says so.
"""

from __future__ import annotations

from collections import deque

from core.api.views import TelemetryView

HISTORY_SAMPLES = 60


class TelemetryHistory:
    """Utilization and memory use (both percent) per GPU index, newest last."""

    def __init__(self, samples: int = HISTORY_SAMPLES) -> None:
        self.samples = samples
        self._util: dict[int, deque[float | None]] = {}
        self._mem: dict[int, deque[float | None]] = {}
        self._last_ts: float | None = None

    def add(self, telemetry: TelemetryView | None) -> bool:
        """Record a frame; False when it was already recorded (or there is none)."""
        if telemetry is None or telemetry.timestamp == self._last_ts:
            return False
        self._last_ts = telemetry.timestamp
        for gpu in telemetry.gpus:
            util = gpu.utilization_pct
            self._series(self._util, gpu.index).append(None if util is None else float(util))
            self._series(self._mem, gpu.index).append(gpu.memory_pct)
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
