"""The header and footer every screen shares."""

from __future__ import annotations

from textual.widgets import Footer, Header


def header() -> Header:
    """The title bar: app title and the screen's name."""
    return Header(icon="◆")


def footer() -> Footer:
    """The key bar; compact so every screen's keys fit in 80 columns (^p stays in the help)."""
    return Footer(compact=True, show_command_palette=False)
