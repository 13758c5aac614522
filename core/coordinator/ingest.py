"""Work results in, verdicts and receipts out: verify, credit, record, answer.

Ingest is batched: results are queued as they arrive, verified in a worker thread a batch at
a time (Freivalds' check, its random vectors drawn only after the node committed to its
result), and a batch's verdicts are written in one SQLite transaction before its receipts go
out. A message processed twice changes nothing (the ledger is keyed by sender and work id),
and a duplicate result gets its stored receipt again, so a node that missed a receipt
(broker restart, node killed) is made whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np

from core.coordinator.state import CoordinatorState
from core.coordinator.work_records import WorkVerdict
from core.game import combined_factor, should_spot_check
from core.game.rates import compute_reward
from core.identity import short_id
from core.protocol import DEFAULT_TOPICS, Message, Receipt, WorkResult

log = logging.getLogger("omnitensor.coordinator")

# Results whose sender clock says they were made this long after the deadline are late.
DEADLINE_GRACE_S = 30.0
# No single card reaches this; a claim above it is capped (timing is the node's own).
MAX_PLAUSIBLE_TFLOPS = 2000.0


class Ingest:
    """Owns the work queue and the verify thread; ``run()`` drains the queue in batches."""

    def __init__(self, state: CoordinatorState, on_answered: Callable[[str, str], None]) -> None:
        self.state = state
        self.on_answered = on_answered
        self.queue: asyncio.Queue[tuple[Message, str]] = asyncio.Queue()
        self._verify_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")

    def close(self) -> None:
        self._verify_thread.shutdown(wait=True, cancel_futures=True)

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.state.settings.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self.process_batch(batch)
            except Exception:
                # Nothing was committed for this batch (one transaction): its nodes re-send
                # and get verdicts then. The loop itself must live on.
                log.exception("a batch of %d work results failed; dropped", len(batch))

    async def process_batch(self, batch: list[tuple[Message, str]]) -> None:
        pending: list[tuple[Message, WorkResult, dict[str, Any] | None]] = []
        replies: list[WorkVerdict] = []
        works = [(message, message.expect(WorkResult)) for message, _topic in batch]
        stored, tasks = await self.state.store.lookup_batch(
            [(m.sender, w.work_id, m.seq, w.task_id) for m, w in works]
        )
        for message, work in works:
            known = stored.get((message.sender, work.work_id)) or stored.get(
                (message.sender, f"#{message.seq}")
            )
            if known is not None:
                self.state.stats["duplicates"] += 1
                replies.append(known)
                continue
            pending.append((message, work, tasks.get(work.task_id)))
        # BOINC-style: a node with a long run of verified results is spot-checked only.
        reputations = await self.state.game.reputations(m.sender for m, _w, _t in pending)
        stakes = await self.state.game.stakes(m.sender for m, _w, _t in pending)
        full_check = [
            should_spot_check(reputations[m.sender], self.state.game.rules) for m, _w, _t in pending
        ]
        loop = asyncio.get_running_loop()
        checked = await loop.run_in_executor(
            self._verify_thread, self._verify_all, pending, full_check
        )
        events = await self.state.game.events()
        records = []
        for (message, work, task), (accepted, reason) in zip(pending, checked, strict=True):
            credited = 0
            details: dict[str, Any] | None = None
            if accepted:
                tflops = self._credited_tflops(message.sender, work)
                factor = combined_factor(events, effective_ts(message.ts, task or {"issued_ts": 0}))
                value = compute_reward(
                    tflops, Fraction(self.state.settings.task_interval_s), factor
                )
                credited, capped = self.state.game.cap_for_stake(value, stakes[message.sender])
                details = {
                    "reason": (
                        f"verified GEMM {work.n}x{work.n} {work.dtype} ({work.work_id}): "
                        f"{tflops:.3f} TFLOPS x {self.state.settings.task_interval_s:g} s, "
                        f"multiplier {factor}x" + (f"; {capped}" if capped else "")
                    ),
                    "category": "gpu-contributors",
                    "data": {"task_id": work.task_id, "tflops": tflops},
                }
            verdict = WorkVerdict(
                message.sender, work.work_id, message.seq, accepted, reason, credited, None
            )
            records.append((verdict, work.task_id, details))
            if task is not None:
                self.on_answered(message.sender, work.task_id)
        if records:
            inserted: set[tuple[str, str]] = set()
            stored_verdicts = await self.state.store.record_work(records, inserted)
            for verdict in stored_verdicts:
                self.state.stats["verified" if verdict.accepted else "rejected"] += 1
            replies.extend(stored_verdicts)
            self.state.boards_dirty = True
            # Side effects (reputation, quests, slashing) for new verdicts only: a duplicate
            # in the same batch must change nothing.
            fresh = {
                (v.sender, v.work_id): v
                for v in stored_verdicts
                if (v.sender, v.work_id) in inserted
            }
            await self._game_after_work(list(fresh.values()), records)
        receipts = [
            self.state.publish(
                DEFAULT_TOPICS.node_receipt(verdict.sender),
                Receipt.TYPE,
                Receipt(
                    work_id=verdict.work_id,
                    accepted=verdict.accepted,
                    reason=verdict.reason,
                    credited_base_units=verdict.credited,
                    entry_id=verdict.entry_id,
                ),
                False,
            )
            for verdict in replies
        ]
        # Published together (PUBACKs overlap). An unsent receipt (link down) is not lost:
        # the node re-sends its result and gets the stored verdict again.
        await asyncio.gather(*receipts, return_exceptions=True)

    async def _game_after_work(
        self,
        verdicts: list[WorkVerdict],
        records: list[tuple[WorkVerdict, str, dict[str, Any] | None]],
    ) -> None:
        """Reputation, quests, badges for credited work; slashing for work proven wrong."""
        now = time.time()
        by_key = {(v.sender, v.work_id): d for v, _task, d in records}
        credited: list[tuple[str, str, float, float]] = []
        for verdict in verdicts:
            details = by_key.get((verdict.sender, verdict.work_id))
            if verdict.accepted:
                self.state.last_work[verdict.sender] = now
            if verdict.accepted and verdict.entry_id is not None and details is not None:
                credited.append(
                    (
                        verdict.sender,
                        verdict.work_id,
                        float(details["data"]["tflops"]),
                        self.state.settings.task_interval_s,
                    )
                )
            elif not verdict.accepted and verdict.reason.startswith("verification failed"):
                slashed = await self.state.game.on_failed_work(
                    verdict.sender, verdict.work_id, verdict.reason
                )
                log.warning(
                    "work %s from %s failed verification; slashed %d base units",
                    verdict.work_id,
                    short_id(verdict.sender),
                    slashed,
                )
        if credited:
            await self.state.game.on_verified_batch(credited, now)

    def _verify_all(
        self,
        pending: list[tuple[Message, WorkResult, dict[str, Any] | None]],
        full_check: list[bool] | None = None,
    ) -> list[tuple[bool, str]]:
        """Runs in the verify thread: Freivalds' check of each result against its task.

        Where ``full_check`` is False (a trusted node not drawn for a spot check) the result
        is still matched against its task and its commitment, but not multiplied out.
        """
        out: list[tuple[bool, str]] = []
        checks = full_check if full_check is not None else [True] * len(pending)
        for (message, work, task), check in zip(pending, checks, strict=True):
            try:
                out.append(self._verify_one(message, work, task, check))
            except Exception as exc:
                # One malformed result must not stop the ingest of everyone else's.
                log.warning("work %s cannot be checked: %r", work.work_id, exc)
                out.append((False, "verification failed: malformed result"))
        return out

    def _verify_one(
        self, message: Message, work: WorkResult, task: dict[str, Any] | None, check: bool
    ) -> tuple[bool, str]:
        from kernels.freivalds import commit, verify_seeded

        if task is None or task["node_id"] != message.sender:
            return False, f"unknown task {work.task_id}"
        if task["done"]:
            return False, "task already answered"
        if (work.seed, work.n, work.dtype) != (task["seed"], task["n"], task["dtype"]):
            return False, "result is for other operands than the task's"
        if effective_ts(message.ts, task) > task["deadline_ts"] + DEADLINE_GRACE_S:
            return False, "deadline missed"
        matrix = np.frombuffer(work.result_bytes(), dtype=np.dtype(work.dtype).newbyteorder("<"))
        matrix = matrix.reshape(work.n, work.n)
        if not check:
            if commit(matrix) == work.commitment:
                return True, ""
            return False, "verification failed: result does not match its commitment"
        # The random vectors are drawn here, after the node committed to its result.
        result = verify_seeded(
            work.seed,
            work.n,
            work.dtype,
            matrix,
            work.commitment,
            rounds=self.state.settings.freivalds_rounds,
        )
        return result.ok, "" if result.ok else f"verification failed: {result.reason}"

    def _credited_tflops(self, sender: str, work: WorkResult) -> float:
        """The throughput a verified work unit is paid at.

        A work unit is small (its GEMM takes milliseconds), so its own timing says little
        about the card; the node's benchmark (announced in its hello) is its sustained
        capability. Both are the node's own measurements: capped by physics here, and
        verified work is what makes them count at all.
        """
        node = self.state.nodes.get(sender)
        claim = node.tflops_claim if node is not None and node.tflops_claim > 0 else work.tflops
        return max(0.0, min(claim, MAX_PLAUSIBLE_TFLOPS))


def effective_ts(claimed: float, task: dict[str, Any]) -> float:
    """When a result counts as made: the node's signed clock, clamped to [issued, now].

    A node cannot date its work before the task existed (to reach an old multiplier) nor in
    the future; within that window its clock is trusted, so a result that waited in its
    outbox through an outage still counts as made on time.
    """
    return min(max(claimed, float(task["issued_ts"])), time.time())
