"""The node's API, the same in-process and over the control socket.

A node exposes three things: a state snapshot, a stream of events, and commands. The
console drives a node it started itself through ``core.node.local_client`` and a node
already running on the data dir through ``core.api.socket_client``: both satisfy
``NodeAPI``, so the console's code is the same either way.

Everything crossing this API is plain JSON-compatible data (dicts, lists, str, int, float,
bool, None), so the socket adds nothing but framing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

JSON = dict[str, Any]


class NodeAPI(Protocol):
    """What the console and the CLI may ask of a node."""

    async def snapshot(self) -> JSON:
        """The node's whole state now."""
        ...

    def events(self) -> AsyncIterator[JSON]:
        """Events from now on: ``{"type": "telemetry" | "log" | "bench.progress" | ..., ...}``."""
        ...

    async def command(self, name: str, **params: Any) -> JSON:
        """Run a command (``bench``, ...) and return its result; raises CommandError."""
        ...

    async def close(self) -> None:
        """Stop listening; never stops a node that runs on its own."""
        ...
