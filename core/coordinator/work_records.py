"""Work units issued and judged: one row per unit, one verdict per unit, credit with it.

A unit belongs to the node it was issued to; only that node's messages can move it
(issued -> committed -> done; a missed deadline is a verdict too). A verdict is keyed by
(node, task): recording the same verdict twice finds the stored one and changes nothing,
and its ledger credit lands in the same transaction as the verdict, so a unit is paid at
most once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from core.calendar import season_id
from core.coordinator.ledger import LedgerStore
from core.game.boards import board_keys
from core.money import MAX_SUPPLY
from core.sqlite import ReplayMarksMixin

UNIT_STATES = ("issued", "committed", "done")


@dataclass(frozen=True)
class Unit:
    """A work unit as the coordinator issued it (and what the node has committed to)."""

    task_id: str
    node_id: str
    purpose: str  # "work" or "benchmark"
    seed: bytes
    m: int
    n: int
    k: int
    block: int
    flops: int
    issued_ts: float
    deadline_ts: float
    root: str | None = None
    committed_ts: float | None = None
    state: str = "issued"
    worker: int = 0  # which of the node's devices it was issued to


@dataclass(frozen=True)
class Verdict:
    """What the coordinator decided about one unit (stored, and sent as a receipt)."""

    node_id: str
    task_id: str
    accepted: bool
    reason: str
    flops: int  # verified FLOPs credited (0 when rejected)
    credited: int  # base units
    entry_id: int | None
    ts: float = 0.0


@dataclass(frozen=True)
class Credit:
    """The ledger side of an accepted verdict."""

    reason: str
    category: str = "gpu-contributors"
    data: dict[str, Any] | None = None


_UNIT_COLUMNS = (
    "task_id, node_id, purpose, seed, m, n, k, block, flops, issued_ts, deadline_ts, root,"
    " committed_ts, state, worker"
)
_VERDICT_COLUMNS = "node_id, task_id, accepted, reason, flops, credited, entry_id, ts"


def _unit(row: Sequence[Any]) -> Unit:
    return Unit(
        task_id=row[0],
        node_id=row[1],
        purpose=row[2],
        seed=bytes(row[3]),
        m=int(row[4]),
        n=int(row[5]),
        k=int(row[6]),
        block=int(row[7]),
        flops=int(row[8]),
        issued_ts=float(row[9]),
        deadline_ts=float(row[10]),
        root=row[11],
        committed_ts=row[12],
        state=row[13],
        worker=int(row[14]),
    )


def _verdict(row: Sequence[Any]) -> Verdict:
    return Verdict(
        node_id=row[0],
        task_id=row[1],
        accepted=bool(row[2]),
        reason=row[3],
        flops=int(row[4]),
        credited=int(row[5]),
        entry_id=row[6],
        ts=float(row[7]),
    )


class WorkRecordsStore(LedgerStore, ReplayMarksMixin):
    """Units issued and verdicts given, on top of the ledger they credit."""

    async def add_unit(self, unit: Unit) -> None:
        async with self.transaction() as db:
            await db.execute(
                f"INSERT INTO units ({_UNIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?)",
                (
                    unit.task_id,
                    unit.node_id,
                    unit.purpose,
                    unit.seed,
                    unit.m,
                    unit.n,
                    unit.k,
                    unit.block,
                    unit.flops,
                    unit.issued_ts,
                    unit.deadline_ts,
                    unit.root,
                    unit.committed_ts,
                    unit.state,
                    unit.worker,
                ),
            )

    async def discard_unit(self, task_id: str) -> None:
        """Forget a unit that never reached its node (the publish failed)."""
        async with self.transaction() as db:
            await db.execute("DELETE FROM units WHERE task_id = ? AND state = 'issued'", (task_id,))

    async def node_rate(self, node_id: str) -> float:
        """The node's throughput as measured on verified work, all devices, FLOP/s (0: never)."""
        async with self.db.execute(
            "SELECT rate_flops FROM nodes WHERE node_id = ?", (node_id,)
        ) as cur:
            row = await cur.fetchone()
        return float(row[0]) if row else 0.0

    async def worker_rates(self, node_id: str) -> dict[int, float]:
        """Each device's throughput as last measured, FLOP/s."""
        async with self.db.execute(
            "SELECT worker, rate_flops FROM node_workers WHERE node_id = ?", (node_id,)
        ) as cur:
            return {int(r[0]): float(r[1]) async for r in cur}

    async def set_worker_rate(self, node_id: str, worker: int, rate: float) -> None:
        """Record a device's measured rate; the node's is the sum of its devices'."""
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO node_workers (node_id, worker, rate_flops) VALUES (?, ?, ?)"
                " ON CONFLICT (node_id, worker) DO UPDATE SET rate_flops = excluded.rate_flops",
                (node_id, worker, rate),
            )
            await db.execute(
                "UPDATE nodes SET rate_flops = (SELECT SUM(rate_flops) FROM node_workers"
                " WHERE node_id = ?) WHERE node_id = ?",
                (node_id, node_id),
            )

    async def units(self, task_ids: Iterable[str]) -> dict[str, Unit]:
        ids = sorted(set(task_ids))
        found: dict[str, Unit] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"SELECT {_UNIT_COLUMNS} FROM units WHERE task_id IN ({marks})", chunk
            ) as cur:
                async for row in cur:
                    found[row[0]] = _unit(row)
        return found

    async def commit_roots(self, commits: Iterable[tuple[str, str, str, float]]) -> None:
        """Store (node, task, root, ts) commitments on units still waiting for one.

        Only the unit's own node, only once: a unit already committed keeps its first root.
        """
        async with self.transaction() as db:
            await db.executemany(
                "UPDATE units SET root = ?, committed_ts = ?, state = 'committed'"
                " WHERE task_id = ? AND node_id = ? AND state = 'issued'",
                [(root, ts, task_id, node_id) for node_id, task_id, root, ts in commits],
            )

    async def open_units(self) -> list[Unit]:
        """Units not yet judged (issued or committed), oldest first."""
        async with self.db.execute(
            f"SELECT {_UNIT_COLUMNS} FROM units WHERE state IN ('issued', 'committed')"
            " ORDER BY issued_ts"
        ) as cur:
            return [_unit(row) async for row in cur]

    async def verdicts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Verdict]:
        """Stored verdicts for (node, task) keys."""
        return await _verdicts_for(self.db, list(keys))

    async def record_verdicts(
        self, items: Iterable[tuple[Verdict, Credit | None]], now: float | None = None
    ) -> tuple[list[Verdict], set[tuple[str, str]]]:
        """Record verdicts in ONE transaction, crediting accepted ones in the ledger.

        Returns every verdict as stored (a duplicate comes back as first stored and changes
        nothing) and the keys of those recorded now. A credit that would exceed the supply
        cap turns into a rejection. Statements run per batch (``executemany``): this is the
        coordinator's ingest hot path.
        """
        batch = list(items)
        now = time.time() if now is None else now
        fresh: set[tuple[str, str]] = set()
        async with self.transaction() as db:
            stored = await _verdicts_for(db, [(v.node_id, v.task_id) for v, _ in batch])
            async with db.execute("SELECT minted FROM supply WHERE id = 1") as cur:
                row = await cur.fetchone()
            minted = int(row[0]) if row else 0
            async with db.execute("SELECT COALESCE(MAX(id), 0) FROM ledger") as cur:
                row = await cur.fetchone()
            next_id = int(row[0]) + 1 if row else 1
            season = season_id(now)
            out: list[Verdict] = []
            ledger_rows: list[tuple[Any, ...]] = []
            board: dict[tuple[str, str, str], int] = {}
            verdict_rows: list[tuple[Any, ...]] = []
            for verdict, credit in batch:
                key = (verdict.node_id, verdict.task_id)
                if key in stored:
                    out.append(stored[key])
                    continue
                accepted, reason, credited = verdict.accepted, verdict.reason, verdict.credited
                flops = verdict.flops if accepted else 0
                if not isinstance(credited, int) or isinstance(credited, bool):
                    raise TypeError("ledger amounts are integers in base units")
                entry_id: int | None = None
                if accepted and credited > 0:
                    if minted + credited > MAX_SUPPLY:
                        accepted, reason, credited, flops = False, "maximum supply reached", 0, 0
                    else:
                        info = credit or Credit(reason=f"verified work unit {verdict.task_id}")
                        entry_id, next_id, minted = next_id, next_id + 1, minted + credited
                        ledger_rows.append(
                            (
                                entry_id,
                                now,
                                verdict.node_id,
                                credited,
                                "reward",
                                info.reason,
                                info.category,
                                season,
                                verdict.task_id,
                                json.dumps(info.data or {}),
                            )
                        )
                        for period, name in board_keys(info.category, now):
                            slot = (period, name, verdict.node_id)
                            board[slot] = board.get(slot, 0) + credited
                final = Verdict(
                    verdict.node_id,
                    verdict.task_id,
                    accepted,
                    reason,
                    flops,
                    credited if accepted else 0,
                    entry_id,
                    now,
                )
                stored[key] = final
                fresh.add(key)
                out.append(final)
                verdict_rows.append(
                    (
                        final.node_id,
                        final.task_id,
                        int(final.accepted),
                        final.reason,
                        final.flops,
                        final.credited,
                        final.entry_id,
                        final.ts,
                    )
                )
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
            if verdict_rows:
                await db.executemany(
                    f"INSERT INTO verdicts ({_VERDICT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    verdict_rows,
                )
                # A unit is judged once, whatever the verdict.
                await db.executemany(
                    "UPDATE units SET state = 'done' WHERE task_id = ? AND node_id = ?",
                    [(r[1], r[0]) for r in verdict_rows],
                )
        return out, fresh

    async def rejected_work(self, node_id: str, limit: int = 100) -> list[dict[str, Any]]:
        # Work units and inference tasks alike: what was lost, and why.
        async with self.db.execute(
            "SELECT task_id, ts, reason FROM verdicts WHERE node_id = ? AND accepted = 0"
            " UNION ALL SELECT task_id, ts, reason FROM inference_rejections WHERE node_id = ?"
            " ORDER BY ts DESC LIMIT ?",
            (node_id, node_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [{"work_id": r[0], "ts": r[1], "reason": r[2]} for r in rows]

    async def work_counts(self, node_id: str) -> dict[str, int]:
        async with self.db.execute(
            "SELECT accepted, COUNT(*), COALESCE(SUM(flops), 0) FROM verdicts WHERE node_id = ?"
            " GROUP BY accepted",
            (node_id,),
        ) as cur:
            rows = await cur.fetchall()
        counts = {bool(r[0]): (int(r[1]), int(r[2])) for r in rows}
        return {
            "accepted": counts.get(True, (0, 0))[0],
            "rejected": counts.get(False, (0, 0))[0],
            "flops": counts.get(True, (0, 0))[1],
        }

    async def verified_since(self, node_id: str, since: float) -> tuple[int, int]:
        """(accepted units, base units credited for work) since ``since``: quest gates."""
        async with self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(credited), 0) FROM verdicts"
            " WHERE node_id = ? AND accepted = 1 AND ts >= ?",
            (node_id, since),
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


async def _verdicts_for(
    db: aiosqlite.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], Verdict]:
    """Stored verdicts for (node, task) keys, by primary-key row-value lookups."""
    found: dict[tuple[str, str], Verdict] = {}
    unique = sorted(set(keys))
    for start in range(0, len(unique), 400):
        chunk = unique[start : start + 400]
        pairs = ",".join("(?, ?)" for _ in chunk)
        args = [x for key in chunk for x in key]
        async with db.execute(
            f"SELECT {_VERDICT_COLUMNS} FROM verdicts WHERE (node_id, task_id) IN (VALUES {pairs})",
            args,
        ) as cur:
            async for row in cur:
                found[(row[0], row[1])] = _verdict(row)
    return found
