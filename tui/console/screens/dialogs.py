"""Small modal dialogs: a yes/no question, an amount of OMNIT to stake or unstake, a choice."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

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


class ChoiceScreen(ModalScreen[str | None]):
    """One of ``choices``, picked with the arrows and enter or with its digit (None: escape)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choice-cancel")]

    def __init__(self, title: str, prompt: str, choices: list[str]) -> None:
        super().__init__()
        self._title = title
        self.prompt = prompt
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.prompt, markup=False)
            numbered = [f"{i}  {c}" if i <= 9 else f"   {c}" for i, c in enumerate(self.choices, 1)]
            yield OptionList(*numbered, id="choices", markup=False)
            yield Static("enter or digit picks  ·  escape cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = self._title
        self.query_one("#choices", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.choices[event.option_index])

    def on_key(self, event: events.Key) -> None:
        if event.character is not None and event.character.isdigit():
            index = int(event.character) - 1
            if 0 <= index < min(9, len(self.choices)):
                event.stop()
                self.dismiss(self.choices[index])

    def action_cancel(self) -> None:
        self.dismiss(None)
