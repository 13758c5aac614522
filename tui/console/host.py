"""What the console's screens may use of the app hosting them (no import of the app)."""

from __future__ import annotations

from collections import deque
from typing import Protocol, runtime_checkable

from core.api.client import NodeAPI
from core.api.events import LogLine
from core.errors import OmniError

# What a call to the node can raise that the console shows rather than crashes on: every
# refusal and every lost connection is an OmniError (the socket client converts OSErrors).
NODE_ERRORS = (OmniError,)


@runtime_checkable
class ConsoleHost(Protocol):
    """The app, as its screens see it: the node's API and the log it keeps."""

    client: NodeAPI

    @property
    def log_entries(self) -> deque[LogLine]:
        """The node's last log lines, oldest first."""

    @property
    def log_serial(self) -> int:
        """How many log lines were ever added."""

    @property
    def log_generation(self) -> int:
        """Grows when log lines were put before the last one (views redraw then)."""
