"""The fleet console: one row per rig (its node over its control socket), and each rig's detail.

``RigWatch`` (core) fetches each rig's snapshot every second and reports a ``RigStatus``;
the app turns each report into a ``RigUpdated`` message, keeps the latest per rig and
redraws that rig's row (and its detail screen when it shows). Enter on a row opens that
rig's own console (``omnitensor attach``, here or over ``ssh -t``) with the fleet suspended
until it quits; ``d`` shows the rig's detail: its GPUs, its work and what it has done. All
node calls happen in the watches' worker, never in a handler.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from core.api.fleet_watch import RigStatus, RigWatch, tunnel_directory
from core.api.views import NodeSnapshot
from core.fleet import FleetRig
from core.textsafe import printable
from tui.console.widgets.gpu.card import gpu_details
from tui.console.widgets.node.summary import done_text, work_line
from tui.format import NA, signed_omnit

COLUMNS = (
    ("rig", "Rig"),
    ("status", "Status"),
    ("gpus", "GPUs"),
    ("work", "Work"),
    ("today", "Today"),
    ("alerts", "Alerts"),
    ("why", "Why"),
)
REASON_WIDTH = 60


@dataclass
class RigUpdated(Message, bubble=False):
    """A rig's status after a try (online with a snapshot, or unreachable and why)."""

    status: RigStatus


def verified_units(snapshot: NodeSnapshot) -> int:
    counters = snapshot.counters
    return counters.acknowledged - counters.rejected


def gpus_cell(snapshot: NodeSnapshot) -> str:
    """``2 · max 64°C``, ``2`` (no temperature) or ``none``."""
    telemetry = snapshot.telemetry
    gpus = telemetry.gpus if telemetry is not None else ()
    if not gpus:
        return "none"
    temps = [g.temperature_c for g in gpus if g.temperature_c is not None]
    return f"{len(gpus)} · max {max(temps)}°C" if temps else str(len(gpus))


def row_cells(status: RigStatus | None, rig: FleetRig) -> list[Text | str]:
    """One rig's row: name, status, GPUs, work, today, alerts, and why it is unreachable
    (last: a long reason never pushes the numbers off a narrow terminal). The numbers read
    ``n/a`` while the rig is unreachable.

    Rich ``Text`` rather than ``Content``: the table sizes its columns by measuring cells.
    """
    name = printable(rig.name)
    if status is None:
        return [name, Text("connecting…", style="dim"), NA, NA, NA, NA, ""]
    snapshot = status.snapshot
    if not status.online or snapshot is None:
        why = printable(status.reason, REASON_WIDTH)
        return [name, Text("unreachable", style="bold red"), NA, NA, NA, NA, why]
    wallet = snapshot.wallet
    alerts = len(snapshot.alerts)
    return [
        name,
        Text("online", style="bold green"),
        gpus_cell(snapshot),
        f"{snapshot.work.state} · {verified_units(snapshot)} verified",
        f"{signed_omnit(wallet.earned_today)} OMNIT" if wallet is not None else NA,
        Text(str(alerts), style="bold yellow") if alerts else "0",
        "",
    ]


def detail_lines(rig: FleetRig, status: RigStatus | None) -> Content:
    """A rig's detail: where it is, online or why not, each GPU, work, done, alerts."""
    lines = [Content.assemble((printable(rig.name), "bold"), f"  {printable(rig.where)}")]
    if status is None:
        lines.append(Content.styled("connecting…", "$text-muted"))
        return Content("\n").join(lines)
    if status.online:
        lines.append(Content.styled("online", "$success"))
    else:
        lines.append(
            Content.assemble(("unreachable", "$error"), f": {printable(status.reason, 200)}")
        )
    snapshot = status.snapshot
    if snapshot is None:
        return Content("\n").join(lines)
    if not status.online:
        lines.append(Content.styled("last known state:", "$text-muted"))
    node = snapshot.node
    lines.append(Content(f"node {printable(node.name)} ({node.short_id}), pid {node.pid}"))
    telemetry = snapshot.telemetry
    gpus = telemetry.gpus if telemetry is not None else ()
    if not gpus:
        reason = telemetry.status.reason if telemetry is not None else "no telemetry yet"
        lines.append(Content.assemble(("no GPU", "$warning"), f": {printable(reason, 120)}"))
    for gpu in gpus:
        util = NA if gpu.utilization_pct is None else f"{gpu.utilization_pct}%"
        lines.append(
            Content.assemble(
                (f"GPU {gpu.index} · {printable(gpu.name or NA, 40)}", "bold"),
                f"  util {util}  ",
                gpu_details(gpu),
            )
        )
    lines.append(work_line(snapshot, None))
    lines.append(done_text(snapshot, status.checked_ts))
    for alert in snapshot.alerts:
        lines.append(Content.assemble(("alert ", "$warning"), printable(alert.message, 120)))
    return Content("\n").join(lines)


