"""Screen 8: governance. The proposals with their windows, weight bars and voter counts, this
node's vote and weight, updated as the network publishes tallies; ``v`` votes (pick an
option, confirm). docs/governance.md.
"""

from __future__ import annotations

import contextlib
import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowDoesNotExist

from core.api.commands import CastVote
from core.api.governance import Proposal, ProposalList
from core.api.views import NodeSnapshot
from tui.console.screens.base import NodeScreen
from tui.console.screens.dialogs import ChoiceScreen, ConfirmScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.format import bar, clip_words, date_time
from tui.format_governance import share, voters_text, window_text

NO_GOVERNANCE = "the node's state has no proposals (they come from the network's coordinator)"
BAR = 24
Row = tuple[str, ...]


def proposal_row(proposal: Proposal, now: float, title_width: int) -> Row:
    """State, id, title, window, the leading option, this node's vote."""
    leading = proposal.leading
    return (
        "final" if proposal.final else proposal.state_at(now),
        proposal.proposal_id,
        clip_words(proposal.title, title_width),
        window_text(proposal, now),
        leading.option if leading is not None else "-",
        proposal.your_vote or "-",
    )


def detail(proposal: Proposal, weight: int, now: float) -> Content:
    """The selected proposal: its text, each option's weight bar and voters, the next step."""
    lines: list[Content] = [
        Content.assemble(
            (proposal.title, "bold"),
            f"  ({proposal.proposal_id})  ·  {date_time(proposal.start_ts)} → "
            f"{date_time(proposal.end_ts)}  ·  {window_text(proposal, now)}",
        )
    ]
    if proposal.text:
        lines.append(Content.styled(proposal.text, "$text-muted"))
    width = max(len(o.option) for o in proposal.options)
    for option in proposal.options:
        fraction = share(option, proposal)
        mine = option.option == proposal.your_vote
        lines.append(
            Content.assemble(
                ("● " if mine else "  ", "$accent"),
                (f"{option.option:<{width}} ", "bold" if mine else ""),
                (bar(fraction, BAR), "$accent"),
                f" {fraction:4.0%}  weight {option.weight}  ({voters_text(option.voters)})",
            )
        )
    lines.append(Content.styled(next_step(proposal, weight, now), "$text-muted"))
    return Content("\n").join(lines)


def next_step(proposal: Proposal, weight: int, now: float) -> str:
    state = proposal.state_at(now)
    if proposal.final:
        return f"final tally: {proposal.total_weight} weight from {voters_text(proposal.voters)}"
    if state == "upcoming":
        return "voting has not opened yet"
    if state == "closed":
        return "voting closed: the final tally is on its way"
    if weight <= 0:
        return "you have no governance weight: it is earned with season awards"
    verb = "change your vote" if proposal.your_vote else "vote"
    return f"v: {verb} (weight {weight}; changeable until the window closes)"


class GovernanceScreen(NodeScreen):
    """A table of proposals; the selected one's tally below."""

    SUB_TITLE = "Governance"
    BINDING_GROUP_TITLE = "Governance"
    BINDINGS = [
        Binding(
            "v",
            "vote",
            "Vote",
            tooltip="Vote on the selected proposal (pick an option, then confirm).",
            id="governance-vote",
        )
    ]

    def __init__(self) -> None:
        super().__init__()
        self._listing: ProposalList | None = None
        self._rows: list[Row] = []

    def compose(self) -> ComposeResult:
        yield header()
        yield Unavailable(NO_GOVERNANCE, id="governance-unavailable")
        yield Static(id="governance-weight", markup=False)
        table: DataTable[str] = DataTable(id="proposals", cursor_type="row", zebra_stripes=True)
        table.add_columns("State", "Proposal", "Title", "Window", "Leading", "Your vote")
        yield table
        yield Static(id="proposal-detail", markup=False)
        yield footer()

    @property
    def selected(self) -> Proposal | None:
        table = self.query_one("#proposals", DataTable)
        if self._listing is None or not table.display:
            return None
        row = table.cursor_row
        proposals = self._listing.proposals
        return proposals[row] if 0 <= row < len(proposals) else None

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        listing = snapshot.governance
        before = self.selected
        present = listing is not None
        self.query_one(Unavailable).display = not present
        for part in ("#governance-weight", "#proposals", "#proposal-detail"):
            self.query_one(part).display = present
        self._listing = listing
        if listing is None:
            return
        weight = f"your governance weight: {listing.weight}"
        if listing.weight == 0:
            weight += " (earned with season awards: the top of each leaderboard at season end)"
        set_text(self.query_one("#governance-weight", Static), weight)
        now = time.time()
        rows = [proposal_row(p, now, self._title_width()) for p in listing.proposals]
        if rows != self._rows:
            self._fill(rows, listing, before.proposal_id if before is not None else None)
        self._show_detail()

    def _title_width(self) -> int:
        return max(12, self.size.width - 70)

    def _fill(self, rows: list[Row], listing: ProposalList, selected: str | None) -> None:
        """Replace the rows, keeping the cursor on the same proposal."""
        table = self.query_one("#proposals", DataTable)
        self._rows = rows
        table.clear()
        for row, proposal in zip(rows, listing.proposals, strict=True):
            table.add_row(*row, key=proposal.proposal_id)
        if selected is not None:
            with contextlib.suppress(RowDoesNotExist):
                table.move_cursor(row=table.get_row_index(selected), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        self.refresh_bindings()  # whether v applies depends on the proposal under the cursor
        proposal, listing = self.selected, self._listing
        text: Content | str = "no proposals yet" if listing is not None else ""
        if proposal is not None and listing is not None:
            text = detail(proposal, listing.weight, time.time())
        set_text(self.query_one("#proposal-detail", Static), text)

    def can_vote(self) -> bool:
        proposal, listing = self.selected, self._listing
        return (
            proposal is not None
            and listing is not None
            and listing.weight > 0
            and proposal.state_at(time.time()) == "open"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "vote":
            return True if self.can_vote() else None  # greyed out; the detail says why
        return True

    def action_vote(self) -> None:
        """Pick an option, confirm, then send the vote; the app shows the answer."""
        proposal, listing = self.selected, self._listing
        if proposal is None or listing is None or not self.can_vote():
            return
        options = [o.option for o in proposal.options]
        current = f" (now: {proposal.your_vote})" if proposal.your_vote else ""

        def picked(option: str | None) -> None:
            if option is None or option == proposal.your_vote:
                return
            question = (
                f"Vote {option!r} on {proposal.proposal_id} {proposal.title!r} with weight "
                f"{listing.weight}? You can change it until {date_time(proposal.end_ts)}."
            )
            self.app.push_screen(
                ConfirmScreen(question, title="Vote"),
                lambda yes: self._send(proposal, option) if yes else None,
            )

        self.app.push_screen(
            ChoiceScreen(f"Vote on {proposal.proposal_id}", f"{proposal.title}{current}", options),
            picked,
        )

    def _send(self, proposal: Proposal, option: str) -> None:
        self.request(
            CastVote(proposal_id=proposal.proposal_id, option=option),
            f"vote {option!r} on {proposal.proposal_id}",
        )
