"""The help screen: every key binding of the console, by screen."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

HelpSection = tuple[str, list[tuple[str, str]]]


def describe(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, description) for each binding, keys as the footer writes them."""
    rows = []
    for item in bindings:
        binding = item if isinstance(item, Binding) else Binding(*item)
        keys = ", ".join(_key_label(k.strip()) for k in binding.key.split(","))
        rows.append((keys, binding.tooltip or binding.description or binding.action))
    return rows


_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "esc",
    "pageup": "pgup",
    "pagedown": "pgdn",
    "space": "space",
}


def _key_label(key: str) -> str:
    return _NAMES.get(key, key.replace("ctrl+", "^"))


class HelpScreen(ModalScreen[None]):
    """A modal listing every binding; any of escape, ? or q's neighbour closes it."""

    BINDINGS = [
        Binding("escape,question_mark,enter", "dismiss", "Close", id="help-close"),
    ]

    def __init__(self, sections: list[HelpSection]) -> None:
        super().__init__()
        self._sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            with VerticalScroll():
                yield Static(self._text(), markup=False, id="help-text")
            yield Static("escape or ? closes this", id="help-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Keys"

    def _text(self) -> Content:
        parts: list[Content | str | tuple[str, str]] = []
        for title, rows in self._sections:
            if parts:
                parts.append("\n")
            parts.append((f"{title}\n", "bold $accent"))
            for keys, text in rows:
                parts += [(f"  {keys:<16}", "bold"), f"{text}\n"]
        return Content.assemble(*parts).rstrip()
