"""Issued tasks and processed work: verdicts stored once, credited in the same transaction.

Idempotence: a work result is keyed by (sender, work_id) and by (sender, seq); processing
the same message twice finds the stored verdict and changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from core.calendar import season_id
from core.coordinator.ledger import LedgerStore
from core.game.boards import board_keys
from core.money import MAX_SUPPLY


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


class WorkRecordsStore(LedgerStore):
    """Tasks issued and results judged, on top of the ledger they credit."""

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
