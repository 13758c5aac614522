"""The coordinator's answers the console shows (wallet, quests, season, events, boards).

Refreshed while connected: every 10 s, and soon after something changed (a receipt, a quest
action, new retained network state). Reading the cache never waits for the network. Answers
are decoded into the API's views as they arrive; a malformed one is refused like a failed
request, and the last good view stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from core.api.commands import (
    GetMultipliers,
    GetQuests,
    GetSeason,
    GetWallet,
    Request,
    convert_result,
)
from core.api.network import Board, BoardEntry, MultiplierEvents, QuestList, Season, Wallet
from core.errors import CommandError
from core.protocol import Leaderboard

# The game state the cache keeps, each refreshed with the coordinator's method of the command.
REFRESHED: tuple[type[Request[Any]], ...] = (GetWallet, GetQuests, GetSeason, GetMultipliers)
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

    def refresh_soon(self) -> None:
        self._wanted.set()

    def store(self, answer: object) -> bool:
        """Keep a fresh answer the node got for a command; whether it differed."""
        before = (self.wallet, self.quests, self.season, self.multipliers)
        if isinstance(answer, Wallet):
            self.wallet = answer
        elif isinstance(answer, QuestList):
            self.quests = answer
        elif isinstance(answer, Season):
            self.season = answer
        elif isinstance(answer, MultiplierEvents):
            self.multipliers = answer
        return before != (self.wallet, self.quests, self.season, self.multipliers)

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
