"""Validation of contributed datasets as verified work: seats, reports, judgement, pay.

A registered dataset wants ``validators_per_task`` validators (never its contributor, only
nodes with verified work on record). Each takes a seat (``data.task``), fetches the records
of its own seat only (``data.get``) and reports (``data.report``). The coordinator checks a
report against what it knows itself (every record named is one it gave; duplicates are
records it holds twice; label counts add up) before comparing it with the others. Two
agreeing reports validate the dataset; a disagreement opens one more seat, up to
``max_validators_per_task``. Validators whose report agrees with the accepted one are paid
per record; the others are not, and it counts against their reputation. The contributor is
paid per unique, valid record that no earlier dataset holds, within the caps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from typing import Any

import aiosqlite

from core.coordinator.data_registry import DataError, DataRegistry
from core.coordinator.state import CoordinatorState
from core.identity import short_id
from core.money import omnit_text
from core.protocol.data import (
    MAX_PIECE_BYTES,
    DataGetParams,
    DataReport,
    DataReportParams,
    DataTaskParams,
    parse_report,
)

log = logging.getLogger("omnitensor.coordinator")

CATEGORY = "data-validators"
SPOT_CHECKS = 16  # records of each report the coordinator decodes itself
DAY_S = 86_400


def reports_agree(a: DataReport, b: DataReport) -> bool:
    from kernels.data import ValidationReport
    from kernels.data import reports_agree as agree

    return agree(ValidationReport.from_dict(_as_dict(a)), ValidationReport.from_dict(_as_dict(b)))


def _as_dict(report: DataReport) -> dict[str, Any]:
    return {
        "invalid": dict(report.invalid),
        "duplicates": dict(report.duplicates),
        "near_duplicates": dict(report.near_duplicates),
        "outliers": list(report.outliers),
        "label_counts": dict(report.label_counts),
        "total": report.total,
    }


class DataTasks:
    """``data.task``, ``data.get``, ``data.report``: one lock keeps seats and pay in order."""

    def __init__(self, state: CoordinatorState, registry: DataRegistry) -> None:
        self.state = state
        self.registry = registry
        self._lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        return self.state.store.db

    async def _has_work_on_record(self, node_id: str) -> bool:
        need = self.state.game.rules.quest_rules.min_verified_units
        verified, _credited = await self.state.store.verified_since(node_id, 0.0)
        return verified >= need

    # -- seats -----------------------------------------------------------------------------

    async def take(self, sender: str, params: DataTaskParams, now: float) -> dict[str, Any]:
        if not await self._has_work_on_record(sender):
            need = self.state.game.rules.quest_rules.min_verified_units
            raise DataError(
                f"validation tasks go to nodes with {need} verified work units on record; "
                "keep the node sharing and try again"
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
        records = await self._records(seat["dataset_id"])
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

    async def _records(self, dataset_id: int) -> list[tuple[str, str, int]]:
        async with self.db.execute(
            "SELECT hash, label, size FROM dataset_records WHERE dataset_id = ? ORDER BY ord",
            (dataset_id,),
        ) as cur:
            return [(r[0], r[1], int(r[2])) for r in await cur.fetchall()]

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
        sizes = {h: size for h, _label, size in await self._records(seat["dataset_id"])}
        wants: list[tuple[str, int]] = []
        for line in params.want:
            wanted, at = line.split(":")
            if wanted not in sizes:
                raise DataError(f"record {wanted[:12]} is not in validation task {params.task_id}")
            wants.append((wanted, int(at)))
        blobs = await self.registry.blobs(sorted({h for h, _o in wants}))
        budget = MAX_PIECE_BYTES
        pieces: list[str] = []
        for hash_, offset in wants:
            data = blobs[hash_][offset : offset + budget]
            if not data and offset < sizes[hash_]:
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
            records = await self._records(seat["dataset_id"])
            self._check(report, records)
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

    @staticmethod
    def _check(report: DataReport, records: list[tuple[str, str, int]]) -> None:
        """What the coordinator can check itself: the records and labels are the task's."""
        if report.total != len(records):
            raise DataError(
                f"the report covers {report.total} records; the task has {len(records)}"
            )
        hashes = {h for h, _l, _s in records}
        named = (
            set(report.invalid)
            | set(report.duplicates)
            | set(report.duplicates.values())
            | set(report.near_duplicates)
            | set(report.near_duplicates.values())
            | set(report.outliers)
        )
        foreign = sorted(named - hashes)
        if foreign:
            raise DataError(
                f"the report names {len(foreign)} record(s) this task did not give "
                f"(e.g. {foreign[0][:12]})"
            )
        seen: set[str] = set()
        repeated: set[str] = set()
        for h, _label, _size in records:
            (repeated if h in seen else seen).add(h)
        if set(report.duplicates) != repeated:
            odd = sorted(set(report.duplicates) ^ repeated)[0]
            raise DataError(
                f"record {odd[:12]}: the report's duplicates are not the records the task "
                "holds more than once"
            )
        expected: dict[str, int] = {}
        first: set[str] = set()
        for h, label, _size in records:
            if h in first:
                continue
            first.add(h)
            if h not in report.invalid:
                expected[label] = expected.get(label, 0) + 1
        if dict(report.label_counts) != expected:
            raise DataError("the report's label counts do not match its records and findings")

    async def _spot_check(
        self, dataset_id: int, report: DataReport, records: list[tuple[str, str, int]]
    ) -> str | None:
        """Decode a random sample of the records here: a record the coordinator finds valid
        reported invalid, or the reverse, makes the whole report wrong. Lazy validators
        that agree with each other without looking are caught this way."""
        from kernels.data import integrity_problem

        async with self.db.execute("SELECT kind FROM datasets WHERE id = ?", (dataset_id,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        unique = sorted({h for h, _l, _s in records})
        sample = secrets.SystemRandom().sample(unique, min(SPOT_CHECKS, len(unique)))
        blobs = await self.registry.blobs(sample)

        def first_wrong() -> str | None:
            for hash_ in sample:
                bad = integrity_problem(row[0], blobs[hash_]) is not None
                if bad != (hash_ in report.invalid):
                    return hash_
            return None

        return await asyncio.to_thread(first_wrong)

    async def _reject(self, task_id: str, validator: str, report: str, now: float) -> None:
        async with self.state.store.transaction() as db:
            await db.execute(
                "UPDATE data_seats SET state = 'disagreed', report = ?, reported_ts = ?"
                " WHERE task_id = ? AND state = 'open'",
                (report, now, task_id),
            )
            await db.execute(
                "INSERT INTO accounts (node_id, failed) VALUES (?, 1) ON CONFLICT"
                " (node_id) DO UPDATE SET consecutive = 0, failed = failed + 1",
                (validator,),
            )
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
                return await self._settle(dataset_id, candidate, group, reports, now)
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

    async def _settle(
        self,
        dataset_id: int,
        accepted: DataReport,
        group: list[tuple[str, str, DataReport]],
        reports: list[tuple[str, str, DataReport]],
        now: float,
    ) -> dict[str, Any]:
        rules = self.state.game.rules.data
        async with self.db.execute(
            "SELECT name, contributor, records FROM datasets WHERE id = ?", (dataset_id,)
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        name, contributor, count = row[0], row[1], int(row[2])
        records = await self._records(dataset_id)
        payable = await self._payable(dataset_id, records, accepted)
        paid = min(len(payable), rules.max_paid_records_per_dataset)
        room_today = rules.max_paid_records_per_day - await self._paid_today(contributor, now)
        paid = min(paid, max(0, room_today))
        gate = await self._has_work_on_record(contributor)
        agreed = {r[0] for r in group}
        report_json = json.dumps(_as_dict(accepted))
        validators = [r[1] for r in group]
        async with self.state.store.transaction() as db:
            await db.execute(
                "UPDATE datasets SET state = 'validated', validated_ts = ?, accepted = ?,"
                " paid_records = ?, report = ? WHERE id = ?",
                (now, len(payable), paid if gate else 0, report_json, dataset_id),
            )
            for task_id, validator, _report in reports:
                state = "agreed" if task_id in agreed else "disagreed"
                await db.execute(
                    "UPDATE data_seats SET state = ? WHERE task_id = ?", (state, task_id)
                )
                if state == "disagreed":
                    await db.execute(
                        "INSERT INTO accounts (node_id, failed) VALUES (?, 1) ON CONFLICT"
                        " (node_id) DO UPDATE SET consecutive = 0, failed = failed + 1",
                        (validator,),
                    )
                    continue
                amount = rules.validator_reward * count
                if amount > 0:
                    await self.state.store._insert_entry(
                        account=validator,
                        amount=amount,
                        kind="reward",
                        reason=f"validated dataset {name}: {count} records, the report agreed "
                        f"with {len(group) - 1} other validator(s)",
                        category=CATEGORY,
                        ref=f"dval:{task_id}",
                        ts=now,
                    )
            # Seats still open lose their object: the dataset is decided.
            await db.execute(
                "UPDATE data_seats SET state = 'closed' WHERE dataset_id = ? AND state = 'open'",
                (dataset_id,),
            )
            if gate and paid > 0 and rules.contributor_reward > 0:
                await self.state.store._insert_entry(
                    account=contributor,
                    amount=rules.contributor_reward * paid,
                    kind="reward",
                    reason=f"contributed dataset {name}: {paid} unique, valid records paid of "
                    f"{count} ({len(payable)} accepted)",
                    category=CATEGORY,
                    ref=f"dcon:{name}",
                    ts=now,
                )
        self.state.boards_dirty = True
        for validator in validators:
            total = await self._records_validated(validator)
            await self.state.game.on_records_validated(validator, count, total, name, now)
        note = "" if gate else " (the contributor has no verified work on record: not paid)"
        log.info(
            "dataset %s validated by %s: %d of %d records accepted, %d paid%s",
            name,
            ", ".join(short_id(v) for v in validators),
            len(payable),
            count,
            paid if gate else 0,
            note,
        )
        return {
            "state": "validated",
            "message": f"dataset {name} validated: your report agreed; "
            f"{omnit_text(rules.validator_reward * count)} credited",
        }

    async def _payable(
        self, dataset_id: int, records: list[tuple[str, str, int]], report: DataReport
    ) -> list[str]:
        """Unique, valid, not near-duplicate (``accepted_records``), in no earlier dataset.

        Outliers are paid: a record far from its label is for a reviewer, and two validators'
        outliers may differ at the threshold."""
        earlier: set[str] = set()
        hashes = sorted({h for h, _l, _s in records})
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"SELECT DISTINCT hash FROM dataset_records WHERE hash IN ({marks})"  # noqa: S608
                " AND dataset_id < ?",
                [*chunk, dataset_id],
            ) as cur:
                earlier.update(r[0] for r in await cur.fetchall())
        from kernels.data import ValidationReport, accepted_records

        accepted = accepted_records(
            ValidationReport.from_dict(_as_dict(report)), [h for h, _l, _s in records]
        )
        return [h for h in accepted if h not in earlier]

    async def _paid_today(self, contributor: str, now: float) -> int:
        async with self.db.execute(
            "SELECT COALESCE(SUM(paid_records), 0) FROM datasets WHERE contributor = ?"
            " AND validated_ts >= ?",
            (contributor, now - now % DAY_S),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _records_validated(self, validator: str) -> int:
        async with self.db.execute(
            "SELECT COALESCE(SUM(d.records), 0) FROM data_seats s JOIN datasets d"
            " ON d.id = s.dataset_id WHERE s.validator = ? AND s.state = 'agreed'",
            (validator,),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
