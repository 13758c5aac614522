"""The ``datasets`` answer: the registry, newest first, and the asking node's part in it."""

from __future__ import annotations

import json
import time
from typing import Any

from core.coordinator.state import CoordinatorState


async def dataset_listing(state: CoordinatorState, sender: str, limit: int) -> dict[str, Any]:
    """The registry, newest first, with this node's contributions, seats and data earnings."""
    async with state.store.consistent() as db:
        async with db.execute(
            "SELECT d.id, d.name, d.kind, d.contributor, COALESCE(n.name, ''), d.licence,"
            " d.records, d.bytes, d.labels, d.state, d.registered_ts, d.validated_ts,"
            " d.accepted, d.paid_records FROM datasets d LEFT JOIN nodes n"
            " ON n.node_id = d.contributor ORDER BY d.id DESC LIMIT ?",
            (limit,),
        ) as cur:
            rows = await cur.fetchall()
        ids = [r[0] for r in rows]
        seats: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            marks = ",".join("?" * len(ids))
            async with db.execute(
                "SELECT dataset_id, validator, state FROM data_seats"  # noqa: S608
                f" WHERE dataset_id IN ({marks}) ORDER BY issued_ts",
                ids,
            ) as cur:
                for dataset_id, validator, seat_state in await cur.fetchall():
                    seats[dataset_id].append({"node_id": validator, "state": seat_state})
        async with db.execute(
            "SELECT s.task_id, d.name, s.state, s.deadline_ts, d.records FROM data_seats s"
            " JOIN datasets d ON d.id = s.dataset_id WHERE s.validator = ?"
            " ORDER BY s.issued_ts DESC LIMIT 50",
            (sender,),
        ) as cur:
            tasks = [
                {
                    "task_id": r[0],
                    "dataset": r[1],
                    "state": r[2],
                    "deadline_ts": r[3],
                    "records": r[4],
                }
                for r in await cur.fetchall()
            ]
        async with db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?"
            " AND category = 'data-validators' AND kind = 'reward'",
            (sender,),
        ) as cur:
            row = await cur.fetchone()
            earned = int(row[0]) if row else 0
        async with db.execute(
            "SELECT dataset, upload_id FROM data_uploads WHERE contributor = ?", (sender,)
        ) as cur:
            upload = await cur.fetchone()
    return {
        "datasets": [
            {
                "name": r[1],
                "kind": r[2],
                "contributor": r[3],
                "contributor_name": r[4],
                "licence": r[5],
                "records": r[6],
                "bytes": r[7],
                "labels": json.loads(r[8]),
                "state": r[9],
                "registered_ts": r[10],
                "validated_ts": r[11],
                "accepted": r[12],
                "paid_records": r[13],
                "validators": seats[r[0]],
            }
            for r in rows
        ],
        "tasks": tasks,
        "earned": earned,
        "upload": None if upload is None else {"dataset": upload[0], "upload_id": upload[1]},
        "ts": time.time(),
    }
