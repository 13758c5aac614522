"""The node's log as lines, filtered by text and minimum level."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import RichLog

from tui.format import clock_seconds

LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def matches(entry: dict[str, Any], text: str, min_level: int) -> bool:
    """Whether a log entry passes the filter (text is matched case-insensitively)."""
    if LEVELS.get(str(entry.get("level", "info")).lower(), 20) < min_level:
        return False
    if not text:
        return True
    haystack = f"{entry.get('kind', '')} {entry.get('message', '')}".lower()
    return text.lower() in haystack


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

    def line(self, entry: dict[str, Any]) -> Text:
        """One entry as a styled line."""
        level = str(entry.get("level", "info")).lower()
        level_class = f"logview--{level if level in LEVELS and level != 'critical' else 'error'}"
        return Text.assemble(
            (clock_seconds(entry.get("ts")), self.get_component_rich_style("logview--time")),
            " ",
            (f"{level.upper():<7}", self.get_component_rich_style(level_class)),
            " ",
            (f"{entry.get('kind', '')!s:<9}", self.get_component_rich_style("logview--kind")),
            " ",
            str(entry.get("message", "")),
        )

    def add(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries (already filtered)."""
        for entry in entries:
            self.write(self.line(entry), scroll_end=None)
