"""The coordinator's store: registered nodes, issued tasks, processed work and the ledger.

Money is exact: OMNIT amounts are integers in base units (1 OMNIT = 10**9 base units) and
every ledger entry has a kind and a human reason. The 1,000,000,000 OMNIT maximum supply is
an invariant the database itself enforces (a CHECK on the ``supply`` row, updated in the same
transaction as every mint or burn), so no code path can exceed it.

Idempotence: a work result is keyed by (sender, work_id) and by (sender, seq); processing
the same message twice finds the stored verdict and changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from core.calendar import season_id
from core.game.boards import board_keys
from core.money import MAX_SUPPLY
from core.sqlite import SqliteStore

# Entry kinds that create tokens (count against the supply cap) and that destroy them.
MINT_KINDS = frozenset({"reward", "liveness", "quest", "award"})
BURN_KINDS = frozenset({"burn", "slash"})


MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        online INTEGER NOT NULL DEFAULT 0,
        backend TEXT NOT NULL DEFAULT '',
        device TEXT NOT NULL DEFAULT '',
        gemm_tflops REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        seed INTEGER NOT NULL,
        n INTEGER NOT NULL,
        dtype TEXT NOT NULL,
        issued_ts REAL NOT NULL,
        deadline_ts REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_open ON tasks (node_id, done);
    CREATE TABLE work (
        sender TEXT NOT NULL,
        work_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        ts REAL NOT NULL,
        accepted INTEGER NOT NULL,
        reason TEXT NOT NULL,
        credited INTEGER NOT NULL,
        entry_id INTEGER,
        PRIMARY KEY (sender, work_id),
        UNIQUE (sender, seq)
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        account TEXT NOT NULL,
        amount INTEGER NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (length(reason) > 0),
        category TEXT NOT NULL DEFAULT '',
        season TEXT NOT NULL DEFAULT '',
        ref TEXT,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX ledger_account ON ledger (account, id);
    CREATE INDEX ledger_board ON ledger (season, category, account);
    CREATE UNIQUE INDEX ledger_ref ON ledger (kind, account, ref) WHERE ref IS NOT NULL;
    -- Running totals per board, kept in the same transaction as the ledger so a page of a
    -- 100,000-node board is an index range scan, not a GROUP BY over the whole ledger.
    CREATE TABLE board (
        period TEXT NOT NULL,
        category TEXT NOT NULL,
        account TEXT NOT NULL,
        total INTEGER NOT NULL,
        PRIMARY KEY (period, category, account)
    );
    CREATE INDEX board_rank ON board (period, category, total DESC, account);
    CREATE TABLE supply (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        minted INTEGER NOT NULL CHECK (minted >= 0 AND minted <= 1000000000000000000),
        burned INTEGER NOT NULL CHECK (burned >= 0 AND burned <= minted)
    );
    INSERT INTO supply (id, minted, burned) VALUES (1, 0, 0);
    """,
    # 2: the game (core/game_service.py): quests, stakes and reputation, badges, events, awards.
    """
    CREATE TABLE quests (
        node_id TEXT NOT NULL,
        quest_id TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (node_id, quest_id)
    );
    CREATE TABLE accounts (
        node_id TEXT PRIMARY KEY,
        staked INTEGER NOT NULL DEFAULT 0 CHECK (staked >= 0),
        consecutive INTEGER NOT NULL DEFAULT 0,
        verified INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        tflop_hours TEXT NOT NULL DEFAULT '0',
        quests_claimed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE achievements (
        node_id TEXT NOT NULL,
        achievement TEXT NOT NULL,
        earned_ts REAL NOT NULL,
        PRIMARY KEY (node_id, achievement)
    );
    CREATE TABLE multiplier_events (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        factor TEXT NOT NULL,
        start REAL NOT NULL,
        "end" REAL NOT NULL,
        announced_at REAL NOT NULL
    );
    CREATE TABLE awards (
        award_id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        entry_id INTEGER
    );
    CREATE TABLE game_kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
""",  # 3: replay protection that survives a restart (InboundFilter high-water marks).
    """
    CREATE TABLE high_water (
        sender TEXT NOT NULL,
        topic TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (sender, topic)
    );
    """,
)


class SupplyCapReached(Exception):
    """A mint would take the total minted above the maximum supply."""


@dataclass(frozen=True)
class WorkVerdict:
    """What the coordinator decided about one work result (stored, and sent as a receipt)."""

    sender: str
    work_id: str
    seq: int
    accepted: bool
    reason: str
    credited: int
    entry_id: int | None


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


