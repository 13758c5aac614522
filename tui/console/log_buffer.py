"""The console's copy of the node's log: the last lines, each once, counted as they come.

The stored history and the live stream overlap by a few lines at start-up; a line seen
before (same time, kind and message) is not added twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from core.api.events import LogLine

LOG_BUFFER = 5000


class LogBuffer:
    """The last ``size`` log lines, oldest first; ``serial`` counts every line ever added."""

    def __init__(self, size: int = LOG_BUFFER) -> None:
        self.size = size
        self.entries: deque[LogLine] = deque(maxlen=size)
        self.serial = 0
        self._keys: set[tuple[float, str, str]] = set()

    def add(self, lines: Iterable[LogLine]) -> int:
        """Add the lines not seen yet; how many were added."""
        added = 0
        for line in lines:
            key = (line.ts, line.kind, line.message)
            if key in self._keys:
                continue
            self._keys.add(key)
            self.entries.append(line)
            added += 1
        if len(self._keys) > 2 * self.size:
            # Forget the keys of lines the buffer no longer holds.
            self._keys = {(e.ts, e.kind, e.message) for e in self.entries}
        self.serial += added
        return added
