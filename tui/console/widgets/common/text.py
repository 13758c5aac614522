"""Update text widgets only when their text changes: nothing redraws when nothing changed."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


def set_text(widget: Static, content: Content | str, *, layout: bool = True) -> None:
    """``widget.update(content)`` unless it already shows exactly that."""
    if isinstance(content, str):
        content = Content(content)
    if widget.content != content:
        widget.update(content, layout=layout)
