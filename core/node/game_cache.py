"""The coordinator's answers the console shows (wallet, quests, season, events, boards).

Refreshed while connected: every 10 s, and soon after something changed (a receipt, a quest
action, new retained network state). Reading the cache never waits for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from core.api.client import JSON
from core.errors import CommandError
from core.protocol import Leaderboard

REFRESHED_METHODS = ("wallet", "quests", "season", "events")
Request = Callable[..., Awaitable[Any]]


class GameCache:
    """Holds the latest game views; ``run()`` keeps them fresh through ``request``."""

    def __init__(
        self, request: Request, is_up: Callable[[], bool], on_change: Callable[[], None]
    ) -> None:
        self._request = request
        self._is_up = is_up
        self._on_change = on_change
        self._wanted = asyncio.Event()
        self.state: dict[str, JSON | None] = dict.fromkeys(REFRESHED_METHODS)
        self.leaderboards: dict[str, JSON] = {}

    def refresh_soon(self) -> None:
        self._wanted.set()

    def store_answer(self, method: str, answer: JSON) -> None:
        """Keep a fresh answer the node got for a command (no second request needed)."""
        if method in self.state:
            self.state[method] = answer

    def on_leaderboard(self, board: Leaderboard) -> None:
        self.leaderboards[board.category] = {
            "category": board.category,
            "season": board.season,
            "entries": [
                {
                    "rank": e.rank,
                    "node_id": e.node_id,
                    "name": e.name,
                    "amount": e.amount_base_units,
                }
                for e in board.entries
            ],
            "updated_ts": board.updated_ts,
        }

    def snapshot(self) -> JSON:
        """Snapshot sections for the console: wallet, quests, season, multiplier."""
        quests = self.state["quests"]
        return {
            "wallet": self.state["wallet"],
            "quests": quests.get("quests") if quests else None,
            "season": self.state["season"],
            "multiplier": self.state["events"],
        }

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), 10.0)
            self._wanted.clear()
            if not self._is_up():
                continue
            changed = False
            for method in REFRESHED_METHODS:
                try:
                    answer = await self._request(method, {}, wait_s=5.0)
                except CommandError:
                    break
                if isinstance(answer, dict) and answer != self.state[method]:
                    self.state[method] = answer
                    changed = True
            if changed:
                self._on_change()
            # Debounce: a burst of receipts asks for one refresh, not one each.
            await asyncio.sleep(1.0)
