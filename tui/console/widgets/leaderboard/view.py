"""One leaderboard tab: a status line, column titles and the paged table."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from core.game.boards import BOARD_COUNTS, NOT_COUNTED
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.console.widgets.leaderboard.table import LeaderboardTable, PageFetcher, header_text
from tui.format import na


class LeaderboardView(Vertical):
    """A category's board with the node's standing above it."""

    DEFAULT_CSS = """
    LeaderboardView {
        height: 1fr;
        & > .leaderboard--status { height: 1; }
        & > .leaderboard--counts { height: auto; }
        & > .leaderboard--header { height: 1; text-style: bold; color: $text-muted; }
    }
    """

    def __init__(
        self, category: str, fetch: PageFetcher, *, own_node_id: str | None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.category = category
        self._fetch = fetch
        self._own_node_id = own_node_id

    def compose(self) -> ComposeResult:
        yield Static("loading…", classes="leaderboard--status", markup=False)
        # What the board adds up: a small rig's amount or a missing quest reward is no riddle.
        counts = f"counts {BOARD_COUNTS.get(self.category, 'OMNIT')}; {NOT_COUNTED}"
        yield Static(Content.styled(counts, "$text-muted"), classes="leaderboard--counts")
        yield Static(classes="leaderboard--header", markup=False)
        yield LeaderboardTable(self._fetch, own_node_id=self._own_node_id)
        yield Unavailable()

    def on_mount(self) -> None:
        self.query_one(Unavailable).display = False

    def on_resize(self) -> None:
        header = self.query_one(".leaderboard--header", Static)
        # The table's scrollbar takes the last columns; titles line up with the rows.
        set_text(header, header_text(max(0, self.size.width - 2)), layout=False)

    @property
    def table(self) -> LeaderboardTable:
        """The paged table."""
        return self.query_one(LeaderboardTable)

    @on(LeaderboardTable.Loaded)
    def _loaded(self, event: LeaderboardTable.Loaded) -> None:
        event.stop()
        self.query_one(Unavailable).display = False
        self.table.display = True
        self.query_one(".leaderboard--header").display = True
        rank = (
            Content.assemble("your rank ", (f"{event.own_rank:,}", "bold $accent"), " (m: jump)")
            if event.own_rank is not None and event.total
            else Content("not ranked on this board yet")
        )
        # A monthly board's period is a month ("2026-12"), a season's a quarter ("2026-Q4").
        period = "season " if event.season is None or "Q" in event.season else "month "
        nodes = f"{event.total:,} node{'s' if event.total != 1 else ''}"
        status = Content.assemble(
            (period, "$text-muted"),
            na(event.season),
            "  ·  ",
            nodes if event.total else "nobody on this board yet",
            "  ·  ",
            rank,
        )
        set_text(self.query_one(".leaderboard--status", Static), status)

    @on(LeaderboardTable.Failed)
    def _failed(self, event: LeaderboardTable.Failed) -> None:
        event.stop()
        if self.table.total:
            # Rows already shown stay; a failed refresh is only worth a line.
            set_text(
                self.query_one(".leaderboard--status", Static), f"refresh failed: {event.error}"
            )
            return
        self.table.display = False
        self.query_one(".leaderboard--header").display = False
        unavailable = self.query_one(Unavailable)
        unavailable.set_reason(event.error)
        unavailable.display = True
        set_text(self.query_one(".leaderboard--status", Static), "")