class CoordinatorStore(SqliteStore):
    """The coordinator's SQLite file (WAL, ``synchronous=NORMAL``, as the node's)."""

    migrations = MIGRATIONS

    # -- nodes -----------------------------------------------------------------------------

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

    async def add_task(
        self, task_id: str, node_id: str, *, seed: int, n: int, dtype: str, deadline_ts: float
    ) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO tasks (task_id, node_id, seed, n, dtype, issued_ts, deadline_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task_id, node_id, seed, n, dtype, time.time(), deadline_ts),
            )

    async def load_high_water(self) -> dict[tuple[str, str], int]:
        async with self.db.execute("SELECT sender, topic, seq FROM high_water") as cur:
            return {(r[0], r[1]): int(r[2]) async for r in cur}

    async def save_high_water(self, marks: dict[tuple[str, str], int]) -> None:
        if not marks:
            return
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO high_water (sender, topic, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (sender, topic) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                [(sender, topic, seq) for (sender, topic), seq in marks.items()],
            )

    async def lookup_batch(
        self, keys: list[tuple[str, str, int, str]]
    ) -> tuple[dict[tuple[str, str], WorkVerdict], dict[str, dict[str, Any]]]:
        """For (sender, work_id, seq, task_id) keys: stored verdicts and tasks, in 2 queries.

        Verdicts are keyed by (sender, work_id) and also by (sender, "#seq") so a message
        replayed under another work id is still found.
        """
        tasks: dict[str, dict[str, Any]] = {}
        if not keys:
            return {}, tasks
        verdicts = await _verdicts_for(self.db, [(k[0], k[1], k[2]) for k in keys])
        task_ids = sorted({k[3] for k in keys})
        marks = ",".join("?" * len(task_ids))
        async with self.db.execute(
            "SELECT task_id, node_id, seed, n, dtype, issued_ts, deadline_ts, done FROM tasks"
            f" WHERE task_id IN ({marks})",
            task_ids,
        ) as cur:
            names = ("task_id", "node_id", "seed", "n", "dtype", "issued_ts", "deadline_ts", "done")
            async for row in cur:
                tasks[row[0]] = dict(zip(names, row, strict=True))
        return verdicts, tasks

    async def record_work(
        self,
        verdicts: Iterable[tuple[WorkVerdict, str, dict[str, Any] | None]],
        inserted: set[tuple[str, str]] | None = None,
    ) -> list[WorkVerdict]:
        """Record verdicts in ONE transaction, crediting accepted work in the ledger.

        Each item is (verdict with credited amount, task_id, ledger details or None). A
        verdict already stored (a duplicate) is returned as stored and changes nothing; a
        credit that would exceed the supply cap turns into a rejection. Statements run per
        batch, not per verdict (``executemany``): this is the coordinator's ingest hot path.
        """
        items = list(verdicts)
        async with self.transaction() as db:
            stored = await self._stored_verdicts(db, [v for v, _, _ in items])
            now = time.time()
            season = season_id(now)
            async with db.execute("SELECT minted FROM supply WHERE id = 1") as cur:
                row = await cur.fetchone()
            minted = int(row[0]) if row else 0
            async with db.execute("SELECT COALESCE(MAX(id), 0) FROM ledger") as cur:
                row = await cur.fetchone()
            next_id = int(row[0]) + 1 if row else 1
            out: list[WorkVerdict] = []
            ledger_rows: list[tuple[Any, ...]] = []
            board: dict[tuple[str, str, str], int] = {}
            work_rows: list[tuple[Any, ...]] = []
            seen: set[tuple[str, str]] = set()
            tasks_answered: set[tuple[str, str]] = set()
            for verdict, task_id, details in items:
                key = (verdict.sender, verdict.work_id)
                known = stored.get(key) or stored.get((verdict.sender, f"#{verdict.seq}"))
                if known is not None or key in seen:
                    out.append(known or next(v for v in out if (v.sender, v.work_id) == key))
                    continue
                seen.add(key)
                accepted, reason, credited = verdict.accepted, verdict.reason, verdict.credited
                # One credit per task: a second result for the same task in this batch.
                if (verdict.sender, task_id) in tasks_answered:
                    accepted, reason, credited = False, "task already answered", 0
                tasks_answered.add((verdict.sender, task_id))
                entry_id: int | None = None
                if not isinstance(credited, int) or isinstance(credited, bool):
                    raise TypeError("ledger amounts are integers in base units")
                if accepted and credited > 0:
                    if minted + credited > MAX_SUPPLY:
                        accepted, reason, credited = False, "maximum supply reached", 0
                    else:
                        info = details or {}
                        category = str(info.get("category", "gpu-contributors"))
                        entry_id, next_id, minted = next_id, next_id + 1, minted + credited
                        ledger_rows.append(
                            (
                                entry_id,
                                now,
                                verdict.sender,
                                credited,
                                "reward",
                                str(info.get("reason") or f"verified work {verdict.work_id}"),
                                category,
                                season,
                                verdict.work_id,
                                json.dumps(info.get("data") or {}),
                            )
                        )
                        for period, name in board_keys(category, now):
                            slot = (period, name, verdict.sender)
                            board[slot] = board.get(slot, 0) + credited
                final = WorkVerdict(
                    verdict.sender,
                    verdict.work_id,
                    verdict.seq,
                    accepted,
                    reason,
                    credited,
                    entry_id,
                )
                work_rows.append(
                    (
                        final.sender,
                        final.work_id,
                        final.seq,
                        task_id,
                        now,
                        int(accepted),
                        reason,
                        credited,
                        entry_id,
                    )
                )
                out.append(final)
                if inserted is not None:
                    inserted.add(key)
            if ledger_rows:
                # The CHECK on supply.minted is the last word on the cap.
                await db.execute("UPDATE supply SET minted = ? WHERE id = 1", (minted,))
                await db.executemany(
                    "INSERT INTO ledger (id, ts, account, amount, kind, reason, category, season,"
                    " ref, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ledger_rows,
                )
                await db.executemany(
                    "INSERT INTO board (period, category, account, total) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (period, category, account) DO UPDATE"
                    " SET total = total + excluded.total",
                    [(*slot, total) for slot, total in board.items()],
                )
            if work_rows:
                await db.executemany(
                    "INSERT INTO work (sender, work_id, seq, task_id, ts, accepted, reason,"
                    " credited, entry_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    work_rows,
                )
                await db.executemany(
                    "UPDATE tasks SET done = 1 WHERE task_id = ?", [(r[3],) for r in work_rows]
                )
        return out

    async def _stored_verdicts(
        self, db: aiosqlite.Connection, verdicts: list[WorkVerdict]
    ) -> dict[tuple[str, str], WorkVerdict]:
        return await _verdicts_for(db, [(v.sender, v.work_id, v.seq) for v in verdicts])

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
        async with self.db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (account,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def entries(self, account: str, limit: int = 200) -> list[LedgerEntry]:
        async with self.db.execute(
            "SELECT id, ts, account, amount, kind, reason, category, season, ref FROM ledger"
            " WHERE account = ? ORDER BY id DESC LIMIT ?",
            (account, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [LedgerEntry(*row) for row in rows]

    async def rejected_work(self, sender: str, limit: int = 100) -> list[dict[str, Any]]:
        async with self.db.execute(
            "SELECT work_id, ts, reason FROM work WHERE sender = ? AND accepted = 0"
            " ORDER BY ts DESC LIMIT ?",
            (sender, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [{"work_id": r[0], "ts": r[1], "reason": r[2]} for r in rows]

    async def work_counts(self, sender: str) -> dict[str, int]:
        async with self.db.execute(
            "SELECT accepted, COUNT(*) FROM work WHERE sender = ? GROUP BY accepted", (sender,)
        ) as cur:
            rows = await cur.fetchall()
        counts = {bool(r[0]): int(r[1]) for r in rows}
        return {"accepted": counts.get(True, 0), "rejected": counts.get(False, 0)}

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


async def _verdicts_for(
    db: aiosqlite.Connection, keys: list[tuple[str, str, int]]
) -> dict[tuple[str, str], WorkVerdict]:
    """Stored verdicts for (sender, work_id, seq) keys, by (sender, work_id) and (sender, "#seq").

    Row-value lookups use the (sender, work_id) primary key and the (sender, seq) unique
    index, so the cost is per key, not per stored row.
    """
    found: dict[tuple[str, str], WorkVerdict] = {}
    for chunk_start in range(0, len(keys), 400):
        chunk = keys[chunk_start : chunk_start + 400]
        pairs = ",".join("(?, ?)" for _ in chunk)
        by_id = [x for sender, work_id, _ in chunk for x in (sender, work_id)]
        by_seq = [x for sender, _, seq in chunk for x in (sender, seq)]
        sql = (
            "SELECT sender, work_id, seq, accepted, reason, credited, entry_id FROM work"
            f" WHERE (sender, work_id) IN (VALUES {pairs})"
            " UNION SELECT sender, work_id, seq, accepted, reason, credited, entry_id FROM work"
            f" WHERE (sender, seq) IN (VALUES {pairs})"
        )
        wanted_ids = {(k[0], k[1]) for k in chunk}
        wanted_seqs = {(k[0], k[2]) for k in chunk}
        async with db.execute(sql, [*by_id, *by_seq]) as cur:
            async for r in cur:
                verdict = WorkVerdict(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])
                if (r[0], r[1]) in wanted_ids:
                    found[(r[0], r[1])] = verdict
                if (r[0], r[2]) in wanted_seqs:
                    found[(r[0], f"#{r[2]}")] = verdict
    return found
