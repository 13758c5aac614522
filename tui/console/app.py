"""The OmniTensor console: a Textual app over a node's API (in-process or over its socket).

The app is a view and a remote control. One worker reads the node's event stream and posts
coalesced messages; another fetches the whole snapshot every few seconds (at once after a
command; with the next telemetry frame after a node change: ``pacing.py``). The app keeps
the latest state and sets it on the screen that shows ("attributes down"); screens ask for
commands with messages ("messages up") and the app runs them in workers. Every call to the
node is awaited in a worker, never in a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from typing import Any, ClassVar, TypeVar

from textual import events, on, work
from textual.binding import BindingType
from textual.geometry import Size
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Input

from core.api.client import NodeAPI
from core.api.commands import GetLog, Request, RunBench
from core.api.events import (
    BenchDoneEvent,
    BenchProgressEvent,
    LogEvent,
    LogLine,
    TelemetryEvent,
)
from core.api.views import BenchProgressView, NodeSnapshot
from tui.console.app_base import ConsoleBase
from tui.console.history import TelemetryHistory
from tui.console.host import NODE_ERRORS
from tui.console.keys import (
    APP_BINDINGS,
    NAMED_SCREEN_KEYS_WIDTH,
    help_sections,
)
from tui.console.log_buffer import LogBuffer
from tui.console.messages import (
    BenchProgressed,
    CommandFinished,
    CommandRequested,
    LogReceived,
    NodeChanged,
    NodeLost,
    SnapshotFetched,
    TelemetryReceived,
)
from tui.console.pacing import FramePacer
from tui.console.screens.base import NodeScreen
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.data import DataScreen
from tui.console.screens.governance import GovernanceScreen
from tui.console.screens.guard import QuitScreen, TooSmallScreen, earning, fits
from tui.console.screens.help import HelpScreen, HelpSection
from tui.console.screens.leaderboards import LeaderboardsScreen
from tui.console.screens.log import LogScreen
from tui.console.screens.quests import QuestsScreen
from tui.console.screens.season import SeasonScreen
from tui.console.screens.wallet import WalletScreen

SNAPSHOT_INTERVAL = 5.0
"""Seconds between full snapshots; telemetry and log lines arrive as events meanwhile."""
# Redraw telemetry at most this often: plenty on a local terminal, and over SSH every
# frame costs bandwidth and latency, so one a second is enough to read it.
MAX_TELEMETRY_HZ = 4.0
MAX_TELEMETRY_HZ_SSH = 1.0

S = TypeVar("S", bound=Screen[Any])


def over_ssh() -> bool:
    """Whether the console runs in an SSH session."""
    return bool(os.environ.get("SSH_CONNECTION"))


class OmniTensorApp(ConsoleBase):
    """The live console. Build it with ``make_app``."""

    TITLE = "OmniTensor Console"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "quests": QuestsScreen,
        "season": SeasonScreen,
        "leaderboards": LeaderboardsScreen,
        "wallet": WalletScreen,
        "log": LogScreen,
        "data": DataScreen,
        "governance": GovernanceScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDING_GROUP_TITLE = "Console"
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS

    bench: var[BenchProgressView | None] = var(None, init=False)
    """Live benchmark progress while a benchmark runs."""
    connected: var[bool] = var(True, init=False)

    def __init__(self, client: NodeAPI, *, ssh: bool, attached: bool = False) -> None:
        super().__init__()
        self.client = client
        self.ssh = ssh
        self.attached = attached
        self.history = TelemetryHistory()
        self.log_buffer = LogBuffer()
        self._refresh_now = asyncio.Event()
        self.pacer = FramePacer(self, 1.0 / (MAX_TELEMETRY_HZ_SSH if ssh else MAX_TELEMETRY_HZ))
        if ssh:
            self.animation_level = "none"

    # -- start-up --------------------------------------------------------------------------

    def on_mount(self) -> None:
        # The header shows the app's title and the screen's name: the connection goes with
        # the title so every screen says it.
        self._set_title()
        self.call_after_refresh(self._check_size)
        self.consume_events()
        self.poll_snapshots()
        self.load_log_history()

    @work(exclusive=True, group="node-events", exit_on_error=False, description="Node events")
    async def consume_events(self) -> None:
        """Turn the node's events into (coalesced) messages for as long as the node runs."""
        try:
            async for event in self.client.events():
                if isinstance(event, TelemetryEvent):
                    self.post_message(TelemetryReceived(event.telemetry, event.guard))
                elif isinstance(event, LogEvent):
                    self.post_message(LogReceived([event]))
                    if event.kind == "alert":
                        self.request_refresh()  # the dashboard lists alerts: show it now
                elif isinstance(event, BenchProgressEvent):
                    self.post_message(BenchProgressed(event.stage, event.fraction))
                else:
                    if isinstance(event, BenchDoneEvent):
                        self.post_message(BenchProgressed(None, None))
                    self.post_message(NodeChanged(event.tag))
        except NODE_ERRORS as exc:
            self.post_message(NodeLost(str(exc) or type(exc).__name__))
            return
        self.post_message(NodeLost("the node closed the connection"))

    @work(exclusive=True, group="snapshot", exit_on_error=False, description="Node snapshots")
    async def poll_snapshots(self) -> None:
        """Fetch the whole state now, then every few seconds or when asked; never overlapping."""
        while True:
            self._refresh_now.clear()
            try:
                snapshot = await self.client.snapshot()
            except NODE_ERRORS as exc:
                self.post_message(NodeLost(str(exc) or type(exc).__name__))
            else:
                self.post_message(SnapshotFetched(snapshot))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), SNAPSHOT_INTERVAL)

    @work(exclusive=True, group="log-history", exit_on_error=False, description="Log history")
    async def load_log_history(self) -> None:
        """The node's stored log, once (live lines arrive as events)."""
        try:
            result = await self.client.command(GetLog(limit=500))
        except NODE_ERRORS as exc:
            line = LogEvent(
                ts=time.time(),
                level="warning",
                kind="console",
                message=f"log history not available: {exc}",
                data={},
            )
            self.post_message(LogReceived([line]))
            return
        events = sorted(result.events, key=lambda e: (e.ts, e.id))
        self.post_message(LogReceived(events, history=True))

    def request_refresh(self) -> None:
        """Fetch a snapshot now instead of at the next interval."""
        self._refresh_now.set()

    # -- state in, state down --------------------------------------------------------------

    @on(SnapshotFetched)
    def _snapshot_fetched(self, message: SnapshotFetched) -> None:
        self.connected = True
        snapshot = message.snapshot
        self.history.add(snapshot.telemetry)
        if snapshot.work.state != "benchmarking":
            # A progress event may have been dropped at the end: the state says it is over.
            self.bench = None
        self.pacer.snapshot(snapshot)  # with a telemetry frame held for it, if any

    @on(TelemetryReceived)
    def _telemetry_received(self, message: TelemetryReceived) -> None:
        self.history.add(message.telemetry)
        self.pacer.telemetry(message)  # drawn now, later, or with a due snapshot

    @on(BenchProgressed)
    def _bench_progressed(self, message: BenchProgressed) -> None:
        if message.stage is None or message.fraction is None:
            self.bench = None
        else:
            self.bench = BenchProgressView(stage=message.stage, fraction=message.fraction)

    @on(NodeChanged)
    def _node_changed(self, message: NodeChanged) -> None:
        self.pacer.node_changed()  # its snapshot is fetched with the next telemetry frame

    @property
    def log_entries(self) -> deque[LogLine]:
        """The node's last log lines, oldest first."""
        return self.log_buffer.entries

    @property
    def log_serial(self) -> int:
        """How many log lines were ever added (the buffer keeps the last ones)."""
        return self.log_buffer.serial

    @property
    def log_generation(self) -> int:
        """Grows when log lines were put before the last one (views redraw then)."""
        return self.log_buffer.generation

    @on(LogReceived)
    def _log_received(self, message: LogReceived) -> None:
        if self.log_buffer.add(message.entries):
            for screen in self._showing(LogScreen):
                screen.sync_log(self.log_entries, self.log_serial, self.log_generation)

    # -- notifications and screenshots ----------------------------------------------------

    @on(NodeLost)
    def _node_lost(self, message: NodeLost) -> None:
        if self.connected:
            self.connected = False
            self.notify(f"lost the node: {message.reason}", severity="error", timeout=10)
        self._set_title()

    def watch_connected(self, connected: bool) -> None:
        self._set_title()

    def _set_title(self) -> None:
        state = "attached" if self.attached else ""
        if not self.connected:
            state = "disconnected"
        self.title = f"{self.TITLE} · {state}" if state else self.TITLE

    def watch_snapshot(self, snapshot: NodeSnapshot | None) -> None:
        for screen in self._showing(NodeScreen):
            self._push(screen)

    def watch_bench(self, bench: BenchProgressView | None) -> None:
        for screen in self._showing(NodeScreen):
            screen.bench = bench

    def _showing(self, kind: type[S]) -> list[S]:
        """Screens of ``kind`` in the current mode's stack (under a modal, they still show)."""
        return [s for s in self.screen_stack if isinstance(s, kind)]

    def _push(self, screen: NodeScreen) -> None:
        """Set the app's state on a screen (it redraws only what changed)."""
        if isinstance(screen, DashboardScreen):
            screen.history = self.history
        screen.bench = self.bench
        if self.snapshot is not None:
            screen.snapshot = self.snapshot
        if isinstance(screen, LogScreen):
            screen.sync_log(self.log_entries, self.log_serial, self.log_generation)

    # -- commands --------------------------------------------------------------------------

    @on(CommandRequested)
    def _command_requested(self, message: CommandRequested) -> None:
        message.stop()
        self.run_command(message.request, message.label)

    def run_command(self, request: Request[Any], label: str) -> None:
        """Run a node command in a worker; the result comes back as ``CommandFinished``."""
        self._command(request, label)

    @work(group="commands", exit_on_error=False, description="Node command")
    async def _command(self, request: Request[Any], label: str) -> None:
        try:
            result = await self.client.command(request)
        except NODE_ERRORS as exc:
            self.post_message(CommandFinished(request, label, error=str(exc)))
        else:
            self.post_message(CommandFinished(request, label, result=result))

    @on(CommandFinished)
    def _command_finished(self, message: CommandFinished) -> None:
        if message.ok:
            self.notify(message.summary(), title=message.label, timeout=6)
        else:
            self.notify(
                str(message.error), title=f"{message.label}: refused", severity="error", timeout=8
            )
        self.request_refresh()

    # -- actions ---------------------------------------------------------------------------

    async def action_show(self, mode: str) -> None:
        """Switch to a top-level screen and give it the current state at once."""
        if mode != self.current_mode:
            await self.switch_mode(mode)
            self._check_size()
        if isinstance(self.screen, NodeScreen):
            self._push(self.screen)

    async def action_screen(self, mode: str) -> None:
        """``show`` as the narrow footer's grouped keys name it."""
        await self.action_show(mode)

    def on_resize(self, event: events.Resize) -> None:
        self.refresh_bindings()
        # This runs before App's own handler has stored the new size: use the event's.
        self._check_size(event.size)

    @property
    def too_small(self) -> bool:
        """Whether the terminal is below the size the console draws in."""
        return not fits(self.size.width, self.size.height)

    def _check_size(self, size: Size | None = None) -> None:
        """Cover the screen with "too small" below 80x24; uncover it when big enough."""
        too_small = self.too_small if size is None else not fits(size.width, size.height)
        covered = any(isinstance(s, TooSmallScreen) for s in self.screen_stack)
        if too_small and not covered:
            self.push_screen(TooSmallScreen())
        elif not too_small and isinstance(self.screen, TooSmallScreen):
            self.pop_screen()
        # (under a modal, the "too small" screen closes itself when the modal does)

    async def action_quit(self) -> None:
        """Leave the console; the console that runs its node asks first when it earns."""
        if isinstance(self.screen, QuitScreen):
            return
        if self.attached or not earning(self.snapshot):
            self.exit()
            return
        assert self.snapshot is not None
        self.push_screen(QuitScreen(self.snapshot), self._quit_answered)

    def _quit_answered(self, stop: bool | None) -> None:
        if stop:
            self.exit()

    def action_bench(self) -> None:
        self.run_command(RunBench(quick=True), "quick benchmark")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("show", "screen", "bench", "help") and self.too_small:
            return False  # nothing to show them on; q still quits
        if action in ("show", "screen"):
            wide = self.size.width >= NAMED_SCREEN_KEYS_WIDTH
            return wide if action == "show" else not wide
        # q is a priority binding; in a text field it is a letter (ctrl+q still quits).
        return not (action == "quit" and isinstance(self.focused, Input))

    def bench_help(self) -> str:
        """What ``b`` does here: the GPUs' benchmark, or the node's (the CPU) without one."""
        telemetry = self.snapshot.telemetry if self.snapshot is not None else None
        if telemetry is not None and telemetry.gpus:
            gpus = "GPU" if len(telemetry.gpus) == 1 else "GPUs"
            return f"Benchmark this node's {gpus} now"
        return "Benchmark this node now"

    def help_sections(self) -> list[HelpSection]:
        """Every binding, grouped by where it works."""
        return help_sections(self.BINDINGS, self.MODES)


def make_app(client: NodeAPI, *, ssh: bool | None = None, attached: bool = False) -> OmniTensorApp:
    """The console over ``client``; ``ssh`` (default: ``$SSH_CONNECTION`` is set) slows
    redraws and turns animations off; ``attached`` says the node runs on its own."""
    return OmniTensorApp(client, ssh=over_ssh() if ssh is None else ssh, attached=attached)
