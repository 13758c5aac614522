"""The node's local store (``node.db``): its log, benchmarks, work results and outbox.

WAL with ``synchronous=NORMAL`` (see :mod:`core.sqlite`) is the trade a node writing
telemetry-paced events wants: no fsync per event. The outbox of the network link relies on
the same guarantee (a lost last commit is re-done from the work it reports).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.sqlite import SqliteStore

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


@dataclass(frozen=True)
class OutboxRow:
    id: int
    work_id: str
    topic: str
    payload: bytes


class NodeStore(SqliteStore):
    """The node's store: its log, benchmarks, work, the outbox and small settings."""

    migrations = MIGRATIONS

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
