"""The coordinator's side of the game: it applies ``core.game``'s pure rules to its store.

Quests, multiplier events, reputation and stakes, achievements and season awards live in the
coordinator's SQLite file next to the ledger; every credit is a ledger entry with a kind, a
unique ref and a reason, so a claim or an award can never be credited twice.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from core.coordinator.season_book import SeasonBook
from core.game import (
    EventError,
    MultiplierEvent,
    ProgressEvent,
    QuestError,
    Reputation,
    StakeError,
    combined_factor,
    record_verified,
    upcoming,
    validate_new_event,
)
from core.game.rules import NodeStats


class GameService(SeasonBook):
    """Game state for the coordinator; every method takes ``now`` for testability."""

    async def events(self) -> list[MultiplierEvent]:
        async with self.store.db.execute(
            'SELECT id, kind, name, factor, start, "end", announced_at FROM multiplier_events'
        ) as cur:
            rows = await cur.fetchall()
        return [
            MultiplierEvent(
                id=r[0],
                kind=r[1],
                name=r[2],
                factor=Fraction(r[3]),
                start=r[4],
                end=r[5],
                announced_at=r[6],
            )
            for r in rows
        ]

    async def announce(self, event: MultiplierEvent, now: float) -> None:
        """Store a new event; EventError (with the reason) when the rules refuse it."""
        validate_new_event(await self.events(), event, now, self.rules)
        async with self.store.transaction() as db:
            await db.execute(
                'INSERT INTO multiplier_events (id, kind, name, factor, start, "end",'
                " announced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.kind,
                    event.name,
                    str(event.factor),
                    event.start,
                    event.end,
                    event.announced_at,
                ),
            )

    async def multiplier(self, at: float) -> Fraction:
        return combined_factor(await self.events(), at)

    async def events_view(self, now: float) -> dict[str, Any]:
        events = await self.events()
        return {
            "factor": str(combined_factor(events, now)),
            "active": [_event_json(e) for e in events if e.start <= now < e.end],
            "upcoming": [_event_json(e) for e in upcoming(events, now)],
        }

    async def on_verified_batch(
        self, items: list[tuple[str, str, float, float]], now: float
    ) -> None:
        """Reputation, counters, quest progress and badges for a batch of verified work.

        Items are (node, work_id, tflops, seconds). This is the ingest hot path: one query
        reads every node's account, one transaction writes them all back, and quests are
        read only for nodes that have some a work result can advance.
        """
        by_node: dict[str, list[tuple[str, float, float]]] = {}
        for node_id, work_id, tflops, seconds in items:
            by_node.setdefault(node_id, []).append((work_id, tflops, seconds))
        ids = sorted(by_node)
        rows: dict[str, Any] = {}
        marks = ",".join("?" * len(ids))
        async with self.store.db.execute(
            "SELECT node_id, staked, consecutive, verified, failed, tflop_hours,"  # noqa: S608
            f" quests_claimed FROM accounts WHERE node_id IN ({marks})",
            ids,
        ) as cur:
            async for found in cur:
                rows[found[0]] = found
        updates = []
        stats_by_node: dict[str, NodeStats] = {}
        for node_id, works in by_node.items():
            row: Any = rows.get(node_id)
            reputation = Reputation(int(row[2]), int(row[3]), int(row[4])) if row else Reputation()
            hours = Fraction(row[5]) if row else Fraction(0)
            for _work_id, tflops, seconds in works:
                hours += Fraction(tflops) * Fraction(seconds) / 3600
                reputation = record_verified(reputation)
            updates.append(
                (
                    node_id,
                    reputation.consecutive,
                    reputation.verified,
                    reputation.failed,
                    str(hours),
                )
            )
            stats_by_node[node_id] = NodeStats(
                verified_results=reputation.verified,
                consecutive_verified=reputation.consecutive,
                tflop_hours=hours,
                quests_claimed=int(row[6]) if row else 0,
            )
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO accounts (node_id, consecutive, verified, failed, tflop_hours)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET"
                " consecutive = excluded.consecutive, verified = excluded.verified,"
                " failed = excluded.failed, tflop_hours = excluded.tflop_hours",
                updates,
            )
        for node_id, works in by_node.items():
            if self._has_active_quests.get(node_id) is not False:
                events = [
                    ProgressEvent.work(tflops, seconds, now, ref=work_id)
                    for work_id, tflops, seconds in works
                ]
                await self._advance_quests(node_id, events, now)
            await self._milestones(node_id, now, stats_by_node[node_id])


def _event_json(event: MultiplierEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "name": event.name,
        "factor": str(event.factor),
        "start_ts": event.start,
        "end_ts": event.end,
    }


__all__ = ["EventError", "GameService", "QuestError", "StakeError"]