class RigScreen(Screen[None]):
    """One rig's detail; Escape goes back to the fleet, Enter opens the rig's console."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Fleet")]

    def __init__(self, rig: FleetRig, status: RigStatus | None) -> None:
        super().__init__()
        self.rig = rig
        self.status = status
        self.sub_title = rig.name

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(detail_lines(self.rig, self.status), id="rig-detail")
        yield Footer()

    def show(self, status: RigStatus) -> None:
        self.status = status
        self.query_one("#rig-detail", Static).update(detail_lines(self.rig, status))


class FleetApp(App[int]):
    """Every configured rig in one table."""

    TITLE = "OmniTensor Fleet"
    CSS = """
    #rigs { height: 1fr; }
    #rig-detail { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", priority=True),
        # Priority: the table would take Enter for itself (select the row).
        Binding(
            "enter",
            "console",
            "Console",
            priority=True,
            tooltip="Open the rig's own console (attach); quit it to come back here.",
        ),
        Binding("d", "detail", "Detail", tooltip="Show the rig's GPUs and work."),
        # The key that opened a rig's console before Enter did: kept, not shown.
        Binding("o", "console", "Console", show=False),
    ]

    def __init__(self, rigs: Iterable[FleetRig], *, watch: bool = True) -> None:
        super().__init__()
        self.rigs = {rig.name: rig for rig in rigs}
        self.statuses: dict[str, RigStatus] = {}
        self.watching = watch
        self.watches: list[RigWatch] = []
        self.tunnel_dir: Path | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="rigs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#rigs", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        for name, rig in self.rigs.items():
            table.add_row(*row_cells(None, rig), key=name)
        if self.watching:
            self.watch_rigs()

    @work(exclusive=True, group="rigs", exit_on_error=False, description="Rig watches")
    async def watch_rigs(self) -> None:
        """Watch every rig until the app ends (ssh forwards stop with it)."""
        if any(rig.ssh is not None for rig in self.rigs.values()):
            self.tunnel_dir = tunnel_directory()
        self.watches = [
            RigWatch(rig, self._report, tunnel_dir=self.tunnel_dir) for rig in self.rigs.values()
        ]
        try:
            await asyncio.gather(*(w.run() for w in self.watches))
        finally:
            await self.close_watches()

    async def close_watches(self) -> None:
        """Stop every ssh forward and remove their directory (safe to call again)."""
        for watch in self.watches:
            if watch.tunnel is not None:
                await watch.tunnel.close()
        if self.tunnel_dir is not None:
            shutil.rmtree(self.tunnel_dir, ignore_errors=True)
            self.tunnel_dir = None

    def _report(self, status: RigStatus) -> None:
        self.post_message(RigUpdated(status))

    @on(RigUpdated)
    def _rig_updated(self, message: RigUpdated) -> None:
        status = message.status
        name = status.rig.name
        if name not in self.rigs:
            return
        self.statuses[name] = status
        table = self.query_one("#rigs", DataTable)
        for (key, _label), cell in zip(COLUMNS, row_cells(status, status.rig), strict=True):
            table.update_cell(name, key, cell, update_width=True)
        for screen in self.screen_stack:
            if isinstance(screen, RigScreen) and screen.rig.name == name:
                screen.show(status)

    def selected_rig(self) -> FleetRig | None:
        """The rig whose detail shows, else the rig under the table's cursor."""
        if isinstance(self.screen, RigScreen):
            return self.screen.rig
        table = self.query_one("#rigs", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self.rigs.get(str(row_key.value))

    def action_detail(self) -> None:
        rig = self.selected_rig()
        if rig is not None and not isinstance(self.screen, RigScreen):
            self.open_rig(rig.name)

    async def action_console(self) -> None:
        """Suspend the fleet, run the selected rig's own console, come back when it quits."""
        rig = self.selected_rig()
        if rig is None:
            return
        try:
            with self.suspend():
                proc = await asyncio.create_subprocess_exec(*console_command(rig))
                code = await proc.wait()
        except (OSError, SuspendNotSupported) as exc:
            self.notify(f"cannot open {rig.name}'s console: {exc}", severity="error")
            return
        if code != 0:
            # What it printed went to the normal screen, gone when the fleet came back: say
            # that it failed here, with why the rig is unreachable when the watch knows.
            status = self.statuses.get(rig.name)
            why = (
                f": {printable(status.reason, REASON_WIDTH)}"
                if status and not status.online
                else ""
            )
            self.notify(f"{rig.name}'s console exited {code}{why}", severity="error", timeout=10)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The detail view shows one rig already: no "Detail" in its footer.
        return not (action == "detail" and isinstance(self.screen, RigScreen))

    def open_rig(self, name: str) -> None:
        """Show one rig's detail screen."""
        rig = self.rigs.get(name)
        if rig is not None and not isinstance(self.screen, RigScreen):
            self.push_screen(RigScreen(rig, self.statuses.get(name)))


def console_command(rig: FleetRig, ssh: str = "ssh") -> list[str]:
    """The command that opens ``rig``'s own console: ``omnitensor attach`` on its data dir,
    here, or on the rig itself over ``ssh -t`` (the remote's ``omnitensor`` on its PATH)."""
    if rig.data_dir is not None:
        return [sys.executable, "-m", "tui", "attach", "--data-dir", str(rig.data_dir)]
    assert rig.ssh is not None and rig.remote_data_dir is not None
    remote = f"omnitensor attach --data-dir {shlex.quote(str(rig.remote_data_dir))}"
    return [ssh, "-t", "--", rig.ssh, remote]


async def run_fleet(rigs: Iterable[FleetRig]) -> int:
    """Run the fleet console until the user quits; the exit code."""
    app = FleetApp(rigs)
    try:
        await app.run_async()
    finally:
        await app.close_watches()
    return app.return_code or 0
