"""Jobs in the ledger: the requester's fee held at submission, paid out or refunded once.

Money moves in three kinds of entry, each with a unique ref so nothing pays twice:
``escrow`` (the fee, negative, on the requester, ref = job), at delivery ``job-fee`` (a
share of a task's fee to each worker that agreed, ref = task) plus the network's base
``reward`` (minted, ref = task), or at failure one ``refund`` (the whole fee, ref = job).
A job is charged only when every one of its tasks was delivered.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.coordinator.game_store import GameService
from core.coordinator.ledger import SupplyCapReached
from core.money import format_omnit


class JobRefused(ValueError):
    """A job the requester cannot have (its balance, the limits): the reason is the text."""


@dataclass(frozen=True)
class NewTask:
    task_id: str
    first: int  # the index of its first sentence in the job
    texts: list[str]
    fee: int


@dataclass(frozen=True)
class Payout:
    """One ledger entry of a delivery or a failure."""

    account: str
    amount: int
    kind: str  # "job-fee" or "reward"
    reason: str
    ref: str
    category: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    requester: str
    sentences: int
    fee: int
    state: str
    reason: str
    submitted_ts: float
    finished_ts: float | None


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    job_id: str
    first: int
    count: int
    fee: int
    state: str
    dim: int | None
    embeddings: bytes | None
    provenance: dict[str, Any]


_JOB_COLUMNS = "job_id, requester, sentences, fee, state, reason, submitted_ts, finished_ts"


class JobBook:
    """The coordinator's jobs: one write transaction per state change."""

    def __init__(self, game: GameService) -> None:
        self.game = game
        self.store = game.store

    async def grant_starter(self, node_id: str, amount: int, now: float) -> bool:
        """The starter balance of the local network and devnet: once per node, ever."""
        if amount <= 0:
            return False
        try:
            await self.store.add_entry(
                account=node_id,
                amount=amount,
                kind="grant",
                reason="starter balance of this test network: enough to submit a first job",
                ref="starter",
                ts=now,
            )
        except (sqlite3.IntegrityError, SupplyCapReached):
            return False  # granted before
        return True

    async def submit(
        self, job_id: str, requester: str, tasks: Sequence[NewTask], now: float
    ) -> int:
        """Hold the fee and record the job and its tasks, in one transaction; the fee."""
        fee = sum(t.fee for t in tasks)
        sentences = sum(len(t.texts) for t in tasks)
        async with self.store.transaction() as db:
            available = await self.game.spendable(db, requester, now)
            if available < fee:
                raise JobRefused(
                    f"too little OMNIT: the job costs {format_omnit(fee, exact=True)} OMNIT "
                    f"({sentences} sentences), this node has "
                    f"{format_omnit(available, exact=True)} OMNIT available"
                )
            await db.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS})"  # noqa: S608 - column names only
                " VALUES (?, ?, ?, ?, 'running', '', ?, NULL)",
                (job_id, requester, sentences, fee, now),
            )
            await db.executemany(
                "INSERT INTO job_tasks (task_id, job_id, first, texts, fee, state)"
                " VALUES (?, ?, ?, ?, ?, 'open')",
                [(t.task_id, job_id, t.first, json.dumps(t.texts), t.fee) for t in tasks],
            )
            if fee > 0:
                await self.store._insert_entry(
                    account=requester,
                    amount=-fee,
                    kind="escrow",
                    reason=f"job {job_id}: fee for {sentences} sentences, held until delivery",
                    ref=job_id,
                    ts=now,
                )
        return fee

    async def task_agreed(
        self, task_id: str, dim: int, embeddings: bytes, provenance: dict[str, Any]
    ) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE job_tasks SET state = 'agreed', dim = ?, embeddings = ?, provenance = ?"
                " WHERE task_id = ? AND state = 'open'",
                (dim, embeddings, json.dumps(provenance), task_id),
            )

    async def task_failed(self, task_id: str, provenance: dict[str, Any]) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE job_tasks SET state = 'failed', provenance = ?"
                " WHERE task_id = ? AND state = 'open'",
                (json.dumps(provenance), task_id),
            )

    async def finish(
        self, job_id: str, *, delivered: bool, reason: str, payouts: Sequence[Payout], now: float
    ) -> dict[str, int]:
        """Deliver (pay the workers) or fail (refund the requester) a running job, once.

        Returns the ledger entry id of each payout by (account, ref, kind); empty when the
        job was not running (finished before: nothing moves twice).
        """
        ids: dict[str, int] = {}
        async with self.store.transaction() as db:
            async with db.execute(
                "SELECT requester, fee FROM jobs WHERE job_id = ? AND state = 'running'",
                (job_id,),
            ) as c:
                job = await c.fetchone()
            if job is None:
                return ids
            # The entries first, the state last: readers on this connection (the same
            # coordinator) never see a job "delivered" before its payouts.
            for payout in payouts:
                if payout.amount <= 0:
                    continue
                try:
                    entry = await self.store._insert_entry(
                        account=payout.account,
                        amount=payout.amount,
                        kind=payout.kind,
                        reason=payout.reason,
                        category=payout.category,
                        ref=payout.ref,
                        data=payout.data,
                        ts=now,
                    )
                except SupplyCapReached:
                    continue  # the base reward stops at the supply cap; fees still move
                ids[f"{payout.account}:{payout.ref}:{payout.kind}"] = entry
            if not delivered and int(job[1]) > 0:
                ids[f"{job[0]}:{job_id}:refund"] = await self.store._insert_entry(
                    account=job[0],
                    amount=int(job[1]),
                    kind="refund",
                    reason=f"job {job_id} not delivered ({reason[:200]}): fee refunded",
                    ref=job_id,
                    ts=now,
                )
            await db.execute(
                "UPDATE jobs SET state = ?, reason = ?, finished_ts = ?"
                " WHERE job_id = ? AND state = 'running'",
                ("delivered" if delivered else "failed", reason, now, job_id),
            )
        return ids

    async def running_jobs(self) -> list[JobRecord]:
        async with self.store.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'running'"  # noqa: S608
        ) as cur:
            return [JobRecord(*row) async for row in cur]

    async def job(self, job_id: str) -> JobRecord | None:
        async with self.store.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?",  # noqa: S608
            (job_id,),
        ) as cur:
            row = await cur.fetchone()
        return JobRecord(*row) if row else None

    async def jobs_of(self, requester: str, limit: int) -> list[JobRecord]:
        async with self.store.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE requester = ?"  # noqa: S608
            " ORDER BY submitted_ts DESC LIMIT ?",
            (requester, limit),
        ) as cur:
            return [JobRecord(*row) async for row in cur]

    async def tasks(self, job_id: str, *, with_vectors: bool = False) -> list[TaskRecord]:
        vectors = "embeddings" if with_vectors else "NULL"
        async with self.store.db.execute(
            "SELECT task_id, job_id, first, json_array_length(texts), fee, state, dim,"  # noqa: S608
            f" {vectors},"
            " provenance FROM job_tasks WHERE job_id = ? ORDER BY first",
            (job_id,),
        ) as cur:
            return [
                TaskRecord(
                    row[0],
                    row[1],
                    int(row[2]),
                    int(row[3]),
                    int(row[4]),
                    row[5],
                    row[6],
                    row[7],
                    json.loads(row[8]),
                )
                async for row in cur
            ]

    async def vectors(self, job_id: str, offset: int, limit: int) -> tuple[int, int, str]:
        """(dim, count, base64 float32 rows) for sentences [offset, offset + limit)."""
        dim, parts, count = 0, [], 0
        for task in await self.tasks(job_id, with_vectors=True):
            end = task.first + task.count
            if end <= offset or task.first >= offset + limit or task.embeddings is None:
                continue
            dim = task.dim or 0
            row = dim * 4
            low = max(offset, task.first) - task.first
            high = min(offset + limit, end) - task.first
            parts.append(task.embeddings[low * row : high * row])
            count += high - low
        return dim, count, base64.b64encode(b"".join(parts)).decode("ascii")
