"""The ledger: registered nodes' accounts, every credit and debit with its reason, the boards.

Money is exact: OMNIT amounts are integers in base units (1 OMNIT = 10**9 base units) and
every ledger entry has a kind and a human reason. The 1,000,000,000 OMNIT maximum supply is
an invariant the database itself enforces (a CHECK on the ``supply`` row, updated in the same
transaction as every mint or burn), so no code path can exceed it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from core.calendar import season_id
from core.game.boards import board_keys
from core.sqlite import SqliteStore

# Entry kinds that create tokens (count against the supply cap) and that destroy them.
# "grant": the starter balance the local network and devnet give a new node.
MINT_KINDS = frozenset({"reward", "liveness", "quest", "award", "grant"})
BURN_KINDS = frozenset({"burn", "slash"})
# What an account earned: pay for work (units, inference seats, data validation), liveness,
# a job's fee share, quests and awards. Not a grant (a starter balance), a refund (one's own
# fee back) nor stake moving between available and staked.
EARNED_KINDS = ("reward", "liveness", "job-fee", "quest", "award")
# Pay for work and for being there: a steady stream, so its hourly rate can be charted and
# watched for drops (quests and awards come in lumps).
WORK_KINDS = ("reward", "liveness", "job-fee")


class SupplyCapReached(Exception):
    """A mint would take the total minted above the maximum supply."""


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    ts: float
    account: str
    amount: int
    kind: str
    reason: str
    category: str
    season: str
    ref: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "amount": self.amount,
            "kind": self.kind,
            "reason": self.reason,
            "category": self.category,
            "season": self.season,
            "ref": self.ref,
        }


@dataclass(frozen=True)
class BoardRow:
    rank: int
    node_id: str
    name: str
    amount: int


class LedgerStore(SqliteStore):
    """The ledger's tables: entries, the supply row and the board totals kept with them."""

    async def upsert_node(
        self,
        node_id: str,
        *,
        name: str | None = None,
        online: bool | None = None,
        backend: str | None = None,
        device: str | None = None,
        gemm_tflops: float | None = None,
    ) -> None:
        now = time.time()
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO nodes (node_id, name, first_seen, last_seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen",
                (node_id, name or node_id[:12], now, now),
            )
            for column, value in (
                ("name", name),
                ("online", None if online is None else int(online)),
                ("backend", backend),
                ("device", device),
                ("gemm_tflops", gemm_tflops),
            ):
                if value is not None:
                    await db.execute(
                        f"UPDATE nodes SET {column} = ? WHERE node_id = ?",
                        (value, node_id),
                    )

    async def known_node(self, node_id: str) -> bool:
        async with self.db.execute("SELECT 1 FROM nodes WHERE node_id = ?", (node_id,)) as cur:
            return await cur.fetchone() is not None

    # -- tasks -----------------------------------------------------------------------------

    async def _insert_entry(
        self,
        *,
        account: str,
        amount: int,
        kind: str,
        reason: str,
        category: str = "",
        ref: str | None = None,
        data: dict[str, Any] | None = None,
        ts: float | None = None,
    ) -> int:
        """Insert one entry inside the caller's transaction, keeping supply and boards exact."""
        ts = time.time() if ts is None else ts
        season = season_id(ts)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("ledger amounts are integers in base units")
        if not reason:
            raise ValueError("every ledger entry needs a reason")
        if kind in MINT_KINDS:
            if amount <= 0:
                raise ValueError(f"a {kind} entry must be positive")
            try:
                await self.db.execute(
                    "UPDATE supply SET minted = minted + ? WHERE id = 1", (amount,)
                )
            except sqlite3.IntegrityError:
                raise SupplyCapReached(
                    f"minting {amount} would exceed the maximum supply"
                ) from None
        elif kind in BURN_KINDS:
            if amount >= 0:
                raise ValueError("a burn entry is negative")
            await self.db.execute("UPDATE supply SET burned = burned + ? WHERE id = 1", (-amount,))
        cur = await self.db.execute(
            "INSERT INTO ledger (ts, account, amount, kind, reason, category, season, ref, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, account, amount, kind, reason, category, season, ref, json.dumps(data or {})),
        )
        if category and kind in MINT_KINDS:
            for period, board in board_keys(category, ts):
                await self.db.execute(
                    "INSERT INTO board (period, category, account, total) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (period, category, account) DO UPDATE"
                    " SET total = total + excluded.total",
                    (period, board, account, amount),
                )
        return int(cur.lastrowid or 0)

    async def add_entry(self, **fields: Any) -> int:
        """Insert one ledger entry in its own transaction (SupplyCapReached rolls back)."""
        async with self.transaction():
            return await self._insert_entry(**fields)

    async def supply(self) -> tuple[int, int]:
        """(minted, burned) in base units."""
        async with self.db.execute("SELECT minted, burned FROM supply WHERE id = 1") as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def balance(self, account: str) -> int:
        """What the ledger holds for ``account`` (the sum of its entries, kept running)."""
        async with self.db.execute(
            "SELECT owned FROM account_owned WHERE account = ?", (account,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def quest_paid_since(self, account: str, since: float) -> int:
        """Base units of quest rewards credited to ``account`` since ``since``."""
        async with self.db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ? AND kind = 'quest'"
            " AND ts >= ?",
            (account, since),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def earned_since(self, account: str, since: float) -> int:
        """Base units ``account`` earned (``EARNED_KINDS``) since ``since``."""
        async with self.db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ? AND ts >= ?"
            f" AND kind IN ({', '.join('?' * len(EARNED_KINDS))})",
            (account, since, *EARNED_KINDS),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def work_earned_by_period(
        self, account: str, now: float, period_s: int, count: int
    ) -> tuple[int, ...]:
        """Base units of ``WORK_KINDS`` in each of the last ``count`` periods, oldest first."""
        async with self.db.execute(
            "SELECT CAST((? - ts) / ? AS INTEGER), COALESCE(SUM(amount), 0) FROM ledger"
            " WHERE account = ? AND ts > ? AND ts <= ?"
            f" AND kind IN ({', '.join('?' * len(WORK_KINDS))}) GROUP BY 1",
            (now, period_s, account, now - count * period_s, now, *WORK_KINDS),
        ) as cur:
            by_age = {int(age): int(total) async for age, total in cur}
        return tuple(by_age.get(age, 0) for age in range(count - 1, -1, -1))

    async def entries(self, account: str, limit: int = 200) -> list[LedgerEntry]:
        async with self.db.execute(
            "SELECT id, ts, account, amount, kind, reason, category, season, ref FROM ledger"
            " WHERE account = ? ORDER BY id DESC LIMIT ?",
            (account, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [LedgerEntry(*row) for row in rows]

    async def leaderboard(
        self, category: str, period: str, *, offset: int = 0, limit: int = 10
    ) -> tuple[list[BoardRow], int]:
        """A page of a board ranked by amount (ties by node id), and the board's size."""
        async with self.db.execute(
            "SELECT b.account, b.total, COALESCE(n.name, substr(b.account, 1, 12)) FROM board b"
            " LEFT JOIN nodes n ON n.node_id = b.account"
            " WHERE b.period = ? AND b.category = ?"
            " ORDER BY b.total DESC, b.account ASC LIMIT ? OFFSET ?",
            (period, category, limit, offset),
        ) as cur:
            rows = list(await cur.fetchall())
        async with self.db.execute(
            "SELECT COUNT(*) FROM board WHERE period = ? AND category = ?", (period, category)
        ) as cur:
            count = await cur.fetchone()
        return (
            [
                BoardRow(offset + i + 1, account, name, int(total))
                for i, (account, total, name) in enumerate(rows)
            ],
            int(count[0]) if count else 0,
        )

    async def rank_of(self, category: str, period: str, account: str) -> tuple[int | None, int]:
        """The account's rank on a board (None when absent) and its amount there."""
        async with self.db.execute(
            "SELECT total FROM board WHERE period = ? AND category = ? AND account = ?",
            (period, category, account),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None, 0
        total = int(row[0])
        async with self.db.execute(
            "SELECT COUNT(*) FROM board WHERE period = ? AND category = ?"
            " AND (total > ? OR (total = ? AND account < ?))",
            (period, category, total, total, account),
        ) as cur:
            ahead = await cur.fetchone()
        return (int(ahead[0]) if ahead else 0) + 1, total
