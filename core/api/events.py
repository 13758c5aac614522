"""The node's event stream: a tagged union of Structs, ``type`` naming each on the wire.

Telemetry and log lines carry their data; the other events say that something changed
(the link, the network's game state, new work), and a front end fetches a fresh snapshot.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

from core.api.views import BenchmarkResult, GuardView, LinkView, TelemetryView

LogLevel = Literal["info", "warning", "error"]
"""The levels the node logs its events at."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """One event from the node."""

    @property
    def tag(self) -> str:
        """The event's ``type`` (``telemetry``, ``log``, ``bench.progress``, ...)."""
        return str(self.__struct_config__.tag)


class TelemetryEvent(Event, frozen=True, kw_only=True, tag="telemetry"):
    """A telemetry frame and the guard state after it."""

    telemetry: TelemetryView
    guard: GuardView


class LogEvent(Event, frozen=True, kw_only=True, tag="log"):
    """A line of the node's log, as it is written."""

    ts: float
    level: LogLevel
    kind: str
    """What the line is about: ``node``, ``bench``, ``guard``, ``link``, ``work``..."""
    message: str
    data: dict[str, Any]


class BenchProgressEvent(Event, frozen=True, kw_only=True, tag="bench.progress"):
    """The running benchmark reached ``fraction`` (0..1) of ``stage``."""

    stage: str
    fraction: float


class BenchDoneEvent(Event, frozen=True, kw_only=True, tag="bench.done"):
    """A benchmark finished (the result is stored)."""

    result: BenchmarkResult


class LinkEvent(Event, frozen=True, kw_only=True, tag="link"):
    """The network link changed state."""

    link: LinkView


class WorkEvent(Event, frozen=True, kw_only=True, tag="work", omit_defaults=True):
    """A work result was stored for the network (``submitted``), or its receipt came."""

    submitted: str | None = None
    receipt: str | None = None


class GameEvent(Event, frozen=True, kw_only=True, tag="game"):
    """The network's game state the node keeps (wallet, quests, season...) changed."""


NodeEvent = (
    TelemetryEvent
    | LogEvent
    | BenchProgressEvent
    | BenchDoneEvent
    | LinkEvent
    | WorkEvent
    | GameEvent
)
"""Every event the node publishes (decode with this type)."""


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A stored line of the node's log (``events``), ``id`` in the order written."""

    id: int
    ts: float
    level: LogLevel
    kind: str
    message: str
    data: dict[str, Any]


class LogHistory(msgspec.Struct, frozen=True, kw_only=True):
    """The node's last log lines, oldest first."""

    events: tuple[LogEntry, ...]


class LogLine(Protocol):
    """A log line, stored (``LogEntry``) or live (``LogEvent``)."""

    @property
    def ts(self) -> float: ...

    @property
    def level(self) -> LogLevel: ...

    @property
    def kind(self) -> str: ...

    @property
    def message(self) -> str: ...
