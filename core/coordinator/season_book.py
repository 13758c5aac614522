"""Seasons on the coordinator: a node's standing, and the awards when a season ends."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

from core.calendar import PeriodKind, month_id
from core.coordinator.quest_book import QuestBook
from core.game import (
    days_left,
    ended_periods,
    monthly_awards,
    period_at,
    previous_period,
    season_at,
    season_awards,
)
from core.game.boards import BOARDS, CATEGORIES, MONTHLY_VALIDATORS


class SeasonBook(QuestBook):
    """Awards are idempotent by award id, so a roll-over that runs twice grants once."""

    async def season_view(self, node_id: str, now: float) -> dict[str, Any]:
        season = season_at(now)
        ranks = {}
        for category in BOARDS:
            period = month_id(now) if category == MONTHLY_VALIDATORS else season.id
            rank, amount = await self.store.rank_of(category, period, node_id)
            _rows, total = await self.store.leaderboard(category, period, limit=1)
            ranks[category] = {"rank": rank, "total": total, "amount": amount}
        awards = []
        for rules in self.rules.boards:
            rank = ranks.get(rules.category, {}).get("rank")
            period_end = "month end" if rules.period == "month" else "season end"
            awards.append(
                {
                    "name": rules.collectible,
                    "progress": 1.0 if rank is not None and rank <= rules.top_n else 0.0,
                    "detail": (
                        f"top {rules.top_n} at {period_end}"
                        + (f"; now #{rank}" if rank is not None else "; not ranked yet")
                    ),
                }
            )
        async with self.store.db.execute(
            "SELECT record FROM awards WHERE json_extract(record, '$.node_id') = ?", (node_id,)
        ) as cur:
            won = [json.loads(r[0]) for r in await cur.fetchall()]
        return {
            "id": season.id,
            "start_ts": season.start,
            "end_ts": season.end,
            "days_left": days_left(season, now),
            "ranks": ranks,
            "awards": awards,
            "won": won,
            "achievements": await self.achievements(node_id),
        }

    async def roll_over(self, now: float) -> list[dict[str, Any]]:
        """Award every season, and every month (the Data Validators of the Month), that ended
        since the last roll-over (idempotent by award id)."""
        granted = await self._roll("season", "last_awarded_season", now)
        return granted + await self._roll("month", "last_awarded_month", now)

    async def _roll(self, kind: PeriodKind, key: str, now: float) -> list[dict[str, Any]]:
        last = await self._kv(key)
        if last is None:
            # First start: periods before this coordinator existed have nothing to award;
            # the current one is awarded when it ends.
            await self._set_kv(key, previous_period(period_at(kind, now)).id)
            return []
        categories = [MONTHLY_VALIDATORS] if kind == "month" else list(CATEGORIES)
        awards_for = monthly_awards if kind == "month" else season_awards
        granted: list[dict[str, Any]] = []
        for period in ended_periods(kind, last, now):
            boards = {}
            for category in categories:
                rows, _ = await self.store.leaderboard(category, period.id, limit=1000)
                boards[category] = [(r.node_id, r.amount) for r in rows]
            for award in awards_for(boards, self.rules, period, now):
                record = award.record()
                entry_id = None
                if award.bonus > 0:
                    with contextlib.suppress(sqlite3.IntegrityError):
                        # A unique ref: an award granted before is not granted twice.
                        entry_id = await self.store.add_entry(
                            account=award.node_id,
                            amount=award.bonus,
                            kind="award",
                            reason=f"{award.collectible} (rank {award.rank} on {award.category}"
                            f", {kind} {award.period})",
                            ref=award.award_id,
                        )
                async with self.store.transaction() as db:
                    await db.execute(
                        "INSERT OR IGNORE INTO awards (award_id, record, entry_id)"
                        " VALUES (?, ?, ?)",
                        (award.award_id, json.dumps(record), entry_id),
                    )
                granted.append(record)
            await self._set_kv(key, period.id)
        return granted

    async def last_awarded(self) -> str | None:
        return await self._kv("last_awarded_season")
