"""What the coordinator's game books share: the store, the rules and two ingest caches."""

from __future__ import annotations

from typing import Any

from core.coordinator.store import CoordinatorStore
from core.game import default_rules
from core.game.rules import GameRules

# Quest kinds the network can verify progress for: quality rounds are scored by the
# coordinator (core/coordinator/quality.py), records validated count once the validator's
# report agreed with the accepted one (core/coordinator/data_tasks.py).
OFFERED_KINDS = frozenset(
    {"tflop-hours", "benchmark", "uptime", "quality-rounds", "validate-records"}
)


class GameBase:
    """The store and rules, the ingest-path caches, and small reads every book needs."""

    def __init__(self, store: CoordinatorStore, rules: GameRules | None = None) -> None:
        self.store = store
        self.rules = rules or default_rules()
        # Ingest-path caches (the store stays the truth): badges held, and whether a node
        # has quests that verified work can advance.
        self._badges: dict[str, set[str]] = {}
        self._has_active_quests: dict[str, bool] = {}

    async def _account_row(self, node_id: str) -> Any:
        async with self.store.db.execute(
            "SELECT staked, consecutive, verified, failed, tflop_hours, quests_claimed,"
            " unbonding, unbond_at FROM accounts WHERE node_id = ?",
            (node_id,),
        ) as cur:
            return await cur.fetchone()

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
