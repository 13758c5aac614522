"""The node's API, the same in-process and over the control socket.

A node exposes three things: a state snapshot, a stream of events, and commands. The
console drives a node it started itself through ``core.node.local_client`` and a node
already running on the data dir through ``core.api.socket_client``: both satisfy
``NodeAPI`` and both return the typed views of ``core.api.views`` (the socket decodes its
JSON back into them), so the console's code is the same either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from core.api.commands import Request
from core.api.events import NodeEvent
from core.api.views import NodeSnapshot

R = TypeVar("R")


class NodeAPI(Protocol):
    """What the console and the CLI may ask of a node."""

    async def snapshot(self) -> NodeSnapshot:
        """The node's whole state now."""
        ...

    def events(self) -> AsyncIterator[NodeEvent]:
        """Events from now on (telemetry, log lines, benchmark progress, changes)."""
        ...

    async def command(self, request: Request[R]) -> R:
        """Run a command (``RunBench()``, ...) and return its result; raises CommandError."""
        ...

    async def close(self) -> None:
        """Stop listening; never stops a node that runs on its own."""
        ...
