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

from core.protocol.envelope import MAX_MESSAGE_BYTES
from core.sqlite import ReplayMarksMixin

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
    # 3: protocol v2. A unit is received, computed and committed (a Merkle root), then proved
    # (a challenge answered), then settled by the receipt; the outbox holds the one message
    # of its current stage. Replay marks survive restarts. v1 work means nothing to v2.
    """
    DROP TABLE outbox;
    DROP TABLE work;
    CREATE TABLE units (
        task_id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        seed TEXT NOT NULL,
        m INTEGER NOT NULL,
        n INTEGER NOT NULL,
        k INTEGER NOT NULL,
        block INTEGER NOT NULL,
        issued_ts REAL NOT NULL,
        deadline_ts REAL NOT NULL,
        received_ts REAL NOT NULL,
        root TEXT,
        elapsed_s REAL NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'received',
        reason TEXT NOT NULL DEFAULT '',
        flops INTEGER NOT NULL DEFAULT 0,
        credited INTEGER NOT NULL DEFAULT 0,
        entry_id INTEGER,
        receipt_ts REAL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL UNIQUE REFERENCES units (task_id),
        stage TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_ts REAL NOT NULL
    );
    CREATE TABLE high_water (
        sender TEXT NOT NULL,
        topic TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (sender, topic)
    );
    """,
    # 4: one worker per GPU: a unit belongs to the device (worker) it was issued to.
    "ALTER TABLE units ADD COLUMN worker INTEGER NOT NULL DEFAULT 0;",
)

# Unit statuses on the node, in order; "accepted" and "rejected" are settled by a receipt.
UNIT_STATUSES = ("received", "committed", "proved", "accepted", "rejected")


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
    task_id: str
    stage: str
    topic: str
    payload: bytes


@dataclass(frozen=True)
class ReceivedUnit:
    """A work unit as the node received it (its spec) and how far it got."""

    task_id: str
    purpose: str
    seed: str  # hex
    m: int
    n: int
    k: int
    block: int
    issued_ts: float
    deadline_ts: float
    root: str | None = None
    status: str = "received"
    worker: int = 0


_UNIT_COLUMNS = (
    "task_id, purpose, seed, m, n, k, block, issued_ts, deadline_ts, root, status, worker"
)


