"""The node's local store: one SQLite file through aiosqlite.

Durability choice: WAL journal with ``synchronous=NORMAL``. In WAL mode a committed
transaction survives a crash or ``kill -9`` of the process; only an OS crash or power loss
can lose the last few commits (the database is never corrupted). That trade is what a node
writing telemetry-paced events wants: no fsync per event. The outbox of the network sync
relies on the same guarantee (a lost last commit is re-done from the work it reports).

Schema changes are append-only migrations, recorded in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiosqlite

from core.errors import StoreError

# Append only: a released migration is never edited, a new one is added.
MIGRATIONS: Sequence[str] = (
    # 1: node events and benchmark results.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_ts ON events (ts);
    CREATE TABLE benchmarks (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        backend TEXT NOT NULL,
        device TEXT NOT NULL,
        quick INTEGER NOT NULL,
        verified INTEGER NOT NULL,
        result TEXT NOT NULL
    );
    """,
    # 2: network work, its outbox (store-and-forward) and small settings (pinned keys).
    """
    CREATE TABLE work (
        work_id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        ts REAL NOT NULL,
        n INTEGER NOT NULL,
        dtype TEXT NOT NULL,
        tflops REAL NOT NULL,
        elapsed_s REAL NOT NULL,
        commitment TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        reason TEXT NOT NULL DEFAULT '',
        credited INTEGER NOT NULL DEFAULT 0,
        entry_id INTEGER,
        receipt_ts REAL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        work_id TEXT NOT NULL UNIQUE REFERENCES work (work_id),
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_ts REAL NOT NULL
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class EventRow:
    id: int
    ts: float
    level: str
    kind: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True)
class BenchmarkRow:
    id: int
    ts: float
    backend: str
    device: str
    quick: bool
    verified: bool
    result: dict[str, Any]


class Store:
    """Async access to the node's SQLite file; use as ``async with Store.open(path) as s``."""

    #: The schema this store's file follows; subclasses (the coordinator's) bring their own.
    migrations: Sequence[str] = MIGRATIONS

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on this connection.

        aiosqlite runs statements one by one on its thread, so two coroutines writing at
        once would interleave inside each other's transactions: every write goes through here.
        """
        async with self._write_lock:
            try:
                # Inside the try: a cancel that lands while BEGIN runs must still roll back.
                await self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def connect(self) -> None:
        try:
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self.migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreError(f"store {self.path}: {exc}") from None
        except BaseException:
            # Whatever stops the start (a newer schema, a cancel): never leak the connection.
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def schema_version(self) -> int:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_ts REAL)"
        )
        async with self.db.execute("SELECT MAX(version) FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def migrate(self, migrations: Sequence[str] | None = None) -> int:
        """Apply pending migrations, each in its own transaction. Returns the new version."""
        migrations = self.migrations if migrations is None else migrations
        current = await self.schema_version()
        await self.db.commit()
        if current > len(migrations):
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this program "
                f"knows ({len(migrations)}); upgrade omnitensor"
            )
        for version in range(current + 1, len(migrations) + 1):
            script = migrations[version - 1]
            # executescript would commit implicitly; run statements in one explicit txn.
            await self.db.execute("BEGIN")
            try:
                for statement in _split_sql(script):
                    await self.db.execute(statement)
                await self.db.execute(
                    "INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)",
                    (version, time.time()),
                )
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        return len(migrations)

    async def add_event(
        self, level: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> int:
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO events (ts, level, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                (time.time(), level, kind, message, json.dumps(data or {})),
            )
        return int(cur.lastrowid or 0)

    async def recent_events(self, limit: int = 100) -> list[EventRow]:
        async with self.db.execute(
            "SELECT id, ts, level, kind, message, data FROM events ORDER BY id DESC LIMIT ?",
            (limit,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            EventRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in reversed(list(rows))
        ]

    async def add_benchmark(self, result: dict[str, Any]) -> int:
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO benchmarks (ts, backend, device, quick, verified, result)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    str(result.get("backend", "")),
                    str(result.get("device", "")),
                    int(bool(result.get("quick"))),
                    int(bool(result.get("verified"))),
                    json.dumps(result),
                ),
            )
        return int(cur.lastrowid or 0)

    async def last_benchmark(self) -> BenchmarkRow | None:
        async with self.db.execute(
            "SELECT id, ts, backend, device, quick, verified, result FROM benchmarks"
            " ORDER BY id DESC LIMIT 1"
        ) as cur:
            r = await cur.fetchone()
        if r is None:
            return None
        return BenchmarkRow(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), json.loads(r[6]))


@dataclass(frozen=True)
class OutboxRow:
    id: int
    work_id: str
    topic: str
    payload: bytes


class NodeStore(Store):
    """The node's store with the network sync's tables (outbox, work, settings)."""

    async def get_setting(self, key: str) -> str | None:
        async with self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def set_setting(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def add_work(self, work: dict[str, Any], topic: str, payload: bytes) -> None:
        """Record a result and its outgoing message in ONE transaction (store-and-forward)."""
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO work (work_id, task_id, ts, n, dtype, tflops, elapsed_s, commitment)"
                " VALUES (:work_id, :task_id, :ts, :n, :dtype, :tflops, :elapsed_s, :commitment)",
                work,
            )
            await db.execute(
                "INSERT INTO outbox (work_id, topic, payload, created_ts) VALUES (?, ?, ?, ?)",
                (work["work_id"], topic, payload, time.time()),
            )

    async def outbox(self, limit: int = 1000) -> list[OutboxRow]:
        async with self.db.execute(
            "SELECT id, work_id, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,)
        ) as cur:
            rows = await cur.fetchall()
        return [OutboxRow(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    async def apply_receipt(
        self, work_id: str, *, accepted: bool, reason: str, credited: int, entry_id: int | None
    ) -> bool:
        """Settle a work item from the coordinator's receipt; False if nothing was pending."""
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM outbox WHERE work_id = ?", (work_id,))
            settled = cur.rowcount > 0
            if settled:
                await db.execute(
                    "UPDATE work SET status = ?, reason = ?, credited = ?, entry_id = ?,"
                    " receipt_ts = ? WHERE work_id = ?",
                    (
                        "accepted" if accepted else "rejected",
                        reason,
                        credited,
                        entry_id,
                        time.time(),
                        work_id,
                    ),
                )
        return settled

    async def work_counters(self) -> dict[str, int]:
        async with self.db.execute(
            "SELECT (SELECT COUNT(*) FROM work),"
            " (SELECT COUNT(*) FROM work WHERE status != 'pending'),"
            " (SELECT COUNT(*) FROM outbox),"
            " (SELECT COUNT(*) FROM work WHERE status = 'rejected'),"
            " (SELECT COALESCE(SUM(credited), 0) FROM work)"
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return {
            "work.submitted": int(row[0]),
            "work.acknowledged": int(row[1]),
            "outbox.pending": int(row[2]),
            "work.rejected": int(row[3]),
            "work.credited": int(row[4]),
        }


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
