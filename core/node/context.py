"""What the node's parts (link, worker) may use of the node that owns them.

A Protocol rather than the ``Node`` class: the parts depend on this small surface, and the
node depends on them, without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from core.api.events import LogLevel, NodeEvent
from core.config import Config
from core.identity import Identity
from core.node.devices import WorkDevice
from core.node.frames import TelemetryFrame
from core.node.store import NodeStore


class NodeContext(Protocol):
    config: Config
    store: NodeStore | None
    identity: Identity | None
    frame: TelemetryFrame | None
    backend_name: str
    backend_device: str
    devices: list[WorkDevice]

    @property
    def node_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    def publish(self, event: NodeEvent) -> None:
        """Send an event to the node's subscribers (the console, the socket)."""

    async def emit_log(
        self, level: LogLevel, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record a node event in the store, for subscribers and in the Python log."""

    def work_paused(self, device: int | None = None) -> bool:
        """True while the thermal/power guard holds work back (on that device's GPU)."""

    async def run_in_kernel_thread(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(backend)`` on the thread that owns the first device."""

    async def run_on_device(self, index: int, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(backend)`` on the thread that owns device ``index``."""
