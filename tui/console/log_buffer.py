"""The console's copy of the node's log: the last lines, each once, in time order.

The stored history and the live stream overlap by a few lines at start-up; a line seen
before (same time, kind and message) is not added twice. The history is asked for after the
live stream starts, so its (older) lines arrive after live ones: the buffer keeps every line
in time order, and ``generation`` says when a line went anywhere but the end (a view that
appends must then redraw from the buffer).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import pairwise

from core.api.events import LogLine

LOG_BUFFER = 5000


class LogBuffer:
    """The last ``size`` log lines, oldest first; ``serial`` counts every line ever added.

    ``generation`` grows each time lines were put before the last one (the order of what
    was shown changed); while it stays the same, new lines were only appended.
    """

    def __init__(self, size: int = LOG_BUFFER) -> None:
        self.size = size
        self.entries: deque[LogLine] = deque(maxlen=size)
        self.serial = 0
        self.generation = 0
        self._keys: set[tuple[float, str, str]] = set()

    def add(self, lines: Iterable[LogLine]) -> int:
        """Add the lines not seen yet, in time order; how many were added."""
        fresh: list[LogLine] = []
        for line in lines:
            key = (line.ts, line.kind, line.message)
            if key in self._keys:
                continue
            self._keys.add(key)
            fresh.append(line)
        if not fresh:
            return 0
        last = self.entries[-1].ts if self.entries else float("-inf")
        in_order = all(a.ts <= b.ts for a, b in pairwise(fresh))
        if in_order and fresh[0].ts >= last:
            self.entries.extend(fresh)
        else:
            # Older lines (the history after live ones): merge, keeping arrival order for
            # lines of the same time (a stable sort).
            merged = sorted([*self.entries, *fresh], key=lambda e: e.ts)
            self.entries = deque(merged, maxlen=self.size)
            self.generation += 1
        if len(self._keys) > 2 * self.size:
            # Forget the keys of lines the buffer no longer holds.
            self._keys = {(e.ts, e.kind, e.message) for e in self.entries}
        self.serial += len(fresh)
        return len(fresh)
