"""Screen 2: quests and challenges; accept, start and claim them from the keyboard.

The detail line under the table names the next key for the selected quest; keys that do not
apply to it are hidden from the footer (``check_action``). The list keeps its order and the
cursor its quest across refreshes, and accepting an offer whose window would end sooner than
the offer's own deadline asks first.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowDoesNotExist

from core.api.commands import AcceptQuest, ClaimQuest, Request, StartQuest
from core.api.views import BenchProgressView, NodeSnapshot
from tui.console.screens.base import NodeScreen
from tui.console.screens.dialogs import ConfirmScreen
from tui.console.widgets.bench.progress import BenchProgress
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.console.widgets.quests.model import QuestRow, eta_text, quest_rows
from tui.format import clock, date_time, time_left

NO_QUESTS = "the node's state has no quests (they come from the network's coordinator)"


class QuestsScreen(NodeScreen):
    """A table of quests with their progress, reward and time left; a detail line below."""

    SUB_TITLE = "Quests"
    BINDING_GROUP_TITLE = "Quests"
    BINDINGS = [
        Binding(
            "a",
            "quest('accept')",
            "Accept",
            tooltip="Accept the selected quest.",
            id="quest-accept",
        ),
        Binding(
            "s",
            "quest('start')",
            "Start",
            tooltip="Start the selected quest's action (the benchmark), once accepted.",
            id="quest-start",
        ),
        Binding(
            "c",
            "quest('claim')",
            "Claim",
            tooltip="Claim the selected quest's reward, once completed.",
            id="quest-claim",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[QuestRow] = []
        # Each active quest's first seen (time, progress): its pace gives the time to finish.
        self._pace: dict[str, tuple[float, float]] = {}
        self._filled_width = 0

    def compose(self) -> ComposeResult:
        yield header()
        yield Unavailable(NO_QUESTS, id="quests-unavailable")
        table: DataTable[str] = DataTable(id="quests", cursor_type="row", zebra_stripes=True)
        table.add_columns("State", "Quest", "Progress", "Done", "Reward", "Time left")
        yield table
        yield Static(id="quest-detail", markup=False)
        yield BenchProgress(id="bench-progress")
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#quests").display = False

    @property
    def selected(self) -> QuestRow | None:
        """The quest under the cursor."""
        table = self.query_one("#quests", DataTable)
        if not self._rows or not table.display:
            return None
        row = table.cursor_row
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        section = snapshot.quests
        unavailable = self.query_one(Unavailable)
        table = self.query_one("#quests", DataTable)
        self.query_one("#quest-detail").display = section is not None
        if section is None:
            unavailable.display, table.display = True, False
            self._rows = []
            self._show_detail()
            return
        unavailable.display, table.display = False, True
        now = time.time()
        rows = quest_rows(section, now, order=[row.id for row in self._rows])
        for row in rows:
            if row.state in ("accepted", "in_progress"):
                self._pace.setdefault(row.id, (now, row.current))
        if rows != self._rows or self._title_width() != self._filled_width:
            self._fill(table, rows)
        self._show_detail()

    def _title_width(self) -> int:
        # What the other columns leave (state 11, progress 14, done 14, reward 12, left 12,
        # padding).
        return max(12, self.size.width - 70)

    def on_resize(self) -> None:
        if self.snapshot is not None:
            self.show_snapshot(self.snapshot)

    def _fill(self, table: DataTable[str], rows: list[QuestRow]) -> None:
        """Replace the rows, keeping the cursor on the same quest."""
        selected = self.selected
        self._rows = rows
        self._filled_width = width = self._title_width()
        table.clear()
        for row in rows:
            table.add_row(*row.cells(width), key=row.id)
        if selected is not None:
            with contextlib.suppress(RowDoesNotExist):
                table.move_cursor(row=table.get_row_index(selected.id), animate=False)
        if not rows:
            set_text(self.query_one("#quest-detail", Static), "no quests offered right now")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        quest = self.selected
        detail = self.query_one("#quest-detail", Static)
        # What the keys do depends on the quest under the cursor.
        self.refresh_bindings()
        if quest is None:
            set_text(detail, "")
            return
        parts = [
            # First, so that it shows however narrow the terminal.
            f"next: {quest.next_step()}",
            f"{quest.title} ({quest.id})",
            quest.state.replace("_", " "),
            f"{quest.count} ({quest.percent})",
        ]
        if quest.state in ("accepted", "in_progress"):
            eta = eta_text(self._pace.get(quest.id), time.time(), quest.current, quest.target)
            if eta:
                parts.append(eta)
        if quest.achievement:
            parts.append(f"unlocks {quest.achievement}")
        text = "  ·  ".join(parts)
        if quest.description:
            text += f"\n{quest.description}"
        set_text(detail, text)

    def show_bench(self, bench: BenchProgressView | None) -> None:
        self.query_one(BenchProgress).progress = bench

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quest":
            quest = self.selected
            if quest is None:
                return None  # greyed out while there is no quest to act on
            # Hidden when it does not apply to the selected quest (the detail says why).
            return parameters[0] in quest.verbs
        return True

    def action_quest(self, verb: str) -> None:
        """Send ``quest.<verb>`` for the selected quest; the app shows the result.

        Accepting an offer whose window would end before the offer's deadline asks first.
        """
        quest = self.selected
        if quest is None or verb not in quest.verbs:
            return
        now = time.time()
        if verb == "accept" and quest.window_shrinks(now):
            self.app.push_screen(
                ConfirmScreen(shrink_question(quest, now), title=f"Accept {quest.title}?"),
                lambda yes: self._send(quest, verb) if yes else None,
            )
            return
        self._send(quest, verb)

    def _send(self, quest: QuestRow, verb: str) -> None:
        request: Request[Any]
        if verb == "accept":
            request = AcceptQuest(id=quest.id)
        elif verb == "start":
            request = StartQuest(id=quest.id)
        else:
            request = ClaimQuest(id=quest.id)
        self.request(request, f"{verb} quest {quest.title!r}")


def shrink_question(quest: QuestRow, now: float) -> str:
    """Accepting starts the quest's window: when it would end, against the offer's deadline."""
    ends = quest.deadline_if_accepted(now)
    assert ends is not None and quest.window_s is not None
    when = clock(ends) if ends - now < 86_400 else date_time(ends)
    hours = quest.window_s / 3600
    window = f"{hours:.0f} h" if hours < 100 else f"{hours / 24:.0f} days"
    return (
        f"Accepting starts its {window} window: "
        f"it ends at {when}, not in {time_left(quest.deadline_ts, now).removesuffix(' left')}. "
        "Accept?"
    )