class NodeStore(ReplayMarksMixin):
    """The node's store: its log, benchmarks, work, the outbox and small settings.

    Every read goes through ``read_rows``/``read_row`` (``consistent()``): on one connection a
    read between two statements of another task's write transaction would see that
    transaction half done (or an outbox message that may still roll back). Reads never run
    inside a transaction.
    """

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
        rows = await self.read_rows(
            "SELECT id, ts, level, kind, message, data FROM events ORDER BY id DESC LIMIT ?",
            (limit,),
        )
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
        r = await self.read_row(
            "SELECT id, ts, backend, device, quick, verified, result FROM benchmarks"
            " ORDER BY id DESC LIMIT 1"
        )
        if r is None:
            return None
        return BenchmarkRow(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), json.loads(r[6]))

    async def get_setting(self, key: str) -> str | None:
        row = await self.read_row("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_setting(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def add_unit(self, unit: ReceivedUnit) -> bool:
        """Keep a unit the coordinator sent; False when it was already here (a re-delivery)."""
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO units (task_id, purpose, seed, m, n, k, block, issued_ts,"
                " deadline_ts, received_ts, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    unit.task_id,
                    unit.purpose,
                    unit.seed,
                    unit.m,
                    unit.n,
                    unit.k,
                    unit.block,
                    unit.issued_ts,
                    unit.deadline_ts,
                    time.time(),
                    unit.worker,
                ),
            )
        return cur.rowcount > 0

    async def unit(self, task_id: str) -> ReceivedUnit | None:
        row = await self.read_row(
            f"SELECT {_UNIT_COLUMNS} FROM units WHERE task_id = ?", (task_id,)
        )
        return None if row is None else ReceivedUnit(*row)

    async def units_to_compute(self, now: float) -> list[ReceivedUnit]:
        """Units received but not committed yet whose deadline has not passed (restarts)."""
        rows = await self.read_rows(
            f"SELECT {_UNIT_COLUMNS} FROM units WHERE status = 'received' AND deadline_ts > ?"
            " ORDER BY issued_ts",
            (now,),
        )
        return [ReceivedUnit(*row) for row in rows]

    async def advance_unit(
        self,
        task_id: str,
        stage: str,
        topic: str,
        payload: bytes,
        *,
        root: str | None = None,
        elapsed_s: float | None = None,
    ) -> None:
        """Record a unit's new stage and its outgoing message in ONE transaction.

        ``stage`` is "committed" (the root) or "proved" (the challenge's answer); the outbox
        keeps one message per unit, the latest stage's, until the receipt settles it.
        """
        if stage not in ("committed", "proved"):
            raise ValueError(f"unknown unit stage {stage!r}")
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(f"{stage} message of {len(payload)} bytes is over the message cap")
        async with self.transaction() as db:
            await db.execute(
                "UPDATE units SET status = ?, root = COALESCE(?, root),"
                " elapsed_s = COALESCE(?, elapsed_s) WHERE task_id = ?",
                (stage, root, elapsed_s, task_id),
            )
            await db.execute(
                "INSERT INTO outbox (task_id, stage, topic, payload, created_ts)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET"
                " stage = excluded.stage, topic = excluded.topic, payload = excluded.payload",
                (task_id, stage, topic, payload, time.time()),
            )

    async def outbox(self, limit: int = 1000) -> list[OutboxRow]:
        # Never a message whose transaction is still open (it could yet roll back).
        rows = await self.read_rows(
            "SELECT id, task_id, stage, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,)
        )
        return [OutboxRow(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    async def apply_receipt(
        self,
        task_id: str,
        *,
        accepted: bool,
        reason: str,
        flops: int,
        credited: int,
        entry_id: int | None,
    ) -> bool:
        """Settle a unit from the coordinator's receipt; False if it was settled already."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE units SET status = ?, reason = ?, flops = ?, credited = ?, entry_id = ?,"
                " receipt_ts = ? WHERE task_id = ? AND status NOT IN ('accepted', 'rejected')",
                (
                    "accepted" if accepted else "rejected",
                    reason,
                    flops,
                    credited,
                    entry_id,
                    time.time(),
                    task_id,
                ),
            )
            settled = cur.rowcount > 0
            await db.execute("DELETE FROM outbox WHERE task_id = ?", (task_id,))
        return settled

    async def hourly_credits(self, now: float, hours: int = 24) -> tuple[int, ...]:
        """Base units credited by receipts in each of the last ``hours`` hours, oldest first."""
        return await self.credits_by_period(now, 3600, hours)

    async def credits_by_period(self, now: float, period_s: int, count: int) -> tuple[int, ...]:
        """Base units credited by receipts in each of the last ``count`` periods, oldest first."""
        rows = await self.read_rows(
            "SELECT CAST((? - receipt_ts) / ? AS INTEGER), COALESCE(SUM(credited), 0)"
            " FROM units WHERE receipt_ts IS NOT NULL AND receipt_ts > ? GROUP BY 1",
            (now, period_s, now - count * period_s),
        )
        by_age = {int(age): int(total) for age, total in rows}
        return tuple(by_age.get(age, 0) for age in range(count - 1, -1, -1))

    async def work_counters(self) -> dict[str, int]:
        # One read between write transactions: a unit acknowledged and its outbox entry
        # gone are one change (apply_receipt), never seen half done.
        row = await self.read_row(
            "SELECT (SELECT COUNT(*) FROM units WHERE status != 'received'),"
            " (SELECT COUNT(*) FROM units WHERE status IN ('accepted', 'rejected')),"
            " (SELECT COUNT(*) FROM outbox),"
            " (SELECT COUNT(*) FROM units WHERE status = 'rejected'),"
            " (SELECT COALESCE(SUM(credited), 0) FROM units),"
            " (SELECT COALESCE(SUM(flops), 0) FROM units WHERE status = 'accepted')"
        )
        assert row is not None
        return {
            "work.submitted": int(row[0]),
            "work.acknowledged": int(row[1]),
            "outbox.pending": int(row[2]),
            "work.rejected": int(row[3]),
            "work.credited": int(row[4]),
            "work.verified_flops": int(row[5]),
        }
