"""The coordinator's side of the game: it applies ``core.game``'s pure rules to its store.

Quests, multiplier events, reputation and stakes, achievements and season awards live in the
coordinator's SQLite file next to the ledger; every credit is a ledger entry with a kind, a
unique ref and a reason, so a claim or an award can never be credited twice.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

import aiosqlite

from core.calendar import month_id
from core.coordinator.ledger import CoordinatorStore
from core.game import (
    Account,
    EventError,
    MultiplierEvent,
    ProgressEvent,
    QuestError,
    QuestState,
    Reputation,
    StakeError,
    accept,
    can_take_task,
    check_milestones,
    claim,
    combined_factor,
    days_left,
    default_rules,
    ended_periods,
    expire,
    offers_for,
    previous_period,
    record_progress,
    record_verified,
    season_at,
    season_awards,
    slash,
    stake_required,
    upcoming,
    validate_new_event,
)
from core.game import stake as stake_rule
from core.game import unstake as unstake_rule
from core.game.boards import BOARDS, MONTHLY_VALIDATORS
from core.game.rules import GameRules, NodeStats
from core.money import format_omnit

# Quest kinds the network can verify progress for today. Data validation and quality rounds
# are in the rules but have no verified events feeding them yet: offering them would set
# goals nobody can reach.
OFFERED_KINDS = frozenset({"tflop-hours", "benchmark", "uptime"})


class GameService:
    """Game state for the coordinator; every method takes ``now`` for testability."""

    def __init__(self, store: CoordinatorStore, rules: GameRules | None = None) -> None:
        self.store = store
        self.rules = rules or default_rules()
        # Ingest-path caches (the store stays the truth): badges held, and whether a node
        # has quests that verified work can advance.
        self._badges: dict[str, set[str]] = {}
        self._has_active_quests: dict[str, bool] = {}

    # -- multiplier events ---------------------------------------------------------------

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

    # -- accounts, reputation, stakes ----------------------------------------------------

    async def account(self, node_id: str) -> Account:
        row = await self._account_row(node_id)
        owned = await self.store.balance(node_id)
        staked = int(row[0]) if row else 0
        reputation = Reputation(*(int(x) for x in row[1:4])) if row else Reputation()
        return Account(balance=max(0, owned - staked), staked=staked, reputation=reputation)

    async def _account_row(self, node_id: str) -> Any:
        async with self.store.db.execute(
            "SELECT staked, consecutive, verified, failed, tflop_hours, quests_claimed"
            " FROM accounts WHERE node_id = ?",
            (node_id,),
        ) as cur:
            return await cur.fetchone()

    async def stake(self, node_id: str, amount: int) -> dict[str, Any]:
        return await self._move_stake(node_id, amount, stake_rule)

    async def unstake(self, node_id: str, amount: int) -> dict[str, Any]:
        return await self._move_stake(node_id, amount, unstake_rule)

    async def _move_stake(
        self, node_id: str, amount: int, rule: Callable[[Account, int], Account]
    ) -> dict[str, Any]:
        """Check and apply a stake change in one write transaction (no lost updates)."""
        async with self.store.transaction() as db:
            account = await self._locked_account(db, node_id)
            after = rule(account, amount)
            await db.execute(
                "INSERT INTO accounts (node_id, staked) VALUES (?, ?) ON CONFLICT (node_id)"
                " DO UPDATE SET staked = staked + ?",
                (node_id, after.staked - account.staked, after.staked - account.staked),
            )
        return {"staked": after.staked, "balance": after.balance}

    async def _locked_account(self, db: aiosqlite.Connection, node_id: str) -> Account:
        async with db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (node_id,)
        ) as cur:
            owned_row = await cur.fetchone()
        async with db.execute("SELECT staked FROM accounts WHERE node_id = ?", (node_id,)) as cur:
            staked_row = await cur.fetchone()
        owned = int(owned_row[0]) if owned_row else 0
        staked = int(staked_row[0]) if staked_row else 0
        return Account(balance=max(0, owned - staked), staked=staked)

    # -- verified and failed work --------------------------------------------------------

    async def reputations(self, node_ids: Iterable[str]) -> dict[str, Reputation]:
        """Reputations of several nodes in one query (the ingest path)."""
        ids = sorted(set(node_ids))
        found = dict.fromkeys(ids, Reputation())
        if not ids:
            return found
        marks = ",".join("?" * len(ids))
        async with self.store.db.execute(
            "SELECT node_id, consecutive, verified, failed FROM accounts"  # noqa: S608
            f" WHERE node_id IN ({marks})",
            ids,
        ) as cur:
            async for row in cur:
                found[row[0]] = Reputation(int(row[1]), int(row[2]), int(row[3]))
        return found

    async def stakes(self, node_ids: Iterable[str]) -> dict[str, int]:
        ids = sorted(set(node_ids))
        found = dict.fromkeys(ids, 0)
        if not ids:
            return found
        marks = ",".join("?" * len(ids))
        async with self.store.db.execute(
            f"SELECT node_id, staked FROM accounts WHERE node_id IN ({marks})",  # noqa: S608
            ids,
        ) as cur:
            async for row in cur:
                found[row[0]] = int(row[1])
        return found

    def cap_for_stake(self, value: int, staked: int) -> tuple[int, str]:
        """Higher-value tasks need a stake: without enough, a task pays the free value only.

        Returns the amount to credit and, when capped, the reason to add to the entry.
        """
        if can_take_task(Account(staked=staked), value, self.rules):
            return value, ""
        free = self.rules.staking.free_task_value
        need = stake_required(value, self.rules)
        return free, (
            f"capped at {format_omnit(free, exact=True)} OMNIT: a task worth "
            f"{format_omnit(value, exact=True)} OMNIT needs {format_omnit(need, exact=True)} "
            f"OMNIT staked"
        )

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

    async def _advance_quests(self, node_id: str, events: list[ProgressEvent], now: float) -> None:
        states = await self._quest_states(node_id)
        self._has_active_quests[node_id] = any(
            st.status in ("accepted", "in_progress") for st in states.values()
        )
        changed: dict[str, QuestState] = {}
        for state in states.values():
            if state.status not in ("accepted", "in_progress"):
                continue
            new = state
            for event in events:
                new = record_progress(new, event, now)
            if new != state:
                changed[new.quest_id] = new
        if changed:
            await self._save_quests(node_id, list(changed.values()))

    async def on_uptime(
        self, node_id: str, online_s: float, observed_s: float, at: float, now: float
    ) -> None:
        """The coordinator watched ``node_id`` for ``observed_s``; it was online ``online_s``."""
        if self._has_active_quests.get(node_id) is False:
            return
        await self._advance_quests(node_id, [ProgressEvent.uptime(online_s, observed_s, at)], now)

    async def on_failed_work(self, node_id: str, work_id: str, reason: str) -> int:
        """Work proven wrong: slash the stake (burned, with the reason), reset reputation.

        One transaction, once per piece of work: the stake cut and its burn entry land
        together or not at all, and a second call for the same work changes nothing.
        """
        fraction = self.rules.staking.slash_fraction
        async with self.store.transaction() as db:
            async with db.execute(
                "SELECT 1 FROM ledger WHERE kind = 'slash' AND account = ? AND ref = ?",
                (node_id, work_id),
            ) as cur:
                if await cur.fetchone() is not None:
                    return 0
            account = await self._locked_account(db, node_id)
            _after, slashed = slash(account, fraction)
            await db.execute(
                "INSERT INTO accounts (node_id, failed) VALUES (?, 1) ON CONFLICT (node_id)"
                " DO UPDATE SET staked = staked - ?, consecutive = 0, failed = failed + 1",
                (node_id, slashed),
            )
            if slashed > 0:
                await self.store._insert_entry(
                    account=node_id,
                    amount=-slashed,
                    kind="slash",
                    reason=(
                        f"slashed {fraction} of the stake: work {work_id} failed "
                        f"verification ({reason[:200]})"
                    ),
                    ref=work_id,
                )
        return slashed

    async def on_benchmark(self, node_id: str, at: float, now: float) -> None:
        await self._progress(node_id, ProgressEvent.benchmark(at), now)

    # -- quests --------------------------------------------------------------------------

    async def _quest_states(self, node_id: str) -> dict[str, QuestState]:
        async with self.store.db.execute(
            "SELECT quest_id, state FROM quests WHERE node_id = ?", (node_id,)
        ) as cur:
            rows = await cur.fetchall()
        return {r[0]: QuestState.from_dict(json.loads(r[1])) for r in rows}

    async def _save_quests(self, node_id: str, states: list[QuestState]) -> None:
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO quests (node_id, quest_id, state) VALUES (?, ?, ?)"
                " ON CONFLICT (node_id, quest_id) DO UPDATE SET state = excluded.state",
                [(node_id, s.quest_id, json.dumps(s.to_dict())) for s in states],
            )

    async def quests(self, node_id: str, capability: float, now: float) -> list[QuestState]:
        """The node's quests, new offers included (goals scaled to its capability)."""
        states = await self._quest_states(node_id)
        fresh = [
            offer
            for offer in offers_for(capability, now, states.keys(), self.rules)
            if offer.kind in OFFERED_KINDS
        ]
        if fresh:
            await self._save_quests(node_id, fresh)
            states.update({s.quest_id: s for s in fresh})
        return [expire(s, now) for s in states.values()]

    async def accept_quest(self, node_id: str, quest_id: str, now: float) -> QuestState:
        state = (await self._quest_states(node_id)).get(quest_id)
        if state is None:
            raise QuestError(f"quest {quest_id}: not offered to this node")
        state = accept(state, now)
        await self._save_quests(node_id, [state])
        self._has_active_quests[node_id] = True
        return state

    async def claim_quest(self, node_id: str, quest_id: str, now: float) -> dict[str, Any]:
        state = (await self._quest_states(node_id)).get(quest_id)
        if state is None:
            raise QuestError(f"quest {quest_id}: not offered to this node")
        state, reward = claim(state, now)
        self._has_active_quests.pop(node_id, None)
        entry_id = None
        if reward.base_units > 0:
            # The ledger's unique (kind, account, ref) index is the last guard against a
            # double credit, should two claims race.
            entry_id = await self.store.add_entry(
                account=node_id,
                amount=reward.base_units,
                kind="quest",
                reason=reward.reason,
                ref=reward.ref,
            )
        await self._save_quests(node_id, [state])
        if reward.achievement:
            await self._earn(node_id, [reward.achievement], now)
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO accounts (node_id, quests_claimed) VALUES (?, 1)"
                " ON CONFLICT (node_id) DO UPDATE SET quests_claimed = quests_claimed + 1",
                (node_id,),
            )
        await self._milestones(node_id, now)
        return {
            "quest_id": quest_id,
            "credited": reward.base_units,
            "achievement": reward.achievement,
            "entry_id": entry_id,
            "message": f"claimed {state.title}: {format_omnit(reward.base_units, exact=True)} "
            f"OMNIT" + (f" and the {reward.achievement} badge" if reward.achievement else ""),
        }

    async def _progress(self, node_id: str, event: ProgressEvent, now: float) -> None:
        states = await self._quest_states(node_id)
        changed = []
        for state in states.values():
            if state.status in ("accepted", "in_progress"):
                new = record_progress(state, event, now)
                if new != state:
                    changed.append(new)
        if changed:
            await self._save_quests(node_id, changed)

    # -- achievements --------------------------------------------------------------------

    async def achievements(self, node_id: str) -> list[dict[str, Any]]:
        titles = {a.id: a for a in self.rules.achievements}
        async with self.store.db.execute(
            "SELECT achievement, earned_ts FROM achievements WHERE node_id = ? ORDER BY earned_ts",
            (node_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            {
                "id": r[0],
                "name": getattr(titles.get(r[0]), "title", r[0]),
                "description": getattr(titles.get(r[0]), "description", ""),
                "earned_ts": r[1],
            }
            for r in rows
        ]

    async def _earn(self, node_id: str, ids: list[str], now: float) -> None:
        if node_id in self._badges:
            self._badges[node_id].update(ids)
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO achievements (node_id, achievement, earned_ts)"
                " VALUES (?, ?, ?)",
                [(node_id, a, now) for a in ids],
            )

    async def _milestones(self, node_id: str, now: float, stats: NodeStats | None = None) -> None:
        if stats is None:
            row = await self._account_row(node_id)
            if row is None:
                return
            stats = NodeStats(
                verified_results=int(row[2]),
                consecutive_verified=int(row[1]),
                tflop_hours=Fraction(row[4]),
                quests_claimed=int(row[5]),
            )
        held = self._badges.get(node_id)
        if held is None:
            held = {a["id"] for a in await self.achievements(node_id)}
            self._badges[node_id] = held
        new = check_milestones(stats, self.rules, held)
        if new:
            await self._earn(node_id, new, now)

    # -- seasons -------------------------------------------------------------------------

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
        """Award every season that ended since the last roll-over (idempotent by award id)."""
        last = await self._kv("last_awarded_season")
        if last is None:
            # First start: seasons before this coordinator existed have nothing to award;
            # the current one is awarded when it ends.
            await self._set_kv("last_awarded_season", previous_period(season_at(now)).id)
            return []
        granted: list[dict[str, Any]] = []
        for period in ended_periods("season", last, now):
            boards = {}
            for category in ("gpu-contributors", "data-validators", "model-testers"):
                rows, _ = await self.store.leaderboard(category, period.id, limit=1000)
                boards[category] = [(r.node_id, r.amount) for r in rows]
            for award in season_awards(boards, self.rules, period, now):
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
                            f", season {award.period})",
                            ref=award.award_id,
                        )
                async with self.store.transaction() as db:
                    await db.execute(
                        "INSERT OR IGNORE INTO awards (award_id, record, entry_id)"
                        " VALUES (?, ?, ?)",
                        (award.award_id, json.dumps(record), entry_id),
                    )
                granted.append(record)
            await self._set_kv("last_awarded_season", period.id)
        return granted

    async def last_awarded(self) -> str | None:
        return await self._kv("last_awarded_season")

    async def _kv(self, key: str) -> str | None:
        async with self.store.db.execute("SELECT value FROM game_kv WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def _set_kv(self, key: str, value: str) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO game_kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


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
