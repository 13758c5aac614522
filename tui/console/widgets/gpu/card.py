"""One GPU's card on the dashboard: live readings, short history, guard state."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from tui.console.widgets.common.text import set_text
from tui.console.widgets.gpu.metric import MetricRow
from tui.format import NA, gib, na

JSON = dict[str, Any]


def gpu_details(gpu: JSON) -> Content:
    """Memory, temperature, power against its limit, clocks and fan, on one line."""
    used, total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
    memory = f"{gib(used)} / {gib(total)} GiB" if used is not None and total else NA
    power, limit = gpu.get("power_w"), gpu.get("power_limit_w")
    watts = f"{na(power, '{:.0f}')} / {na(limit, '{:.0f}')} W"
    return Content.assemble(
        memory,
        "  ",
        na(gpu.get("temperature_c"), "{}°C"),
        "  ",
        watts,
        "  ",
        ("sm ", "$text-muted"),
        na(gpu.get("clock_sm_mhz"), "{} MHz"),
        "  ",
        ("mem ", "$text-muted"),
        na(gpu.get("clock_mem_mhz"), "{} MHz"),
        "  ",
        ("fan ", "$text-muted"),
        na(gpu.get("fan_pct"), "{}%"),
    )


class GpuCard(Vertical):
    """A GPU: utilization and memory with bars and history, the rest on one line.

    The dashboard sets ``gpu`` (one entry of the telemetry frame), ``guard`` (this GPU's
    guard reason) and the two histories; each child is updated only when its part changed.
    """

    gpu: var[JSON] = var(dict, init=False)
    guard: var[str] = var("", init=False)
    util_history: var[tuple[float | None, ...]] = var((), init=False)
    mem_history: var[tuple[float | None, ...]] = var((), init=False)

    def compose(self) -> ComposeResult:
        yield MetricRow("util", id="util")
        yield MetricRow("mem", id="mem")
        yield Static(id="details", classes="gpu--details", markup=False)

    def on_mount(self) -> None:
        # Values set before the card was mounted (a new card) are shown now.
        self._show_gpu(self.gpu)
        self._show_guard(self.guard)
        self.query_one("#util", MetricRow).history = self.util_history
        self.query_one("#mem", MetricRow).history = self.mem_history

    def watch_gpu(self, gpu: JSON) -> None:
        if self.is_mounted:
            self._show_gpu(gpu)

    def watch_guard(self, guard: str) -> None:
        if self.is_mounted:
            self._show_guard(guard)

    def watch_util_history(self, history: tuple[float | None, ...]) -> None:
        if self.is_mounted:
            self.query_one("#util", MetricRow).history = history

    def watch_mem_history(self, history: tuple[float | None, ...]) -> None:
        if self.is_mounted:
            self.query_one("#mem", MetricRow).history = history

    def _show_gpu(self, gpu: JSON) -> None:
        index, name = gpu.get("index", "?"), gpu.get("name") or "unknown GPU"
        title = f"GPU {index} · {name}"
        if self.border_title != title:
            self.border_title = title
        error = gpu.get("error")
        self.set_class(bool(error), "-error")
        util = gpu.get("utilization_pct")
        used, total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
        self.query_one("#util", MetricRow).value = None if util is None else float(util)
        self.query_one("#mem", MetricRow).value = (
            100.0 * used / total if used is not None and total else None
        )
        details = Content(f"error: {error}") if error else gpu_details(gpu)
        # One line whatever it says: no layout pass needed.
        set_text(self.query_one("#details", Static), details, layout=False)

    def _show_guard(self, guard: str) -> None:
        if self.border_subtitle != (guard or None):
            self.border_subtitle = guard or None
        self.set_class(guard.startswith("paused"), "-paused")
