"""Paying a validated dataset: the agreeing validators per record, the contributor per
accepted record within the caps; the disagreeing validators lose their streak.

One transaction for the dataset's new state, the seats and every ledger entry, each entry
with a unique ref (``dval:<task>``, ``dcon:<dataset>``): a dataset pays once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiosqlite

from core.coordinator.data_checks import accepted_hashes, report_dict
from core.coordinator.data_registry import DataRegistry
from core.coordinator.state import CoordinatorState
from core.identity import short_id
from core.money import omnit_text
from core.protocol.data import DataReport

log = logging.getLogger("omnitensor.coordinator")

CATEGORY = "data-validators"
DAY_S = 86_400


class DataSettlement:
    def __init__(self, state: CoordinatorState, registry: DataRegistry) -> None:
        self.state = state
        self.registry = registry

    @property
    def db(self) -> aiosqlite.Connection:
        return self.state.store.db

    async def settle(
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
        records = await self.registry.records(dataset_id)
        payable = await self._payable(dataset_id, records, accepted)
        paid = min(len(payable), rules.max_paid_records_per_dataset)
        room_today = rules.max_paid_records_per_day - await self._paid_today(contributor, now)
        paid = min(paid, max(0, room_today))
        gate = await self.state.has_work_on_record(contributor)
        agreed = {r[0] for r in group}
        report_json = json.dumps(report_dict(accepted))
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
                    await self.state.game.count_failure(db, validator)
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
        return [h for h in accepted_hashes(report, records) if h not in earlier]

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
