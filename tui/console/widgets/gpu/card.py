"""One GPU's card on the dashboard: live readings, short history, guard state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from core.api.views import GpuView
from tui.console.widgets.common.text import set_text
from tui.console.widgets.gpu.metric import MetricRow
from tui.format import NA, gib, na


def gpu_details(gpu: GpuView) -> Content:
    """Memory, temperature, power against its limit, clocks and fan, on one line."""
    used, total = gpu.memory_used_bytes, gpu.memory_total_bytes
    memory = f"{gib(used)} / {gib(total)} GiB" if used is not None and total else NA
    watts = f"{na(gpu.power_w, '{:.0f}')} / {na(gpu.power_limit_w, '{:.0f}')} W"
    return Content.assemble(
        memory,
        "  ",
        na(gpu.temperature_c, "{}°C"),
        "  ",
        watts,
        "  ",
        ("sm ", "$text-muted"),
        na(gpu.clock_sm_mhz, "{} MHz"),
        "  ",
        ("mem ", "$text-muted"),
        na(gpu.clock_mem_mhz, "{} MHz"),
        "  ",
        ("fan ", "$text-muted"),
        na(gpu.fan_pct, "{}%"),
    )


class GpuCard(Vertical):
    """A GPU: utilization and memory with bars and history, the rest on one line.

    The dashboard sets ``gpu`` (one entry of the telemetry frame), ``guard`` (this GPU's
    guard reason) and the two histories; each child is updated only when its part changed.
    """

    gpu: var[GpuView | None] = var(None, init=False)
    guard: var[str] = var("", init=False)
    work: var[str] = var("", init=False)
    """What this GPU's worker does (empty off the network); the guard's reason wins."""
    util_history: var[tuple[float | None, ...]] = var((), init=False)
    mem_history: var[tuple[float | None, ...]] = var((), init=False)

    def compose(self) -> ComposeResult:
        yield MetricRow("util", id="util")
        yield MetricRow("mem", id="mem")
        yield Static(id="details", classes="gpu--details", markup=False)

    def on_mount(self) -> None:
        # Values set before the card was mounted (a new card) are shown now.
        if self.gpu is not None:
            self._show_gpu(self.gpu)
        self._show_guard(self.guard)
        self.query_one("#util", MetricRow).history = self.util_history
        self.query_one("#mem", MetricRow).history = self.mem_history

    def watch_gpu(self, gpu: GpuView | None) -> None:
        if self.is_mounted and gpu is not None:
            self._show_gpu(gpu)

    def watch_guard(self, guard: str) -> None:
        if self.is_mounted:
            self._show_guard(guard)

    def watch_work(self, work: str) -> None:
        if self.is_mounted:
            self._show_guard(self.guard)

    def watch_util_history(self, history: tuple[float | None, ...]) -> None:
        if self.is_mounted:
            self.query_one("#util", MetricRow).history = history

    def watch_mem_history(self, history: tuple[float | None, ...]) -> None:
        if self.is_mounted:
            self.query_one("#mem", MetricRow).history = history

    def _show_gpu(self, gpu: GpuView) -> None:
        title = f"GPU {gpu.index} · {gpu.name or 'unknown GPU'}"
        if self.border_title != title:
            self.border_title = title
        error = gpu.error
        self.set_class(bool(error), "-error")
        util = gpu.utilization_pct
        self.query_one("#util", MetricRow).value = None if util is None else float(util)
        self.query_one("#mem", MetricRow).value = gpu.memory_pct
        details = Content(f"error: {error}") if error else gpu_details(gpu)
        # One line whatever it says: no layout pass needed.
        set_text(self.query_one("#details", Static), details, layout=False)

    def _show_guard(self, guard: str) -> None:
        subtitle = (guard if guard.startswith("paused") else "") or self.work or guard or None
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
        self.set_class(guard.startswith("paused"), "-paused")
