"""When the console draws what the node sends: telemetry at a bounded rate, and a node
change's snapshot together with a telemetry frame.

Each redraw is a compositor pass, and a pass costs about as much as rendering the frame's
widgets. A working node sends a telemetry frame a second and a change event (work done,
receipts, quests) about as often, each change asking for a snapshot; drawn as they come,
that is two passes a second. So a change waits for the next telemetry frame (at most
``CHANGE_WAIT`` seconds), that frame asks for the snapshot and is held until it lands (at
most ``HOLD`` seconds), and both are drawn in one pass. What is shown is the same; a change
shows up to one telemetry interval later (bounded by ``CHANGE_WAIT``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import msgspec
from textual.timer import Timer

from core.api.views import NodeSnapshot
from tui.console.messages import TelemetryReceived

CHANGE_WAIT = 1.0
"""The longest a node change waits for a telemetry frame before its snapshot is fetched."""
HOLD = 0.5
"""The longest a telemetry frame waits for the snapshot it asked for before it is drawn."""


class PacedApp(Protocol):
    """What the pacer needs of the app."""

    snapshot: NodeSnapshot | None

    def set_timer(self, delay: float, callback: Callable[[], None]) -> Timer: ...

    def request_refresh(self) -> None: ...


class FramePacer:
    """Decides when a telemetry frame or a snapshot becomes the app's ``snapshot``."""

    def __init__(self, app: PacedApp, min_interval: float) -> None:
        self.app = app
        self.min_interval = min_interval
        """Seconds between two telemetry redraws at least (telemetry can come faster)."""
        self._last_push = 0.0
        self._pending: TelemetryReceived | None = None  # too soon after the last redraw
        self._pending_timer: Timer | None = None
        self._changed = False  # a node change waits for a frame to fetch its snapshot
        self._change_timer: Timer | None = None
        self._held: TelemetryReceived | None = None  # a frame waiting for that snapshot
        self._held_timer: Timer | None = None

    def node_changed(self) -> None:
        """The node's state changed outside telemetry: fetch a snapshot with the next frame."""
        if self._changed or self._held is not None:
            return  # a snapshot is already due, and will carry this change too
        self._changed = True
        self._change_timer = self.app.set_timer(CHANGE_WAIT, self._change_due)

    def _change_due(self) -> None:
        """No frame came in time (telemetry is slow or stopped): fetch now."""
        self._change_timer = None
        if self._changed:
            self._changed = False
            self.app.request_refresh()

    def telemetry(self, message: TelemetryReceived) -> None:
        """A frame: drawn now, later (too soon after the last), or with the due snapshot."""
        if self._changed:
            self._changed = False
            _stop(self._change_timer)
            self._change_timer = None
            self._held = message
            self.app.request_refresh()
            self._held_timer = self.app.set_timer(HOLD, self._release)
            return
        if self._held is not None:
            self._held = message  # still waiting for the snapshot: keep the newest frame
            return
        wait = self._last_push + self.min_interval - time.monotonic()
        if wait > 0:
            # Too soon after the last redraw: keep the newest frame and draw it later.
            self._pending = message
            if self._pending_timer is None:
                self._pending_timer = self.app.set_timer(wait, self._flush)
            return
        self._apply(message)

    def snapshot(self, snapshot: NodeSnapshot) -> None:
        """A fetched snapshot: drawn now, with the held frame when that one is newer."""
        held, self._held = self._held, None
        _stop(self._held_timer)
        self._held_timer = None
        if held is not None and _newer(held, snapshot):
            snapshot = _merged(snapshot, held)
        if held is not None:
            self._last_push = time.monotonic()
        self.app.snapshot = snapshot

    def _release(self) -> None:
        """The snapshot is late: draw the held frame on its own."""
        self._held_timer = None
        held, self._held = self._held, None
        if held is not None:
            self._apply(held)

    def _flush(self) -> None:
        self._pending_timer = None
        pending, self._pending = self._pending, None
        if pending is not None:
            self._apply(pending)

    def _apply(self, message: TelemetryReceived) -> None:
        self._last_push = time.monotonic()
        if self.app.snapshot is not None:
            self.app.snapshot = _merged(self.app.snapshot, message)


def _newer(message: TelemetryReceived, snapshot: NodeSnapshot) -> bool:
    telemetry = snapshot.telemetry
    return telemetry is None or message.telemetry.timestamp > telemetry.timestamp


def _merged(snapshot: NodeSnapshot, message: TelemetryReceived) -> NodeSnapshot:
    return msgspec.structs.replace(snapshot, telemetry=message.telemetry, guard=message.guard)


def _stop(timer: Timer | None) -> None:
    if timer is not None:
        timer.stop()
