"""Small modal dialogs: a yes/no question, and an amount of OMNIT to stake or unstake."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from core.money import parse_omnit
from tui.console.widgets.common.text import set_text


class ConfirmScreen(ModalScreen[bool]):
    """A question answered with y (True) or n / escape (False)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(self, question: str, *, title: str = "Confirm") -> None:
        super().__init__()
        self.question = question
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, id="confirm-question", markup=False)
            yield Static("y yes  ·  n no", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = self._title

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AmountScreen(ModalScreen[int | None]):
    """Asks an amount in OMNIT; dismissed with it in base units (None: cancelled)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="amount-cancel")]

    def __init__(self, title: str, prompt: str) -> None:
        super().__init__()
        self._title = title
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.prompt, markup=False)
            yield Input(placeholder="amount in OMNIT, e.g. 10 or 0.5", id="amount")
            yield Static("", id="amount-error", markup=False)
            yield Static("enter confirms  ·  escape cancels", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = self._title
        self.query_one("#amount", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.query_one("#amount-error", Static)
        try:
            amount = parse_omnit(event.value.strip())
        except ValueError as exc:
            set_text(error, str(exc))
            return
        if amount <= 0:
            set_text(error, "the amount must be more than 0")
            return
        self.dismiss(amount)

    def action_cancel(self) -> None:
        self.dismiss(None)
