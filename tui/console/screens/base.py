"""The base of the console's screens: state comes down from the app as attributes."""

from __future__ import annotations

import contextlib
from typing import Any

from textual.css.query import NoMatches
from textual.reactive import var
from textual.screen import Screen

from core.api.commands import Request
from core.api.views import BenchProgressView, NodeSnapshot
from tui.console.host import ConsoleHost
from tui.console.messages import CommandRequested


class NodeScreen(Screen[None]):
    """A top-level screen (a mode) showing part of the node's state.

    The app sets ``snapshot`` (the latest node state, telemetry merged in) and ``bench``
    (live benchmark progress) on the screen that is showing; ``var`` compares the new value
    with the old one, so a screen whose state did not change does no work. Screens ask for
    commands with ``CommandRequested`` (messages up) and never call the node themselves,
    except to read pages of data that only they show (leaderboards, log history).
    """

    snapshot: var[NodeSnapshot | None] = var(None, init=False)
    """The node's state, as ``NodeAPI.snapshot()`` returns it."""
    bench: var[BenchProgressView | None] = var(None, init=False)
    """Live benchmark progress while one runs, else None."""

    @property
    def omni(self) -> ConsoleHost:
        """The app, as a host of screens (the node's API and the log)."""
        app = self.app
        assert isinstance(app, ConsoleHost)
        return app

    def watch_snapshot(self, snapshot: NodeSnapshot | None) -> None:
        if snapshot is not None and self.is_mounted:
            # A state can land between the screen's mount and its children's: on_mount
            # shows the latest one once they are there.
            with contextlib.suppress(NoMatches):
                self.show_snapshot(snapshot)

    def watch_bench(self, bench: BenchProgressView | None) -> None:
        if self.is_mounted:
            with contextlib.suppress(NoMatches):
                self.show_bench(bench)

    def on_mount(self) -> None:
        if self.snapshot is not None:
            self.show_snapshot(self.snapshot)

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        """Show a new state (called only when it differs from the last one)."""

    def show_bench(self, bench: BenchProgressView | None) -> None:
        """Show benchmark progress (None: no benchmark running)."""

    def request(self, request: Request[Any], label: str) -> None:
        """Ask the app to run a node command; ``label`` names it for the user."""
        self.post_message(CommandRequested(request, label))
