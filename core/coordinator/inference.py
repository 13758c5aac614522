"""Inference jobs on the network: split, assign, commit, reveal, compare, pay (or refund).

A job's sentences are cut into tasks; each task goes to ``workers_per_task`` nodes that
serve the model (live, tier >= 1, fewest tasks in flight first). A task moves through two
phases for all its seats at once:

- commit: each worker sends a commitment (``kernels.inference.poi.commitment``) by the
  deadline; one that does not forfeits its seat;
- reveal: once every seat committed (or the deadline passed), the coordinator calls for the
  reveals; a reveal that does not open its commitment, has the wrong shape or holds
  non-finite values forfeits the seat and slashes the stake.

The revealed vectors are then compared (Proof of Inference, ``kernels.inference.poi.judge``):
a strict majority that agrees on every sentence wins; an outlier is rejected with the reason,
its reputation reset and its stake slashed; a tie goes to one more node. A job is delivered,
and its fee paid out, only when every task agreed; otherwise it is refunded in full. Tasks
live in memory: a coordinator restart fails the jobs in flight (refunded on start).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.coordinator.auditor import Encode
from core.coordinator.desk import MessageDesk
from core.coordinator.job_book import JobBook, JobRefused, NewTask
from core.coordinator.pricing import MODEL, MODEL_DIMS, job_fee, split_fee
from core.coordinator.settlement import OpenTask, RunningJob, Seat, Settlement
from core.coordinator.state import CoordinatorState
from core.identity import short_id
from core.money import format_omnit
from core.protocol import (
    InferCommit,
    InferReveal,
    InferTask,
    RevealCall,
)
from kernels.inference.poi import (
    POI_THRESHOLD,
    PoIError,
    commitment,
    cosines,
    judge,
    unpack_embeddings,
)

log = logging.getLogger("omnitensor.coordinator")

TASK_SENTENCES = 64
COMMIT_BASE_S = 30.0  # a worker loads its model on the first task: room for that
COMMIT_PER_SENTENCE_S = 0.25  # a slow CPU node encodes ~20 sentences/s; ample margin
REVEAL_WINDOW_S = 20.0
MAX_SEATS = 4  # workers tried per task at most (two, a tie-breaker, one replacement)
MAX_RUNNING_JOBS = 4  # per requester
MAX_RUNNING_JOBS_TOTAL = 256  # network-wide: jobs in flight live in the coordinator's memory
QUEUE_MAX = 4_000

Phase = Literal["commit", "reveal"]
Vectors = npt.NDArray[np.float32]


class InferenceDesk(Settlement, MessageDesk[InferCommit | InferReveal]):
    """Owns the tasks in flight; ``run()`` takes the workers' messages and keeps time."""

    POLL_S = 0.2  # commit and reveal deadlines are seconds apart

    def __init__(self, state: CoordinatorState, jobs: JobBook) -> None:
        super().__init__(state, QUEUE_MAX)
        self.jobs = jobs
        self.rules = state.game.rules.inference
        self.running: dict[str, RunningJob] = {}
        self.tasks: dict[str, OpenTask] = {}
        self.stats = {
            "tasks_agreed": 0,
            "sentences_agreed": 0,
            "outliers": 0,
            "ties": 0,
            "audits": 0,
            "audits_failed": 0,
        }
        # The coordinator's own encoder, when the model is installed here: one secret random
        # sentence of each agreed task is encoded again and must match. Two colluding nodes
        # that agree on made-up vectors are caught, whatever their number (redundancy alone
        # cannot see that). None: checked by redundancy only.
        self.audit_encode: Encode | None = None

    # -- jobs ------------------------------------------------------------------------------

    def eligible(self, now: float, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Nodes that may take an inference task now, the least busy and best tested first."""
        ghost = self.state.settings.ghost_after_s
        found: list[tuple[int, int, float, str]] = []
        for node_id, node in self.state.nodes.items():
            if node_id in exclude or MODEL not in node.models or node.tier < 1:
                continue
            if not node.online or now - node.last_traffic >= ghost:
                continue
            found.append((len(node.inference_open), -node.tier, random.random(), node_id))
        return [node_id for *_, node_id in sorted(found)]

    async def submit(self, requester: str, texts: list[str], now: float) -> dict[str, Any]:
        """Check, charge (escrow) and start a job; JobRefused with the reason otherwise."""
        limit = self.rules.max_job_sentences
        if len(texts) > limit:
            raise JobRefused(f"{len(texts)} sentences is over this network's limit of {limit}")
        for index, text in enumerate(texts):
            if not text.strip():
                raise JobRefused(f"sentence {index + 1} is empty")
        if len(self.running) >= MAX_RUNNING_JOBS_TOTAL:
            raise JobRefused(
                f"the network is busy: {len(self.running)} jobs running; try again in a minute"
            )
        mine = sum(1 for job in self.running.values() if job.requester == requester)
        if mine >= MAX_RUNNING_JOBS:
            raise JobRefused(f"{mine} jobs of this node are running; wait for one to finish")
        serving = self.eligible(now)
        need = self.rules.workers_per_task
        if len(serving) < need:
            raise JobRefused(
                f"{len(serving)} node(s) online serve {MODEL}; a job needs {need} "
                "(each task is computed twice and compared)"
            )
        job_id = f"j{int(now * 1000):x}{secrets.token_hex(4)}"
        chunks = [texts[i : i + TASK_SENTENCES] for i in range(0, len(texts), TASK_SENTENCES)]
        fee = job_fee(len(texts), self.rules.fee_per_1000)
        shares = split_fee(fee, [len(c) for c in chunks])
        new = [
            NewTask(f"{job_id}.{i}", i * TASK_SENTENCES, chunk, share)
            for i, (chunk, share) in enumerate(zip(chunks, shares, strict=True))
        ]
        await self.jobs.submit(job_id, requester, new, now)
        job = RunningJob(
            job_id,
            requester,
            {t.task_id: OpenTask(t.task_id, job_id, t.first, t.texts, t.fee) for t in new},
        )
        self.running[job_id] = job
        for task in job.tasks.values():
            self.tasks[task.task_id] = task
            await self._seat(task, need, now)
        log.info(
            "job %s from %s: %d sentences in %d tasks, fee %s OMNIT held",
            job_id,
            short_id(requester),
            len(texts),
            len(new),
            format_omnit(fee, exact=True),
        )
        return {
            "job_id": job_id,
            "sentences": len(texts),
            "tasks": len(new),
            "fee": fee,
            "model": MODEL,
        }

    async def fail_orphans(self) -> int:
        """On start: jobs left running by a previous run cannot finish; refund them."""
        count = 0
        for job in await self.jobs.running_jobs():
            if job.job_id in self.running:
                continue
            await self.jobs.finish(
                job.job_id,
                delivered=False,
                reason="the coordinator restarted before delivery",
                payouts=[],
                now=time.time(),
            )
            count += 1
        return count

    # -- seats -------------------------------------------------------------------------------

    async def _seat(self, task: OpenTask, count: int, now: float) -> int:
        """Give ``task`` up to ``count`` new workers and restart its commit phase."""
        taken = set(task.seats)
        seated = 0
        room = max(0, min(count, MAX_SEATS - len(taken)))
        for node_id in self.eligible(now, exclude=taken)[:room]:
            task.seats[node_id] = Seat(node_id, now)
            self.state.node(node_id).inference_open.add(task.task_id)
            seated += 1
        task.phase = "commit"
        task.deadline = now + COMMIT_BASE_S + COMMIT_PER_SENTENCE_S * len(task.texts)
        for node_id, seat in task.seats.items():
            if seat.assigned_ts == now and seat.commitment is None:
                await self._send(
                    node_id,
                    InferTask.TYPE,
                    InferTask(
                        task_id=task.task_id,
                        recipient=node_id,
                        job_id=task.job_id,
                        model=MODEL,
                        texts=task.texts,
                        issued_ts=now,
                        commit_by=task.deadline,
                    ),
                )
        return seated

    async def on_message(self, sender: str, data: InferCommit | InferReveal, now: float) -> None:
        await self.handle(sender, data, now)

    async def handle(self, sender: str, data: InferCommit | InferReveal, now: float) -> None:
        task = self.tasks.get(data.task_id)
        seat = task.seats.get(sender) if task is not None else None
        if task is None or seat is None or seat.failure is not None:
            return  # not this node's seat (or judged already): changes nothing
        if isinstance(data, InferCommit):
            if seat.commitment is None and task.phase == "commit":
                seat.commitment = data.commitment
            return
        if seat.commitment is None:
            self._forfeit(seat, "revealed before committing", slash=False)
            return
        if task.phase != "reveal" or seat.vectors is not None:
            return  # early (before the call) or a second reveal: the first one stands
        raw = data.raw()
        expected = MODEL_DIMS[MODEL]
        if commitment(sender, task.task_id, bytes.fromhex(data.salt), raw) != seat.commitment:
            self._forfeit(seat, "the reveal does not open its commitment", slash=True)
        elif data.count != len(task.texts) or data.dim != expected:
            self._forfeit(
                seat,
                f"revealed {data.count} x {data.dim} vectors; the task needs "
                f"{len(task.texts)} x {expected}",
                slash=True,
            )
        else:
            try:
                seat.vectors = unpack_embeddings(raw, data.count, data.dim)
            except PoIError as exc:
                self._forfeit(seat, f"bad embeddings: {exc}", slash=True)

    def _forfeit(self, seat: Seat, reason: str, *, slash: bool) -> None:
        seat.failure, seat.slash = reason, slash

    # -- time --------------------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        for task in list(self.tasks.values()):
            await self._advance(task, now)
        await self._report_failures()

    async def _advance(self, task: OpenTask, now: float) -> None:
        active = [s for s in task.seats.values() if s.failure is None]
        if task.phase == "commit":
            waiting = [s for s in active if s.commitment is None]
            if waiting and now < task.deadline:
                return
            for seat in waiting:
                self._forfeit(seat, "no commitment by the deadline", slash=False)
            task.phase = "reveal"
            task.deadline = now + REVEAL_WINDOW_S
            for seat in active:
                if seat.failure is None and seat.vectors is None:
                    await self._send(
                        seat.node_id,
                        RevealCall.TYPE,
                        RevealCall(
                            task_id=task.task_id, recipient=seat.node_id, reveal_by=task.deadline
                        ),
                    )
            return
        waiting = [s for s in active if s.vectors is None]
        if waiting and now < task.deadline:
            return
        for seat in waiting:
            self._forfeit(seat, "no reveal by the deadline", slash=False)
        await self._judge(task, now)

    async def _judge(self, task: OpenTask, now: float) -> None:
        revealed = {
            s.node_id: s.vectors
            for s in task.seats.values()
            if s.failure is None and s.vectors is not None
        }
        verdict = await asyncio.to_thread(judge, revealed)
        if verdict.agreed and not verdict.tie and verdict.reference is not None:
            failed = await self._audit(task, task.seats[verdict.reference].vectors)
            if failed is not None:
                # The majority made its answer up: it loses, and the rest are judged again
                # (an honest minority is not punished for disagreeing with it).
                for node_id in verdict.agreed:
                    self._forfeit(task.seats[node_id], failed, slash=True)
                await self._judge(task, now)
                return
        for node_id, reason in verdict.outliers.items():
            self._forfeit(task.seats[node_id], f"Proof of Inference: {reason}", slash=True)
            self.stats["outliers"] += 1
        if verdict.agreed and not verdict.tie and verdict.reference is not None:
            await self._agreed(task, list(verdict.agreed), verdict.reference, verdict.similarity)
            return
        self.stats["ties"] += 1 if len(revealed) >= 2 else 0
        missing = max(1, self.rules.workers_per_task - len(revealed))
        if await self._seat(task, missing, now) == 0:
            await self._fail_job(
                task.job_id,
                f"task {task.task_id}: no agreement and no other node to ask "
                f"({len(revealed)} answer(s), {len(task.seats)} worker(s) tried)",
                now,
            )

    async def _audit(self, task: OpenTask, vectors: Vectors | None) -> str | None:
        """The coordinator's own check of one secret random sentence; the failure or None."""
        if self.audit_encode is None or vectors is None:
            return None
        index = secrets.randbelow(len(task.texts))
        mine = await asyncio.to_thread(self.audit_encode, [task.texts[index]])
        similarity = float(cosines(mine, vectors[index : index + 1])[0])
        self.stats["audits"] += 1
        if similarity >= POI_THRESHOLD:
            return None
        self.stats["audits_failed"] += 1
        return (
            f"failed the coordinator's audit: sentence {index + 1} has cosine "
            f"{similarity:.6f} to the coordinator's own encoding (threshold {POI_THRESHOLD})"
        )

    async def _agreed(
        self, task: OpenTask, agreed: list[str], reference: str, similarity: dict[str, float]
    ) -> None:
        vectors = task.seats[reference].vectors
        assert vectors is not None
        worst = min(similarity.get(n, 1.0) for n in agreed)
        provenance = {
            "workers": agreed,
            "reference": reference,
            "min_similarity": worst,
            "rejected": {n: s.failure for n, s in task.seats.items() if s.failure},
        }
        await self.jobs.task_agreed(
            task.task_id,
            int(vectors.shape[1]),
            np.ascontiguousarray(vectors, "<f4").tobytes(),
            provenance,
        )
        self.tasks.pop(task.task_id, None)
        for node_id in task.seats:
            self._free(task, node_id)
        self.stats["tasks_agreed"] += 1
        self.stats["sentences_agreed"] += len(task.texts)
        job = self.running.get(task.job_id)
        if job is None:
            return
        job.agreed[task.task_id] = (agreed, reference, worst)
        if len(job.agreed) == len(job.tasks):
            await self._deliver(job, time.time())

    async def _deliver(self, job: RunningJob, now: float) -> None:
        ids = await self.jobs.finish(
            job.job_id, delivered=True, reason="", payouts=self._payouts(job, fees=True), now=now
        )
        self.running.pop(job.job_id, None)
        self.state.boards_dirty = True
        log.info("job %s delivered (%d tasks)", job.job_id, len(job.tasks))
        await self._receipts(job, ids)

    async def _fail_job(self, job_id: str, reason: str, now: float) -> None:
        job = self.running.pop(job_id, None)
        if job is None:
            return
        # Agreed work was still verified useful work: the base reward, never the fee.
        ids = await self.jobs.finish(
            job_id, delivered=False, reason=reason, payouts=self._payouts(job, fees=False), now=now
        )
        for task in job.tasks.values():
            if task.task_id in self.tasks:
                self.tasks.pop(task.task_id)
                await self.jobs.task_failed(
                    task.task_id,
                    {"rejected": {n: s.failure for n, s in task.seats.items() if s.failure}},
                )
                for seat in task.seats.values():
                    if seat.failure is None:
                        self._forfeit(seat, f"job cancelled: {reason}", slash=False)
        log.warning("job %s failed: %s", job_id, reason)
        await self._receipts(job, ids)
