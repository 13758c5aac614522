"""The node's log as lines, filtered by text and minimum level."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.widgets import RichLog

from core.api.events import LogLine
from tui.format import clock_seconds

# The filter's scale (Python logging's); the node logs at info, warning and error.
LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def matches(entry: LogLine, text: str, min_level: int) -> bool:
    """Whether a log entry passes the filter (text is matched case-insensitively)."""
    if LEVELS[entry.level] < min_level:
        return False
    if not text:
        return True
    return text.lower() in f"{entry.kind} {entry.message}".lower()


class LogView(RichLog):
    """Log lines with the level coloured through the theme (component classes)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "logview--time",
        "logview--debug",
        "logview--info",
        "logview--warning",
        "logview--error",
        "logview--kind",
    }
    DEFAULT_CSS = """
    LogView {
        & > .logview--time { color: $text-muted; }
        & > .logview--debug { color: $text-muted; }
        & > .logview--info { color: $success; }
        & > .logview--warning { color: $warning; text-style: bold; }
        & > .logview--error { color: $error; text-style: bold; }
        & > .logview--kind { color: $accent; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=5000, wrap=True, markup=False, highlight=False)

    def line(self, entry: LogLine) -> Text:
        """One entry as a styled line."""
        level = entry.level
        return Text.assemble(
            (clock_seconds(entry.ts), self.get_component_rich_style("logview--time")),
            " ",
            (f"{level.upper():<7}", self.get_component_rich_style(f"logview--{level}")),
            " ",
            (f"{entry.kind:<9}", self.get_component_rich_style("logview--kind")),
            " ",
            entry.message,
        )

    def add(self, entries: Iterable[LogLine]) -> None:
        """Append entries (already filtered)."""
        for entry in entries:
            self.write(self.line(entry), scroll_end=None)
