"""Screen 3: the current season, the node's standing per leaderboard, awards, achievements."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Static

from core.api.network import Achievement, AwardProgress, Season, Standing
from core.api.views import NodeSnapshot
from tui.console.screens.base import NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.format import bar, clip_words, date_time, na, omnit_amount

NO_SEASON = "the node's state has no season (it comes from the network's coordinator)"
AWARD_NAME = 30
# Cells around the awards' text: the border, the padding, the scroll bar.
AWARDS_FRAME = 6


def award_lines(award: AwardProgress, width: int) -> Content:
    """``Season Top GPU Contributor  ████ 100%  top 10 at season end; now #1``: the detail
    goes on a line of its own, indented, when the line would not fit in ``width``."""
    fraction = max(0.0, min(1.0, award.progress))
    name = clip_words(award.name, AWARD_NAME)
    head = Content.assemble(
        f"{name:<{AWARD_NAME}} ", (bar(fraction, 16), "$accent"), f" {fraction:4.0%}"
    )
    if not award.detail:
        return head
    if head.cell_length + 2 + len(award.detail) <= width:
        return Content.assemble(head, "  ", (award.detail, "$text-muted"))
    return Content.assemble(head, "\n    ", (award.detail, "$text-muted"))


def season_header(season: Season, now: float) -> Content:
    """``Season 2026-Q4 · 2026-10-01 → 2026-12-31 · 42 days left``."""
    return Content.assemble(
        ("Season ", "bold"),
        (season.id, "bold $accent"),
        f"  ·  {date_time(season.start_ts)} → {date_time(season.end_ts)}",
        "  ·  ",
        (na(season.days_left, "{} days left"), "bold"),
    )


class SeasonScreen(NodeScreen):
    """Season summary, rank per leaderboard, award progress and achievements."""

    SUB_TITLE = "Season"

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[Any, ...] = ()
        self._awards: Sequence[AwardProgress] = ()

    def compose(self) -> ComposeResult:
        yield header()
        yield Unavailable(NO_SEASON, id="season-unavailable")
        with VerticalScroll(id="season"):
            yield Static(id="season-header", markup=False)
            ranks: DataTable[str] = DataTable(id="ranks", cursor_type="none", show_cursor=False)
            ranks.add_columns("Leaderboard", "Rank", "Of", "Amount (OMNIT)")
            yield ranks
            yield Static(id="awards", markup=False)
            achievements: DataTable[str] = DataTable(id="achievements", cursor_type="row")
            achievements.add_columns("Achievement", "Earned", "Description")
            yield achievements
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#season").display = False
        self.query_one("#ranks").border_title = "Standing"
        self.query_one("#awards").border_title = "Toward season awards"
        self.query_one("#achievements").border_title = "Achievements"

    def on_resize(self) -> None:
        if self._awards:
            self._show_awards(self._awards)

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        season = snapshot.season
        self.query_one(Unavailable).display = season is None
        self.query_one("#season").display = season is not None
        if season is None:
            return
        header = season_header(season, time.time())
        state = (header, season.ranks, season.awards, season.achievements)
        if state == self._last:
            return
        self._last = state
        set_text(self.query_one("#season-header", Static), header)
        self._show_ranks(season.ranks)
        self._show_awards(season.awards)
        self._show_achievements(season.achievements)

    def _show_ranks(self, ranks: Mapping[str, Standing]) -> None:
        table = self.query_one("#ranks", DataTable)
        table.clear()
        for category, standing in ranks.items():
            table.add_row(
                category,
                na(standing.rank, "{:,}"),
                f"{standing.total:,}",
                omnit_amount(standing.amount),
            )
        if not table.row_count:
            table.add_row("not ranked yet", "", "", "")

    def _show_awards(self, awards: Sequence[AwardProgress]) -> None:
        self._awards = awards
        width = self.size.width - AWARDS_FRAME
        lines = [award_lines(award, width) for award in awards]
        text = Content("\n").join(lines) if lines else Content("no season awards announced")
        set_text(self.query_one("#awards", Static), text)

    def _show_achievements(self, achievements: Sequence[Achievement]) -> None:
        table = self.query_one("#achievements", DataTable)
        table.clear()
        for item in achievements:
            table.add_row(item.name, date_time(item.earned_ts), item.description)
        if not table.row_count:
            table.add_row("none yet", "", "")
