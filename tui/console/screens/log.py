"""Screen 6: the node's log, live, filtered by text and level."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Select

from core.api.events import LogLine
from tui.console.screens.base import NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.log.view import LEVELS, LogView, matches

LEVEL_OPTIONS = [("all levels", 0)] + [
    (f"{name}+", value) for name, value in LEVELS.items() if name != "critical"
]


class LogScreen(NodeScreen):
    """Every log entry the console has seen (the stored history first, then live ones)."""

    SUB_TITLE = "Log"
    BINDINGS = [
        Binding(
            "slash,f", "focus_filter", "Filter", tooltip="Type to filter the log.", id="log-filter"
        ),
        Binding("escape", "leave_filter", "Done", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._seen = 0
        self._generation = 0
        self._text = ""
        self._min_level = 0

    def compose(self) -> ComposeResult:
        yield header()
        with Horizontal(id="log-controls"):
            yield Input(placeholder="filter (/)", id="log-filter-input")
            yield Select(LEVEL_OPTIONS, value=0, allow_blank=False, id="log-level", compact=True)
        yield LogView(id="log")
        yield footer()

    def on_mount(self) -> None:
        self.query_one(LogView).focus()

    def sync_log(self, entries: Sequence[LogLine], serial: int, generation: int) -> None:
        """Show what arrived since the last call: ``serial`` counts every entry ever added.

        The app keeps the last entries in a bounded buffer, in time order; when more
        arrived than it kept, when older lines went before shown ones (``generation``
        changed) or when the filter changed, the view is rebuilt from the buffer.
        """
        view = self.query_one(LogView)
        new = serial - self._seen
        if new <= 0:
            return
        if new > len(entries) or generation != self._generation:
            self._generation = generation
            view.clear()
            fresh: Sequence[LogLine] = entries
        else:
            fresh = list(entries)[len(entries) - new :]
        self._seen = serial
        view.add(e for e in fresh if matches(e, self._text, self._min_level))

    def _rebuild(self) -> None:
        self._seen = 0
        self.query_one(LogView).clear()
        self.sync_log(self.omni.log_entries, self.omni.log_serial, self.omni.log_generation)

    @on(Input.Changed, "#log-filter-input")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._text = event.value.strip()
        self._rebuild()

    @on(Select.Changed, "#log-level")
    def _level_changed(self, event: Select.Changed) -> None:
        self._min_level = int(event.value) if isinstance(event.value, int) else 0
        self._rebuild()

    def action_focus_filter(self) -> None:
        self.query_one("#log-filter-input", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one(LogView).focus()
