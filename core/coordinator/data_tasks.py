"""Validation of contributed datasets as verified work: seats, reports, judgement, pay.

A registered dataset wants ``validators_per_task`` validators (never its contributor, only
nodes with verified work on record). Each takes a seat (``data.task``), fetches the records
of its own seat only (``data.get``) and reports (``data.report``). The coordinator checks a
report against what it knows itself (every record named is one it gave; duplicates are
records it holds twice; label counts add up) before comparing it with the others. Two
agreeing reports validate the dataset; a disagreement opens one more seat, up to
``max_validators_per_task``. Validators whose report agrees with the accepted one are paid
per record; the others are not, and it counts against their reputation. The contributor is
paid per unique, valid record that no earlier dataset holds, within the caps. The checks
are ``data_checks``; the pay, ``data_settlement``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from typing import Any

import aiosqlite

from core.coordinator.data_checks import check_report, first_wrong_record, reports_agree
from core.coordinator.data_registry import DataError, DataRegistry
from core.coordinator.data_settlement import DataSettlement
from core.coordinator.state import CoordinatorState
from core.identity import short_id
from core.protocol.data import (
    MAX_PIECE_BYTES,
    DataGetParams,
    DataReport,
    DataReportParams,
    DataTaskParams,
    parse_report,
)

log = logging.getLogger("omnitensor.coordinator")

SPOT_CHECKS = 16  # records of each report the coordinator decodes itself


class DataTasks:
    """``data.task``, ``data.get``, ``data.report``: one lock keeps seats and pay in order."""

    def __init__(self, state: CoordinatorState, registry: DataRegistry) -> None:
        self.state = state
        self.registry = registry
        self.settlement = DataSettlement(state, registry)
        self._lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        return self.state.store.db

    # -- seats -----------------------------------------------------------------------------

    async def take(self, sender: str, params: DataTaskParams, now: float) -> dict[str, Any]:
        if not await self.state.has_work_on_record(sender):
            need = self.state.game.rules.quest_rules.min_verified_units
            raise DataError(
                f"validation tasks go to nodes with verified work on record ({need} work "
                "unit(s)); keep the node sharing and try again"
            )
        kinds = list(params.kinds) or ["image-classification", "text-classification"]
        async with self._lock:
            await self._expire(now)
            async with self.db.execute(
                "SELECT s.task_id FROM data_seats s JOIN datasets d ON d.id = s.dataset_id"
                " WHERE s.validator = ? AND s.state = 'open' ORDER BY s.issued_ts LIMIT 1",
                (sender,),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:  # a seat not reported yet: the same task again (resumes)
                return await self._task_view(row[0])
            marks = ",".join("?" * len(kinds))
            query = (
                "SELECT d.id, d.name FROM datasets d WHERE d.state = 'pending'"  # noqa: S608
                f" AND d.kind IN ({marks}) AND d.contributor != ?"
                " AND NOT EXISTS (SELECT 1 FROM data_seats s WHERE s.dataset_id = d.id"
                " AND s.validator = ?)"
                " AND (SELECT COUNT(*) FROM data_seats s WHERE s.dataset_id = d.id"
                " AND s.state IN ('open', 'reported', 'agreed', 'disagreed')) < d.seats_wanted"
            )
            args: list[Any] = [*kinds, sender, sender]
            if params.dataset is not None:
                query += " AND d.name = ?"
                args.append(params.dataset)
            async with self.db.execute(query + " ORDER BY d.id LIMIT 1", args) as cur:
                found = await cur.fetchone()
            if found is None:
                return {"task_id": None, "message": self._nothing(params)}
            task_id = f"dv{int(now * 1000):x}{secrets.token_hex(4)}"
            deadline = now + self.state.game.rules.data.task_s
            async with self.state.store.transaction() as db:
                await db.execute(
                    "INSERT INTO data_seats (task_id, dataset_id, validator, issued_ts,"
                    " deadline_ts, state) VALUES (?, ?, ?, ?, ?, 'open')",
                    (task_id, found[0], sender, now, deadline),
                )
        log.info("%s took validation task %s on %s", short_id(sender), task_id, found[1])
        return await self._task_view(task_id)

    @staticmethod
    def _nothing(params: DataTaskParams) -> str:
        if params.dataset is not None:
            return (
                f"dataset {params.dataset} needs no validator now (validated, fully seated, "
                "yours, unknown, or already validated by this node)"
            )
        return "no dataset needs a validator now"

    async def _task_view(self, task_id: str) -> dict[str, Any]:
        seat = await self._seat(task_id)
        async with self.db.execute(
            "SELECT name, kind FROM datasets WHERE id = ?", (seat["dataset_id"],)
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        records = await self.registry.records(seat["dataset_id"])
        return {
            "task_id": task_id,
            "dataset": row[0],
            "kind": row[1],
            "records": [f"{h}:{size}:{label}" for h, label, size in records],
            "deadline_ts": seat["deadline_ts"],
            "message": "",
        }

    async def _seat(self, task_id: str) -> dict[str, Any]:
        async with self.db.execute(
            "SELECT dataset_id, validator, state, deadline_ts FROM data_seats WHERE task_id = ?",
            (task_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise DataError(f"no validation task {task_id}")
        return {"dataset_id": row[0], "validator": row[1], "state": row[2], "deadline_ts": row[3]}

    async def _expire(self, now: float) -> None:
        async with self.state.store.transaction() as db:
            await db.execute(
                "UPDATE data_seats SET state = 'expired' WHERE state = 'open' AND deadline_ts < ?",
                (now,),
            )

    async def _own_open_seat(self, sender: str, task_id: str, now: float) -> dict[str, Any]:
        seat = await self._seat(task_id)
        if seat["validator"] != sender:
            raise DataError(f"validation task {task_id} is not this node's")
        if seat["state"] == "open" and seat["deadline_ts"] < now:
            raise DataError(f"validation task {task_id} expired; take a new one")
        if seat["state"] != "open":
            raise DataError(f"validation task {task_id} is {seat['state']}: nothing to do")
        return seat

    # -- records ---------------------------------------------------------------------------

    async def get(self, sender: str, params: DataGetParams, now: float) -> dict[str, Any]:
        """Pieces of the seat's own records, up to MAX_PIECE_BYTES of them per answer."""
        seat = await self._own_open_seat(sender, params.task_id, now)
        sizes = {h: size for h, _label, size in await self.registry.records(seat["dataset_id"])}
        wants: list[tuple[str, int]] = []
        for line in params.want:
            wanted, at = line.split(":")
            if wanted not in sizes:
                raise DataError(f"record {wanted[:12]} is not in validation task {params.task_id}")
            wants.append((wanted, int(at)))
        budget = MAX_PIECE_BYTES
        pieces: list[str] = []
        for hash_, offset in wants:
            if offset >= sizes[hash_]:
                continue
            # Only the slice this answer carries is read: asking for every record at once
            # costs the coordinator one answer's worth, not the dataset's.
            data = await self.registry.blob_slice(hash_, offset, min(budget, sizes[hash_] - offset))
            if not data:
                break
            pieces.append(f"{hash_}:{offset}:{base64.b64encode(data).decode('ascii')}")
            budget -= len(data)
            if budget <= 0:
                break
        return {"pieces": pieces}

    # -- reports ---------------------------------------------------------------------------

    async def report(self, sender: str, params: DataReportParams, now: float) -> dict[str, Any]:
        report = parse_report(params.report)
        async with self._lock:
            seat = await self._own_open_seat(sender, params.task_id, now)
            records = await self.registry.records(seat["dataset_id"])
            check_report(report, records)
            wrong = await self._spot_check(seat["dataset_id"], report, records)
            if wrong is not None:
                await self._reject(params.task_id, sender, params.report, now)
                raise DataError(
                    f"the coordinator's own check of record {wrong[:12]} disagrees with the "
                    "report: not paid, and it counts against this node's reputation"
                )
            async with self.state.store.transaction() as db:
                await db.execute(
                    "UPDATE data_seats SET state = 'reported', report = ?, reported_ts = ?"
                    " WHERE task_id = ? AND state = 'open'",
                    (params.report, now, params.task_id),
                )
            outcome = await self._judge(seat["dataset_id"], now)
        return {"task_id": params.task_id, **outcome}

    async def _spot_check(
        self, dataset_id: int, report: DataReport, records: list[tuple[str, str, int]]
    ) -> str | None:
        """Decode a random sample of the records here: a record the coordinator finds valid
        reported invalid, or the reverse, makes the whole report wrong. Lazy validators
        that agree with each other without looking are caught this way."""
        async with self.db.execute("SELECT kind FROM datasets WHERE id = ?", (dataset_id,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        unique = sorted({h for h, _l, _s in records})
        sample = secrets.SystemRandom().sample(unique, min(SPOT_CHECKS, len(unique)))
        blobs = await self.registry.blobs(sample)

        return await asyncio.to_thread(first_wrong_record, row[0], report, blobs)

    async def _reject(self, task_id: str, validator: str, report: str, now: float) -> None:
        async with self.state.store.transaction() as db:
            await db.execute(
                "UPDATE data_seats SET state = 'disagreed', report = ?, reported_ts = ?"
                " WHERE task_id = ? AND state = 'open'",
                (report, now, task_id),
            )
            await self.state.game.count_failure(db, validator)
            # The seat it took is lost to the dataset: one more validator may take one.
            await db.execute(
                "UPDATE datasets SET seats_wanted = seats_wanted + 1 WHERE id ="
                " (SELECT dataset_id FROM data_seats WHERE task_id = ?)",
                (task_id,),
            )

    async def _judge(self, dataset_id: int, now: float) -> dict[str, Any]:
        async with self.db.execute(
            "SELECT task_id, validator, report FROM data_seats WHERE dataset_id = ?"
            " AND state = 'reported' ORDER BY reported_ts, task_id",
            (dataset_id,),
        ) as cur:
            reports = [(r[0], r[1], parse_report(r[2])) for r in await cur.fetchall()]
        rules = self.state.game.rules.data
        if len(reports) < 2:
            return {"state": "waiting", "message": "report received; waiting for another validator"}
        for task_id, _validator, candidate in reports:
            group = [r for r in reports if r[0] == task_id or reports_agree(candidate, r[2])]
            if len(group) >= 2:
                return await self.settlement.settle(dataset_id, candidate, group, reports, now)
        async with self.db.execute(
            "SELECT seats_wanted FROM datasets WHERE id = ?", (dataset_id,)
        ) as cur:
            row = await cur.fetchone()
        wanted = int(row[0]) if row else rules.validators_per_task
        async with self.state.store.transaction() as db:
            if len(reports) >= rules.max_validators_per_task:
                await db.execute("UPDATE datasets SET state = 'failed' WHERE id = ?", (dataset_id,))
                await db.execute(
                    "UPDATE data_seats SET state = 'disagreed' WHERE dataset_id = ?"
                    " AND state = 'reported'",
                    (dataset_id,),
                )
                return {"state": "failed", "message": "no two reports agreed: validation failed"}
            if wanted <= len(reports):
                await db.execute(
                    "UPDATE datasets SET seats_wanted = ? WHERE id = ?",
                    (len(reports) + 1, dataset_id),
                )
        return {"state": "disputed", "message": "reports disagree: one more validator decides"}
