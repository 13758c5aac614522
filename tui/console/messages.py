"""App-wide messages: what the node-facing workers tell the app.

High-rate messages (telemetry, benchmark progress, "the node changed") can replace a queued
one of the same kind, so a slow terminal skips stale frames instead of drawing each of them
(toolong's ``SizeChanged``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from core.api.commands import QuestStarted, Request
from core.api.events import LogLine
from core.api.governance import VoteCast
from core.api.network import QuestAccepted, QuestClaimed, StakeResult
from core.api.views import BenchmarkResult, GuardView, NodeSnapshot, TelemetryView
from tui.format import omnit_label


@dataclass
class SnapshotFetched(Message, bubble=False):
    """A fresh ``client.snapshot()``."""

    snapshot: NodeSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotFetched)


@dataclass
class TelemetryReceived(Message, bubble=False):
    """A telemetry frame and the guard state after it."""

    telemetry: TelemetryView
    guard: GuardView

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetryReceived)


@dataclass
class BenchProgressed(Message, bubble=False):
    """Benchmark progress: ``stage`` and ``fraction`` 0..1 (None when it ended)."""

    stage: str | None
    fraction: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BenchProgressed)


@dataclass
class NodeChanged(Message, bubble=False):
    """An event that changes state outside telemetry (bench done, quests, wallet...)."""

    kind: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, NodeChanged)


@dataclass
class LogReceived(Message, bubble=False):
    """Log lines, oldest first."""

    entries: Sequence[LogLine] = field(default_factory=list)
    history: bool = False
    """True for the initial fetch of the node's stored log."""


@dataclass
class NodeLost(Message, bubble=False):
    """The node's event stream ended (the node stopped or the socket closed)."""

    reason: str


@dataclass
class CommandRequested(Message):
    """A screen asks the app to run a node command (messages up; the app runs it)."""

    request: Request[Any]
    label: str
    """What the user asked for, for the notification: "accept quest q1"."""


@dataclass
class CommandFinished(Message, bubble=False):
    """A node command ended: ``result`` (the command's view) or the one-line ``error``."""

    request: Request[Any]
    label: str
    result: object | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        """The command's name (``bench``, ``quest.accept``...)."""
        return self.request.name

    @property
    def ok(self) -> bool:
        """Whether the command succeeded."""
        return self.error is None

    def summary(self) -> str:
        """A one-line summary of the result, for the notification."""
        result = self.result
        if isinstance(result, BenchmarkResult):
            verified = "verified" if result.verified else "NOT verified"
            return (
                f"fp32 {result.gemm.fp32.tflops:.3f} TFLOPS · {result.bandwidth.gbps:.1f} GB/s · "
                f"{verified}"
            )
        if isinstance(result, QuestAccepted | QuestStarted | QuestClaimed | VoteCast):
            return result.message
        if isinstance(result, StakeResult):
            # The answer's balance is what is left to spend: "available", as the wallet says.
            return f"staked {omnit_label(result.staked)} · available {omnit_label(result.balance)}"
        return "done"
