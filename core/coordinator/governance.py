"""Governance on the coordinator: proposals and votes in its store, tallies published.

``GovernanceBook`` keeps proposals (put by the operator, ``core.coordinator.operator``) and
one vote per (proposal, node) in ``coordinator.db``, and tallies them with the weights of
``core.game.governance``. ``GovernanceDesk`` answers the ``vote`` and ``proposals``
requests and publishes each proposal with its tally, retained and signed, on
``net/governance/<id>`` whenever it changes; the board tick closes windows that ended
(the final tally is written once and never recomputed). docs/governance.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

import aiomqtt

from core.coordinator.state import CoordinatorState
from core.coordinator.store import CoordinatorStore
from core.game.governance import (
    GovernanceError,
    HeldAward,
    OptionCount,
    Proposal,
    Tally,
    award_period_end,
    check_proposal,
    check_vote,
    tally,
    weights_at,
)
from core.protocol import DEFAULT_TOPICS
from core.protocol.governance import OptionTally, ProposalTally, VoteParams

log = logging.getLogger("omnitensor.coordinator")

# What ``proposals`` lists and the tick republishes: the open and upcoming ones, and those
# closed in the last 30 days (older final tallies stay retained on the broker).
RECENT_S = 30 * 86_400
LISTED = 50

_COLUMNS = 'proposal_id, title, text, options, start, "end", created_ts, final'


def _proposal(row: Any) -> tuple[Proposal, Tally | None]:
    proposal = Proposal(
        proposal_id=row[0],
        title=row[1],
        text=row[2],
        options=tuple(json.loads(row[3])),
        start=row[4],
        end=row[5],
        created_ts=row[6],
    )
    final = None
    if row[7] is not None:
        final = Tally(tuple(OptionCount(o, w, v) for o, w, v in json.loads(row[7])))
    return proposal, final


class GovernanceBook:
    """Proposals and votes in the coordinator's store; weights from the awards it granted."""

    def __init__(self, store: CoordinatorStore) -> None:
        self.store = store
        # Awards are only ever added: their count says whether the cached list is current.
        self._awards: tuple[int, tuple[HeldAward, ...]] = (-1, ())

    async def add_proposal(
        self,
        *,
        title: str,
        text: str,
        options: list[str],
        start: float,
        end: float,
        now: float,
    ) -> Proposal:
        """Store a new proposal (id ``gov-N``); GovernanceError naming what is wrong."""
        title, text, checked = check_proposal(title, text, options, start=start, end=end, now=now)
        async with self.store.transaction() as db:
            async with db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM proposals") as cur:
                row = await cur.fetchone()
            seq = int(row[0]) if row else 1
            proposal = Proposal(f"gov-{seq}", title, text, checked, start, end, now)
            await db.execute(
                'INSERT INTO proposals (seq, proposal_id, title, text, options, start, "end",'
                " created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, proposal.proposal_id, title, text, json.dumps(checked), start, end, now),
            )
        return proposal

    async def proposal(self, proposal_id: str) -> tuple[Proposal, Tally | None] | None:
        async with self.store.db.execute(
            f"SELECT {_COLUMNS} FROM proposals WHERE proposal_id = ?",  # noqa: S608
            (proposal_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _proposal(row)

    async def recent(self, now: float) -> list[tuple[Proposal, Tally | None]]:
        """Open and upcoming proposals and those closed lately, newest first."""
        async with self.store.db.execute(
            f"SELECT {_COLUMNS} FROM proposals WHERE final IS NULL OR"  # noqa: S608
            ' "end" >= ? ORDER BY seq DESC LIMIT ?',
            (now - RECENT_S, LISTED),
        ) as cur:
            return [_proposal(row) for row in await cur.fetchall()]

    async def held_awards(self) -> tuple[HeldAward, ...]:
        async with self.store.db.execute("SELECT COUNT(*) FROM awards") as cur:
            row = await cur.fetchone()
        count = int(row[0]) if row else 0
        if count != self._awards[0]:
            async with self.store.db.execute("SELECT record FROM awards") as cur:
                records = [json.loads(r[0]) for r in await cur.fetchall()]
            held = tuple(
                HeldAward(r["node_id"], int(r["governance_weight"]), award_period_end(r["period"]))
                for r in records
            )
            self._awards = (count, held)
        return self._awards[1]

    async def weights(self, at: float) -> dict[str, int]:
        return weights_at(await self.held_awards(), at)

    async def votes(self, proposal_id: str) -> dict[str, str]:
        async with self.store.db.execute(
            "SELECT node_id, option FROM votes WHERE proposal_id = ?", (proposal_id,)
        ) as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def tally(self, proposal: Proposal, final: Tally | None, now: float) -> Tally:
        """The final tally once stored; else the votes weighed now (at most at the end)."""
        if final is not None:
            return final
        weights = await self.weights(min(now, proposal.end))
        return tally(proposal.options, await self.votes(proposal.proposal_id), weights)

    async def vote(
        self, node_id: str, proposal_id: str, option: str, now: float
    ) -> tuple[Proposal, str, str | None, int]:
        """Record ``node_id``'s vote (replacing its earlier one): (proposal, the option as
        the proposal spells it, the option it replaced, the node's weight now)."""
        found = await self.proposal(proposal_id)
        if found is None:
            raise GovernanceError(f"unknown proposal {proposal_id!r}")
        proposal, _final = found
        weight = (await self.weights(now)).get(node_id, 0)
        chosen = check_vote(proposal, option, weight, now)
        async with self.store.transaction() as db:
            # Checked again inside the write: a window the tick closed meanwhile stays closed
            # (the final tally is written under the same lock and never includes this vote).
            async with db.execute(
                "SELECT final IS NULL FROM proposals WHERE proposal_id = ?", (proposal_id,)
            ) as cur:
                row = await cur.fetchone()
            if row is None or not row[0]:
                raise GovernanceError(f"voting on {proposal_id} is closed")
            async with db.execute(
                "SELECT option FROM votes WHERE proposal_id = ? AND node_id = ?",
                (proposal_id, node_id),
            ) as cur:
                before = await cur.fetchone()
            await db.execute(
                "INSERT INTO votes (proposal_id, node_id, option, ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (proposal_id, node_id) DO UPDATE SET option = excluded.option,"
                " ts = excluded.ts",
                (proposal_id, node_id, chosen, now),
            )
        return proposal, chosen, None if before is None else str(before[0]), weight

    async def close_due(self, now: float) -> list[str]:
        """Write the final tally (weights at the window's end) of every window that ended."""
        async with self.store.db.execute(
            f'SELECT {_COLUMNS} FROM proposals WHERE final IS NULL AND "end" <= ?',  # noqa: S608
            (now,),
        ) as cur:
            due = [_proposal(row)[0] for row in await cur.fetchall()]
        closed = []
        for proposal in due:
            weights = await self.weights(proposal.end)
            async with self.store.transaction() as db:
                async with db.execute(
                    "SELECT node_id, option FROM votes WHERE proposal_id = ?",
                    (proposal.proposal_id,),
                ) as cur:
                    votes = {r[0]: r[1] for r in await cur.fetchall()}
                final = tally(proposal.options, votes, weights)
                await db.execute(
                    "UPDATE proposals SET final = ? WHERE proposal_id = ? AND final IS NULL",
                    (
                        json.dumps([[o.option, o.weight, o.voters] for o in final.options]),
                        proposal.proposal_id,
                    ),
                )
            closed.append(proposal.proposal_id)
        return closed


class GovernanceDesk:
    """The ``vote`` and ``proposals`` requests, and the retained tallies."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        self.book = GovernanceBook(state.store)
        self._published: dict[str, tuple[Any, ...]] = {}

    async def proposals(self, sender: str, params: Any) -> Any:
        now = time.time()
        listed = []
        for proposal, final in await self.book.recent(now):
            votes = await self.book.votes(proposal.proposal_id)
            view = proposal_json(proposal, await self.book.tally(proposal, final, now), now)
            listed.append({**view, "final": final is not None, "your_vote": votes.get(sender)})
        weight = (await self.book.weights(now)).get(sender, 0)
        return {"weight": weight, "proposals": listed}

    async def vote(self, sender: str, params: VoteParams) -> Any:
        now = time.time()
        proposal, option, previous, weight = await self.book.vote(
            sender, params.proposal_id, params.option, now
        )
        pid = proposal.proposal_id
        if previous == option:
            message = f"already voted {option!r} on {pid}: nothing changed"
        elif previous is not None:
            message = f"changed the vote on {pid} from {previous!r} to {option!r} (weight {weight})"
        else:
            message = f"voted {option!r} on {pid} with weight {weight}"
        await self.publish(proposal, None, now)  # the tally moved: show it at once
        current = proposal_json(proposal, await self.book.tally(proposal, None, now), now)
        return {
            "proposal_id": pid,
            "option": option,
            "previous": previous,
            "weight": weight,
            "message": message,
            "proposal": {**current, "final": False, "your_vote": option},
        }

    async def tick(self, now: float) -> None:
        """Close the windows that ended, then publish each listed proposal that changed."""
        try:
            for proposal_id in await self.book.close_due(now):
                log.info("governance: voting on %s closed; final tally published", proposal_id)
            if not self.state.is_connected():
                return
            for proposal, final in await self.book.recent(now):
                await self.publish(proposal, final, now)
        except Exception:
            # Governance never stops the board tick it rides on: log it, retry next tick.
            log.exception("governance tick failed")

    async def publish(self, proposal: Proposal, final: Tally | None, now: float) -> None:
        """Publish the proposal with its tally (retained) when it changed since the last time."""
        counts = await self.book.tally(proposal, final, now)
        key = (final is not None, counts)
        if self._published.get(proposal.proposal_id) == key:
            return
        message = ProposalTally(
            proposal_id=proposal.proposal_id,
            title=proposal.title,
            text=proposal.text,
            options=[
                OptionTally(option=o.option, weight=o.weight, voters=o.voters)
                for o in counts.options
            ],
            start=proposal.start,
            end=proposal.end,
            created_ts=proposal.created_ts,
            final=final is not None,
            updated_ts=now,
        )
        with contextlib.suppress(aiomqtt.MqttError):  # the next tick publishes it
            await self.state.publish(
                DEFAULT_TOPICS.governance(proposal.proposal_id), ProposalTally.TYPE, message, True
            )
            self._published[proposal.proposal_id] = key


def proposal_json(proposal: Proposal, counts: Tally, now: float) -> dict[str, Any]:
    """A proposal and its tally as the ``proposals`` answer gives it (core.api.governance)."""
    return {
        "proposal_id": proposal.proposal_id,
        "title": proposal.title,
        "text": proposal.text,
        "options": [
            {"option": o.option, "weight": o.weight, "voters": o.voters} for o in counts.options
        ],
        "start_ts": proposal.start,
        "end_ts": proposal.end,
        "created_ts": proposal.created_ts,
        "state": proposal.state(now),
        "total_weight": counts.total_weight,
        "voters": counts.voters,
    }
