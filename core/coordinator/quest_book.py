"""Quests and achievements on the coordinator: offers, acceptance, progress, claims, badges."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from core.coordinator.accounts import AccountBook
from core.coordinator.game_base import OFFERED_KINDS
from core.game import (
    ProgressEvent,
    QuestError,
    QuestState,
    accept,
    check_milestones,
    claim,
    expire,
    offers_for,
    record_progress,
)
from core.game.rules import NodeStats
from core.money import format_omnit


class QuestBook(AccountBook):
    """Every claim is a ledger entry with a unique ref: a quest can never pay twice."""

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

    async def on_benchmark(self, node_id: str, at: float, now: float) -> None:
        await self._progress(node_id, ProgressEvent.benchmark(at), now)

    async def on_quality_round(self, node_id: str, round_id: str, now: float) -> None:
        """A quality round the coordinator scored (answered in time, well formed)."""
        await self._progress(node_id, ProgressEvent.quality_round(now, ref=round_id), now)

    async def on_records_validated(
        self, node_id: str, count: int, total: int, ref: str, now: float
    ) -> None:
        """``count`` records of a dataset validated (the report agreed); ``total`` so far."""
        await self._progress(node_id, ProgressEvent.records(count, now, ref=ref), now)
        row = await self._account_row(node_id)
        stats = NodeStats(
            verified_results=int(row[2]) if row else 0,
            consecutive_verified=int(row[1]) if row else 0,
            tflop_hours=Fraction(row[4]) if row else Fraction(0),
            quests_claimed=int(row[5]) if row else 0,
            records_validated=total,
        )
        await self._milestones(node_id, now, stats)

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
        amount, note = await self._payout_room(node_id, quest_id, reward.base_units, now)
        self._has_active_quests.pop(node_id, None)
        entry_id = None
        if amount > 0:
            # The ledger's unique (kind, account, ref) index is the last guard against a
            # double credit, should two claims race.
            entry_id = await self.store.add_entry(
                account=node_id,
                amount=amount,
                kind="quest",
                reason=reward.reason + note,
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
            "credited": amount,
            "achievement": reward.achievement,
            "entry_id": entry_id,
            "message": f"claimed {state.title}: {format_omnit(amount, exact=True)} "
            f"OMNIT"
            + (f" and the {reward.achievement} badge" if reward.achievement else "")
            + note,
        }

    async def _payout_room(
        self, node_id: str, quest_id: str, reward: int, now: float
    ) -> tuple[int, str]:
        """What a claim may pay now, and a note when capped (Sybil resistance).

        A node claims only with enough verified work on record, and its quest payouts in
        the payout window stay within a share of what its verified work earned there (and
        an absolute cap): quests add to real work, they cannot replace it.
        """
        rules = self.rules.quest_rules
        units, _ = await self.store.verified_since(node_id, 0.0)
        if units < rules.min_verified_units:
            raise QuestError(
                f"quest {quest_id}: claims need {rules.min_verified_units} verified work units "
                f"on record and this node has {units}; keep sharing, then claim"
            )
        if reward <= 0:
            return 0, ""
        since = now - rules.payout_window_s
        _, earned = await self.store.verified_since(node_id, since)
        paid = await self.store.quest_paid_since(node_id, since)
        share = rules.max_payout_share_of_work * earned
        room = min(rules.max_payout_per_window, share.numerator // share.denominator) - paid
        days = rules.payout_window_s // 86_400
        if room <= 0:
            raise QuestError(
                f"quest {quest_id}: quest rewards of the last {days} days are at this node's "
                f"cap (they stay within what its verified work earned); claim it later"
            )
        if room >= reward:
            return reward, ""
        return room, (
            f" (capped from {format_omnit(reward, exact=True)} OMNIT: quest rewards of "
            f"{days} days stay within what verified work earned)"
        )

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
                "name": getattr(titles.get(r[0]), "name", r[0]),
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
