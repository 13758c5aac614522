"""The plain line a screen shows for a part the node does not provide yet."""

from __future__ import annotations

from textual.widgets import Static


def unavailable_text(reason: str) -> str:
    """``not available yet: <reason>``."""
    return f"not available yet: {reason}"


class Unavailable(Static):
    """``not available yet: <reason>``, instead of a screen's content."""

    DEFAULT_CSS = """
    Unavailable {
        color: $text-muted;
        padding: 1 2;
        height: auto;
    }
    """

    def __init__(self, reason: str = "", *, id: str | None = None) -> None:
        super().__init__(unavailable_text(reason), id=id, markup=False)
        self.reason = reason

    def set_reason(self, reason: str) -> None:
        """Show another reason (no redraw when it is the same)."""
        if reason != self.reason:
            self.reason = reason
            self.update(unavailable_text(reason))
