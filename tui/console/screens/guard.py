"""Screens that guard the console: a terminal too small to draw it, and quitting a node
that earns."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from core.api.views import NodeSnapshot, WorkPaused

MIN_WIDTH = 80
MIN_HEIGHT = 24
"""The smallest terminal the console draws in (the title, footer and a GPU card fit)."""


def too_small_text(width: int, height: int) -> str:
    """``terminal too small (40x12), need 80x24``."""
    return f"terminal too small ({width}x{height}), need {MIN_WIDTH}x{MIN_HEIGHT}"


def fits(width: int, height: int) -> bool:
    """Whether a terminal of this size shows the console."""
    return width >= MIN_WIDTH and height >= MIN_HEIGHT


class TooSmallScreen(Screen[None]):
    """The whole terminal says it is too small, until it is big enough (the app pops this)."""

    DEFAULT_CSS = """
    TooSmallScreen {
        align: center middle;
        & > #too-small {
            width: auto;
            height: auto;
            color: $warning;
            text-style: bold;
            text-align: center;
        }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(self._text(), id="too-small", markup=False)

    def _text(self) -> str:
        size = self.app.size
        return f"{too_small_text(size.width, size.height)}\nresize the window · q quits"

    def on_resize(self) -> None:
        self.query_one("#too-small", Static).update(self._text())

    def on_screen_resume(self) -> None:
        # A modal shown over this one (quit?) may close after the terminal grew.
        if fits(self.app.size.width, self.app.size.height):
            self.dismiss()
        else:
            self.query_one("#too-small", Static).update(self._text())


def verified_units(snapshot: NodeSnapshot) -> int:
    """Units the coordinator verified for this node since it started."""
    return snapshot.counters.acknowledged - snapshot.counters.rejected


def earning(snapshot: NodeSnapshot | None) -> bool:
    """Whether the node earns now: on a network, with a device at work (not paused)."""
    if snapshot is None or snapshot.link.mode == "none" or not snapshot.workers:
        return False
    if isinstance(snapshot.work, WorkPaused):
        return False
    return any(worker.state != "paused" for worker in snapshot.workers)


class QuitScreen(ModalScreen[bool]):
    """Asks before the console stops the node it runs: True stops it, False keeps it."""

    DEFAULT_CSS = """
    QuitScreen {
        align: center middle;
        & > #quit {
            width: 72;
            max-width: 100%;
            height: auto;
            border: round $warning;
            padding: 1 2;
            background: $surface;
        }
    }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Stop", id="quit-stop"),
        Binding("n,escape", "answer(False)", "Keep running", id="quit-keep"),
    ]

    def __init__(self, snapshot: NodeSnapshot) -> None:
        super().__init__()
        self._snapshot = snapshot

    def compose(self) -> ComposeResult:
        count = verified_units(self._snapshot)
        units = f"{count:,} unit{'' if count == 1 else 's'}"
        with Vertical(id="quit"):
            yield Static(
                f"Stop the node? It is earning: {units} verified since it started.\n"
                "Quitting the console stops the node it runs.\n\n"
                "[y] stop  [n] keep running",
                id="quit-text",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one("#quit").border_title = "Quit"

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)
