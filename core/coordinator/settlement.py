"""Settling inference tasks: who is paid what (to the base unit), receipts, slashes.

The desk (``core/coordinator/inference.py``) seats workers and judges their answers; this
part turns its verdicts into ledger payouts and signed receipts: a fee share and the base
reward for every agreeing worker of a delivered job, a rejection (and a slash when the
failure proves bad work) for every forfeited seat, each reported once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt
import numpy as np
import numpy.typing as npt

from core.coordinator.job_book import JobBook, Payout
from core.coordinator.pricing import encoder_flops, split_fee
from core.coordinator.state import CoordinatorState, NodeState
from core.game.rates import pay_for_flops
from core.game.rules import InferenceRules
from core.identity import short_id
from core.money import omnit_text
from core.protocol import DEFAULT_TOPICS, Receipt

log = logging.getLogger("omnitensor.coordinator")

Phase = Literal["commit", "reveal"]
Vectors = npt.NDArray[np.float32]


@dataclass
class Seat:
    """One worker's place on a task."""

    node_id: str
    assigned_ts: float
    commitment: str | None = None
    vectors: Vectors | None = None
    failure: str | None = None  # why the seat was forfeited (None: still in the game)
    slash: bool = False  # the failure proves bad work (not just a timeout)
    reported: bool = False  # its receipt went out


@dataclass
class OpenTask:
    task_id: str
    job_id: str
    first: int
    texts: list[str]
    fee: int
    seats: dict[str, Seat] = field(default_factory=dict)
    phase: Phase = "commit"
    deadline: float = 0.0


@dataclass
class RunningJob:
    job_id: str
    requester: str
    tasks: dict[str, OpenTask]
    agreed: dict[str, tuple[list[str], str, float]] = field(default_factory=dict)


class Settlement:
    """Payouts and receipts; mixed into the desk, which holds the state, jobs and tasks."""

    state: CoordinatorState
    jobs: JobBook
    rules: InferenceRules
    tasks: dict[str, OpenTask]

    def _free(self, task: OpenTask, node_id: str) -> None:
        node: NodeState | None = self.state.nodes.get(node_id)
        if node is not None:
            node.inference_open.discard(task.task_id)

    # -- messages ----------------------------------------------------------------------------

    def _payouts(self, job: RunningJob, *, fees: bool) -> list[Payout]:
        out: list[Payout] = []
        for task_id, (agreed, reference, worst) in job.agreed.items():
            task = job.tasks[task_id]
            count = len(task.texts)
            ordered = [reference, *sorted(n for n in agreed if n != reference)]
            shares = split_fee(task.fee, [1] * len(ordered))[::-1] if fees else [0] * len(ordered)
            reward = pay_for_flops(encoder_flops(task.texts))
            for node_id, share in zip(ordered, shares, strict=True):
                why = (
                    f"inference task {task_id} of job {task.job_id}: {count} sentences, agreed "
                    f"with {len(agreed) - 1} other worker(s) (lowest similarity {worst:.6f})"
                )
                out.append(Payout(node_id, share, "job-fee", f"{why}: fee share", task_id))
                out.append(
                    Payout(
                        node_id,
                        reward,
                        "reward",
                        f"{why}: base reward for useful work",
                        task_id,
                        category="gpu-contributors",
                        data={"task_id": task_id, "sentences": count},
                    )
                )
        return out

    async def _receipts(self, job: RunningJob, ids: dict[str, int]) -> None:
        for task_id, (agreed, _reference, worst) in job.agreed.items():
            task = job.tasks[task_id]
            for node_id in agreed:
                fee_id = ids.get(f"{node_id}:{task_id}:job-fee")
                reward_id = ids.get(f"{node_id}:{task_id}:reward")
                credited = await self._credited(node_id, task_id)
                await self._receipt(
                    node_id,
                    task_id,
                    accepted=True,
                    reason=f"agreed with {len(agreed) - 1} other worker(s), lowest similarity "
                    f"{worst:.6f}",
                    credited=credited,
                    entry_id=reward_id if reward_id is not None else fee_id,
                )
                task.seats[node_id].reported = True
                self._free(task, node_id)
        await self._report_failures(job)

    async def _credited(self, node_id: str, task_id: str) -> int:
        async with self.state.store.db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ? AND ref = ?"
            " AND kind IN ('job-fee', 'reward')",
            (node_id, task_id),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _report_failures(self, job: RunningJob | None = None) -> None:
        """A receipt for every forfeited seat, once; a slash where the failure proves it."""
        tasks = list(job.tasks.values()) if job is not None else list(self.tasks.values())
        for task in tasks:
            for seat in task.seats.values():
                if seat.failure is None or seat.reported:
                    continue
                seat.reported = True
                self._free(task, seat.node_id)
                node = self.state.nodes.get(seat.node_id)
                if node is not None:
                    # Wrong answers: no tasks until a quality round says otherwise; a missed
                    # deadline: one tier down (tier 0 after two), so a silent node stops
                    # holding up jobs.
                    node.tier = 0 if seat.slash else max(0, node.tier - 1)
                if seat.slash:
                    slashed = await self.state.game.on_failed_work(
                        seat.node_id, task.task_id, seat.failure
                    )
                    log.warning(
                        "inference task %s: %s rejected (%s); slashed %s",
                        task.task_id,
                        short_id(seat.node_id),
                        seat.failure,
                        omnit_text(slashed),
                    )
                async with self.state.store.transaction() as db:
                    await db.execute(
                        "INSERT OR IGNORE INTO inference_rejections (node_id, task_id, reason,"
                        " ts) VALUES (?, ?, ?, ?)",
                        (seat.node_id, task.task_id, seat.failure, time.time()),
                    )
                await self._receipt(
                    seat.node_id,
                    task.task_id,
                    accepted=False,
                    reason=seat.failure,
                    credited=0,
                    entry_id=None,
                )

    async def _receipt(
        self,
        node_id: str,
        task_id: str,
        *,
        accepted: bool,
        reason: str,
        credited: int,
        entry_id: int | None,
    ) -> None:
        await self._send(
            node_id,
            Receipt.TYPE,
            Receipt(
                task_id=task_id,
                recipient=node_id,
                accepted=accepted,
                reason=reason[:512],
                flops=0,
                credited_base_units=credited,
                entry_id=entry_id,
            ),
        )

    async def _send(self, node_id: str, type_name: str, payload: Any) -> None:
        topic = (
            DEFAULT_TOPICS.node_receipt(node_id)
            if type_name == Receipt.TYPE
            else DEFAULT_TOPICS.node_task(node_id)
        )
        with contextlib.suppress(aiomqtt.MqttError):  # a lost message times the seat out
            await self.state.publish(topic, type_name, payload, False)
