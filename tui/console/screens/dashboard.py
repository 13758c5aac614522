"""Screen 1: every GPU live, the node, its work and earnings, multiplier and events."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.api.views import BenchProgressView, GuardView, NodeSnapshot, WorkerView
from tui.console.history import TelemetryHistory
from tui.console.screens.base import NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.gpu.card import GpuCard
from tui.console.widgets.node.summary import (
    alerts_text,
    multiplier_banner,
    node_line,
    overview_text,
    upcoming_events,
    work_line,
)


def worker_line(worker: WorkerView) -> str:
    """The GPU's work, for its card: ``computing u1a2b3 · 12 done``."""
    doing = f"computing {worker.unit}" if worker.state == "computing" else worker.state
    return f"{doing} · {worker.done} done"


def _guard_reasons(guard: GuardView | None) -> dict[int, str]:
    return {g.index: g.reason for g in guard.gpus} if guard is not None else {}


class DashboardScreen(NodeScreen):
    """GPU cards with history, the node line, work and earnings, multiplier, events."""

    SUB_TITLE = "Dashboard"

    history: TelemetryHistory | None = None
    """Set by the app before the first snapshot: the per-GPU sample history it keeps."""

    def compose(self) -> ComposeResult:
        yield header()
        yield Static(id="banner", markup=False)
        yield Static("starting…", id="node-line", markup=False)
        yield Static(id="work-line", markup=False)
        yield Static(id="alerts", markup=False)
        yield Static(id="overview", markup=False)
        with VerticalScroll(id="gpus"):
            yield Static(id="no-gpu", markup=False)
        yield Static(id="events", markup=False)
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#banner").display = False
        self.query_one("#alerts").display = False
        self.query_one("#no-gpu").display = False

    def on_resize(self) -> None:
        # Two columns of cards where the terminal is wide enough for both to stay readable.
        self.query_one("#gpus").set_class(self.size.width >= 140, "-wide")

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        now = time.time()
        banner = self.query_one("#banner", Static)
        text = multiplier_banner(snapshot.multiplier, now)
        if banner.display != (text is not None):
            banner.display = text is not None
        if text is not None:
            set_text(banner, text)
        set_text(self.query_one("#node-line", Static), node_line(snapshot, now))
        set_text(self.query_one("#work-line", Static), work_line(snapshot, self.bench))
        set_text(self.query_one("#events", Static), upcoming_events(snapshot.multiplier))
        set_text(self.query_one("#overview", Static), overview_text(snapshot, now))
        alerts = self.query_one("#alerts", Static)
        if alerts.display != bool(snapshot.alerts):
            alerts.display = bool(snapshot.alerts)
        if snapshot.alerts:
            set_text(alerts, alerts_text(snapshot))
        self._show_gpus(snapshot)

    def show_bench(self, bench: BenchProgressView | None) -> None:
        if self.snapshot is not None:
            set_text(self.query_one("#work-line", Static), work_line(self.snapshot, bench))

    def _show_gpus(self, snapshot: NodeSnapshot) -> None:
        telemetry = snapshot.telemetry
        gpus = telemetry.gpus if telemetry is not None else ()
        container = self.query_one("#gpus", VerticalScroll)
        no_gpu = self.query_one("#no-gpu", Static)
        if not gpus:
            # Say plainly why there is no GPU: the rest of the console works without one.
            status = telemetry.status if telemetry is not None else None
            reason = (status.reason if status else "") or "waiting for the first telemetry frame"
            backend = snapshot.backend
            text = f"No GPU: {reason}"
            if status is not None and backend.name and not backend.error:
                text += f"\nWork runs on the {backend.name} backend."
            set_text(no_gpu, text)
            no_gpu.display = True
            self._sync_cards(container, [])
            return
        no_gpu.display = False
        cards = self._sync_cards(container, [g.index for g in gpus])
        reasons = _guard_reasons(snapshot.guard)
        work = {w.gpu: w for w in snapshot.workers if w.gpu is not None}
        for card, gpu in zip(cards, gpus, strict=True):
            index = gpu.index
            card.gpu = gpu
            card.guard = reasons.get(index, "")
            card.work = worker_line(work[index]) if index in work else ""
            if self.history is not None:
                card.util_history = self.history.utilization(index)
                card.mem_history = self.history.memory(index)

    def _sync_cards(self, container: VerticalScroll, indices: list[int]) -> list[GpuCard]:
        """The cards for ``indices``, replacing them only when the set of GPUs changed."""
        cards = list(container.query(GpuCard))
        if [c.gpu.index if c.gpu else None for c in cards] != indices:
            for card in cards:
                card.remove()
            cards = [GpuCard(classes="gpu") for _ in indices]
            if cards:
                container.mount_all(cards)
        return cards
