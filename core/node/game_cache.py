"""The coordinator's answers the console shows (wallet, quests, season, events, boards).

Refreshed while connected: every 10 s, and soon after something changed (a receipt, a quest
action, new retained network state). Reading the cache never waits for the network. Answers
are decoded into the API's views as they arrive; a malformed one is refused like a failed
request, and the last good view stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from core.api.commands import (
    GetMultipliers,
    GetProposals,
    GetQuests,
    GetSeason,
    GetWallet,
    Request,
    convert_result,
)
from core.api.governance import OptionTally, Proposal, ProposalList
from core.api.network import Board, BoardEntry, MultiplierEvents, QuestList, Season, Wallet
from core.errors import CommandError
from core.protocol import Leaderboard, ProposalTally

# The game state the cache keeps, each refreshed with the coordinator's method of the command.
REFRESHED: tuple[type[Request[Any]], ...] = (
    GetWallet,
    GetQuests,
    GetSeason,
    GetMultipliers,
    GetProposals,
)
Requester = Callable[..., Awaitable[Any]]


class GameCache:
    """Holds the latest game views; ``run()`` keeps them fresh through ``request``."""

    def __init__(
        self, request: Requester, is_up: Callable[[], bool], on_change: Callable[[], None]
    ) -> None:
        self._request = request
        self._is_up = is_up
        self._on_change = on_change
        self._wanted = asyncio.Event()
        self.wallet: Wallet | None = None
        self.quests: QuestList | None = None
        self.season: Season | None = None
        self.multipliers: MultiplierEvents | None = None
        self.leaderboards: dict[str, Board] = {}
        self.proposals: ProposalList | None = None
        self.published: dict[str, ProposalTally] = {}
        """The governance tallies the network published (retained), by proposal id."""

    def refresh_soon(self) -> None:
        self._wanted.set()

    def store(self, answer: object) -> bool:
        """Keep a fresh answer the node got for a command; whether it differed."""
        before = (self.wallet, self.quests, self.season, self.multipliers, self.proposals)
        if isinstance(answer, Wallet):
            self.wallet = answer
        elif isinstance(answer, QuestList):
            self.quests = answer
        elif isinstance(answer, Season):
            self.season = answer
        elif isinstance(answer, MultiplierEvents):
            self.multipliers = answer
        elif isinstance(answer, ProposalList):
            self.proposals = answer
        return before != (self.wallet, self.quests, self.season, self.multipliers, self.proposals)

    def on_proposal(self, tally: ProposalTally) -> None:
        """A published tally, merged into the proposals this node knows without asking: a
        vote anywhere must not make every node query the coordinator. This node's own vote
        and weight come with the next ``proposals`` answer."""
        self.published[tally.proposal_id] = tally
        if self.proposals is None:
            return  # the first answer brings them all
        known = {p.proposal_id: p for p in self.proposals.proposals}
        old = known.get(tally.proposal_id)
        known[tally.proposal_id] = proposal_view(tally, old.your_vote if old else None)
        merged = sorted(known.values(), key=lambda p: (p.created_ts, p.proposal_id), reverse=True)
        fresh = ProposalList(weight=self.proposals.weight, proposals=tuple(merged))
        if fresh != self.proposals:
            self.proposals = fresh
            self._on_change()

    def on_leaderboard(self, board: Leaderboard) -> None:
        self.leaderboards[board.category] = Board(
            category=board.category,
            season=board.season,
            entries=tuple(
                BoardEntry(rank=e.rank, node_id=e.node_id, name=e.name, amount=e.amount_base_units)
                for e in board.entries
            ),
            updated_ts=board.updated_ts,
        )

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), 10.0)
            self._wanted.clear()
            if not self._is_up():
                continue
            changed = False
            for request_type in REFRESHED:
                method = request_type.coordinator_method
                assert method is not None
                try:
                    answer = await self._request(method, {}, wait_s=5.0)
                except CommandError:
                    break  # offline, or no answer: the next round asks again
                try:
                    view = convert_result(request_type, answer, source="the coordinator")
                except CommandError:
                    continue  # malformed: keep the last good view
                changed = self.store(view) or changed
            if changed:
                self._on_change()
            # Debounce: a burst of receipts asks for one refresh, not one each.
            await asyncio.sleep(1.0)


def proposal_view(tally: ProposalTally, your_vote: str | None) -> Proposal:
    """A published tally as the API's proposal view."""
    options = tuple(
        OptionTally(option=o.option, weight=o.weight, voters=o.voters) for o in tally.options
    )
    view = Proposal(
        proposal_id=tally.proposal_id,
        title=tally.title,
        text=tally.text,
        options=options,
        start_ts=tally.start,
        end_ts=tally.end,
        created_ts=tally.created_ts,
        state="open",
        total_weight=sum(o.weight for o in options),
        voters=sum(o.voters for o in options),
        final=tally.final,
        your_vote=your_vote,
    )
    return msgspec.structs.replace(view, state=view.state_at(time.time()))
