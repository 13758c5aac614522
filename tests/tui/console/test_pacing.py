"""The frame pacer: a node change's snapshot is drawn with a telemetry frame, in one pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import msgspec

from core.api.views import GuardView, NodeSnapshot, TelemetryStatusView, TelemetryView
from core.node.service import Node
from tui.console.messages import TelemetryReceived
from tui.console.pacing import CHANGE_WAIT, HOLD, FramePacer

STATUS = TelemetryStatusView(available=True, reason="", driver_version="1", gpu_count=0)
GUARD = GuardView(paused=False, summary="all running", gpus=())


def frame(ts: float) -> TelemetryReceived:
    telemetry = TelemetryView(timestamp=ts, status=STATUS, gpus=(), sample_seconds=0.0)
    return TelemetryReceived(telemetry, GUARD)


class FakeTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay, self.callback, self.stopped = delay, callback, False

    def stop(self) -> None:
        self.stopped = True

    def fire(self) -> None:
        assert not self.stopped
        self.callback()


class FakeApp:
    """The app as the pacer sees it: its snapshot, timers it can fire, refreshes counted."""

    def __init__(self, snapshot: NodeSnapshot) -> None:
        self.snapshot: NodeSnapshot | None = snapshot
        self.timers: list[FakeTimer] = []
        self.refreshes = 0

    def set_timer(self, delay: float, callback: Callable[[], None]) -> Any:
        self.timers.append(FakeTimer(delay, callback))
        return self.timers[-1]

    def request_refresh(self) -> None:
        self.refreshes += 1

    def shown_ts(self) -> float | None:
        assert self.snapshot is not None
        return self.snapshot.telemetry.timestamp if self.snapshot.telemetry else None


def _at(snapshot: NodeSnapshot, ts: float, name: str) -> NodeSnapshot:
    node = msgspec.structs.replace(snapshot.node, name=name)
    return msgspec.structs.replace(snapshot, node=node, telemetry=frame(ts).telemetry)


async def test_a_change_is_fetched_with_the_next_frame_and_drawn_with_it(node: Node) -> None:
    first = _at(await node.snapshot(), 1.0, "before")
    app = FakeApp(first)
    pacer = FramePacer(cast(Any, app), min_interval=0.25)

    pacer.telemetry(frame(2.0))  # no change waiting: drawn at once
    assert app.shown_ts() == 2.0 and app.refreshes == 0

    pacer.node_changed()
    pacer.node_changed()  # one snapshot carries both changes
    assert app.refreshes == 0 and [t.delay for t in app.timers] == [CHANGE_WAIT]
    pacer.telemetry(frame(3.0))  # asks for the snapshot and waits for it
    assert app.refreshes == 1 and app.shown_ts() == 2.0 and app.timers[0].stopped
    assert app.timers[-1].delay == HOLD
    pacer.telemetry(frame(3.5))  # still waiting: the newest frame is kept
    pacer.snapshot(_at(first, 3.0, "after"))  # fetched before frame 3.5 was taken
    assert app.snapshot is not None and app.snapshot.node.name == "after"
    assert app.shown_ts() == 3.5  # the held frame, newer than the snapshot's, is drawn too
    assert app.timers[-1].stopped


async def test_without_frames_a_change_is_fetched_anyway(node: Node) -> None:
    app = FakeApp(_at(await node.snapshot(), 1.0, "n"))
    pacer = FramePacer(cast(Any, app), min_interval=0.25)
    pacer.node_changed()
    app.timers[0].fire()  # no frame within CHANGE_WAIT (telemetry slow or stopped)
    assert app.refreshes == 1
    pacer.telemetry(frame(2.0))  # nothing waits any more: drawn at once
    assert app.shown_ts() == 2.0 and app.refreshes == 1


async def test_a_late_snapshot_does_not_hold_the_frame_for_long(node: Node) -> None:
    app = FakeApp(_at(await node.snapshot(), 1.0, "n"))
    pacer = FramePacer(cast(Any, app), min_interval=0.25)
    pacer.node_changed()
    pacer.telemetry(frame(2.0))
    assert app.shown_ts() == 1.0
    app.timers[-1].fire()  # HOLD passed without the snapshot: the frame is drawn alone
    assert app.shown_ts() == 2.0
    pacer.snapshot(_at(await node.snapshot(), 2.0, "late"))  # then drawn when it comes
    assert app.snapshot is not None and app.snapshot.node.name == "late"
    assert app.shown_ts() == 2.0 and app.refreshes == 1


async def test_frames_faster_than_the_limit_are_coalesced(node: Node) -> None:
    app = FakeApp(_at(await node.snapshot(), 1.0, "n"))
    pacer = FramePacer(cast(Any, app), min_interval=60.0)
    pacer.telemetry(frame(2.0))
    pacer.telemetry(frame(2.1))
    pacer.telemetry(frame(2.2))
    assert app.shown_ts() == 2.0 and len(app.timers) == 1
    app.timers[0].fire()
    assert app.shown_ts() == 2.2
