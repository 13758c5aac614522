"""Screen 3: the current season, the node's standing per leaderboard, awards, achievements.

``snapshot["season"]``::

    {"id": "2026-Q4", "start_ts": ..., "end_ts": ..., "days_left": 42,
     "ranks": {"gpu-contributors": {"rank": 12, "total": 340, "amount": <base units>}, ...},
     "awards": [{"name": "Top 10 GPU contributors", "progress": 0.4, "detail": "rank 23"}],
     "achievements": [{"id": "first-bench", "name": "First benchmark", "earned_ts": ...}]}

``ranks`` may also be a list of ``{"category", "rank", "total", "amount"}``, and
achievements may come at the top level of the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Static

from tui.console.screens.base import JSON, NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.format import NA, bar, date_time, first, fraction_of, na, omnit

NO_SEASON = "the node's state has no season (it comes from the network's coordinator)"


def _ranks(section: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(section, Mapping):
        return [(str(k), v) for k, v in section.items() if isinstance(v, Mapping)]
    if isinstance(section, list):
        return [(str(r.get("category", "?")), r) for r in section if isinstance(r, Mapping)]
    return []


def season_header(season: Mapping[str, Any], now: float) -> Content:
    """``Season 2026-Q4 · 2026-10-01 → 2026-12-31 · 42 days left``."""
    start = first(season, "start_ts", "starts_ts", "start")
    end = first(season, "end_ts", "ends_ts", "end")
    days = season.get("days_left")
    if days is None and isinstance(end, int | float):
        days = max(0, int((end - now) // 86_400))
    return Content.assemble(
        ("Season ", "bold"),
        (str(first(season, "id", "name", default="?")), "bold $accent"),
        f"  ·  {date_time(start)} → {date_time(end)}" if start or end else "",
        "  ·  ",
        (na(days, "{} days left"), "bold"),
    )


class SeasonScreen(NodeScreen):
    """Season summary, rank per leaderboard, award progress and achievements."""

    SUB_TITLE = "Season"

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[Any, ...] = ()

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

    def show_snapshot(self, snapshot: JSON) -> None:
        season = snapshot.get("season")
        self.query_one(Unavailable).display = season is None
        self.query_one("#season").display = season is not None
        if season is None:
            return
        achievements = season.get("achievements", snapshot.get("achievements")) or []
        now = time.time()
        header = season_header(season, now)
        state = (header, season.get("ranks"), season.get("awards"), achievements)
        if state == self._last:
            return
        self._last = state
        set_text(self.query_one("#season-header", Static), header)
        self._show_ranks(season.get("ranks"))
        self._show_awards(season.get("awards"))
        self._show_achievements(achievements)

    def _show_ranks(self, section: Any) -> None:
        table = self.query_one("#ranks", DataTable)
        table.clear()
        for category, standing in _ranks(section):
            amount = first(standing, "amount", "amount_base_units")
            table.add_row(
                category,
                na(standing.get("rank"), "{:,}"),
                na(standing.get("total"), "{:,}"),
                omnit(amount) if isinstance(amount, int) else NA,
            )
        if not table.row_count:
            table.add_row("not ranked yet", "", "", "")

    def _show_awards(self, awards: Any) -> None:
        lines: list[Content | str] = []
        for award in awards if isinstance(awards, list) else []:
            if not isinstance(award, Mapping):
                continue
            fraction = fraction_of(award)
            name = str(first(award, "name", "title", "category", default="award"))
            detail = str(first(award, "detail", "description", default=""))
            lines.append(
                Content.assemble(
                    f"{name:<30.30} ",
                    (bar(fraction, 16), "$accent"),
                    f" {na(fraction, '{:4.0%}')}  ",
                    (detail, "$text-muted"),
                )
            )
        text = Content("\n").join(lines) if lines else Content("no season awards announced")
        set_text(self.query_one("#awards", Static), text)

    def _show_achievements(self, achievements: Any) -> None:
        table = self.query_one("#achievements", DataTable)
        table.clear()
        for item in achievements if isinstance(achievements, list) else []:
            if isinstance(item, Mapping):
                table.add_row(
                    str(first(item, "name", "title", "id", default="?")),
                    date_time(first(item, "earned_ts", "ts", "earned")),
                    str(first(item, "description", "detail", default="")),
                )
        if not table.row_count:
            table.add_row("none yet", "", "")
