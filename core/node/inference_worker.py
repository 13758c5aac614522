"""The node's inference work: embedding tasks (commit, then reveal) and quality rounds.

A task's sentences are encoded off the event loop; the node then publishes only a
commitment (a hash bound to its node id, the task and a fresh salt) and keeps the vectors
until the coordinator calls for the reveal. A quality round is answered with the same
encoder. Work waits while the thermal guard pauses the node; what is not done by its
deadline is simply forfeited (nothing is slashed for a timeout).

The model is loaded on the first task, once, and kept. Nothing here is stored: a node that
restarts forfeits the tasks it had in flight.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.api.events import WorkEvent
from core.api.views import InferenceWorkView
from core.money import format_omnit
from core.node.context import NodeContext
from core.protocol import (
    DEFAULT_TOPICS,
    InferCommit,
    InferReveal,
    InferTask,
    QualityAnswer,
    QualityRound,
    Receipt,
    RevealCall,
)

log = logging.getLogger("omnitensor.node")

KEEP_TASKS = 32  # committed tasks kept for their reveal call
QUEUE_MAX = 64

Publish = Callable[[str, str, Any], Awaitable[None]]
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Committed:
    salt: bytes
    raw: bytes
    count: int
    dim: int


@dataclass
class InferenceStats:
    """What the console shows: the current work and the recent verdicts."""

    current: str | None = None  # "inference task ..." or "quality round ..."
    tasks: int = 0  # tasks committed since start
    accepted: int = 0
    rejected: int = 0
    last_reason: str = ""
    rounds: int = 0


class InferenceWorker:
    """``run()`` works the queue until cancelled; one failure stops nothing."""

    def __init__(self, node: NodeContext, publish: Publish) -> None:
        self.node = node
        self.publish = publish
        self.queue: asyncio.Queue[InferTask | QualityRound] = asyncio.Queue(QUEUE_MAX)
        self.committed: OrderedDict[str, Committed] = OrderedDict()
        self.stats = InferenceStats()
        self._encoder: Any = None
        self._load_lock = asyncio.Lock()

    def view(self) -> InferenceWorkView:
        stats = self.stats
        return InferenceWorkView(
            current=stats.current,
            tasks=stats.tasks,
            accepted=stats.accepted,
            rejected=stats.rejected,
            last_rejection=stats.last_reason,
            rounds=stats.rounds,
        )

    # -- the model ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The models this node serves: the one installed (cheap: looks for its files)."""
        from kernels.inference.model import MODEL_NAME, model_status

        return [MODEL_NAME] if model_status(self.node.config.model_dir)["installed"] else []

    async def encoder(self) -> Any:
        async with self._load_lock:
            if self._encoder is None:
                self._encoder = await asyncio.to_thread(self._load)
        return self._encoder

    def _load(self) -> Any:
        from kernels.backend import select_backend
        from kernels.inference import SentenceEncoder, find_model_dir, load_model
        from kernels.inference.cpu_fused import load_fused

        model = load_model(find_model_dir(self.node.config.model_dir), select_backend())
        if not model.backend.is_cupy:
            load_fused()  # a node encodes all day: the fused CPU kernels from its first task
        return SentenceEncoder(model)

    async def encode(self, texts: Sequence[str]) -> Vectors:
        """The embeddings of ``texts`` (tests replace this to play a dishonest worker)."""
        encoder = await self.encoder()
        vectors: Vectors = await asyncio.to_thread(encoder.encode, list(texts))
        return vectors

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()

    # -- inbound -----------------------------------------------------------------------------

    async def accept(self, work: InferTask | QualityRound) -> None:
        deadline = work.commit_by if isinstance(work, InferTask) else work.deadline_ts
        name = work.task_id if isinstance(work, InferTask) else work.round_id
        if deadline <= time.time():
            await self.node.emit_log("warning", "work", f"{name} refused: its deadline passed")
            return
        try:
            self.queue.put_nowait(work)
        except asyncio.QueueFull:
            await self.node.emit_log("warning", "work", f"{name} refused: the queue is full")

    async def reveal(self, call: RevealCall) -> None:
        done = self.committed.get(call.task_id)
        if done is None:
            log.warning("reveal call for unknown task %s ignored", call.task_id)
            return
        reveal = InferReveal(
            task_id=call.task_id,
            salt=done.salt.hex(),
            count=done.count,
            dim=done.dim,
            embeddings_b64=base64.b64encode(done.raw).decode("ascii"),
        )
        await self.publish(DEFAULT_TOPICS.node_work(self.node.node_id), InferReveal.TYPE, reveal)

    async def on_receipt(self, receipt: Receipt) -> bool:
        """Settle an inference task's receipt; False when the task is not one of ours."""
        if self.committed.pop(receipt.task_id, None) is None:
            return False
        if receipt.accepted:
            self.stats.accepted += 1
            await self.node.emit_log(
                "info",
                "work",
                f"inference task {receipt.task_id} accepted ({receipt.reason}): credited "
                f"{format_omnit(receipt.credited_base_units, exact=True)} OMNIT",
                {"task_id": receipt.task_id, "credited": receipt.credited_base_units},
            )
        else:
            self.stats.rejected += 1
            self.stats.last_reason = receipt.reason
            await self.node.emit_log(
                "warning",
                "work",
                f"inference task {receipt.task_id} rejected: {receipt.reason}",
                {"task_id": receipt.task_id, "reason": receipt.reason},
            )
        self.node.publish(WorkEvent(receipt=receipt.task_id))
        return True

    # -- work --------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            work = await self.queue.get()
            try:
                await self._work(work)
            except Exception as exc:
                log.exception("inference work failed")
                await self.node.emit_log("error", "work", f"inference work failed: {exc}")
            finally:
                self.stats.current = None

    async def _work(self, work: InferTask | QualityRound) -> None:
        deadline = work.commit_by if isinstance(work, InferTask) else work.deadline_ts
        while self.node.work_paused() and time.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        if time.time() >= deadline:
            return  # forfeited: the coordinator times the seat out
        if isinstance(work, InferTask):
            await self._task(work)
        else:
            await self._round(work)

    async def _task(self, task: InferTask) -> None:
        from kernels.inference.poi import commitment, pack_embeddings

        self.stats.current = f"inference task {task.task_id} ({len(task.texts)} sentences)"
        started = time.monotonic()
        vectors = await self.encode(task.texts)
        raw = pack_embeddings(vectors)
        salt = secrets.token_bytes(32)
        digest = commitment(self.node.node_id, task.task_id, salt, raw)
        self.committed[task.task_id] = Committed(salt, raw, len(task.texts), vectors.shape[1])
        while len(self.committed) > KEEP_TASKS:
            self.committed.popitem(last=False)
        await self.publish(
            DEFAULT_TOPICS.node_work(self.node.node_id),
            InferCommit.TYPE,
            InferCommit(task_id=task.task_id, commitment=digest),
        )
        self.stats.tasks += 1
        await self.node.emit_log(
            "info",
            "work",
            f"inference task {task.task_id}: {len(task.texts)} sentences encoded in "
            f"{time.monotonic() - started:.2f} s, committed",
        )

    async def _round(self, round_: QualityRound) -> None:
        from kernels.inference.quality import Question, answer_round

        self.stats.current = f"quality round {round_.round_id}"
        started = time.monotonic()
        questions = [
            Question(id=q.id, query=q.query, candidates=tuple(q.candidates), answer=None)
            for q in round_.questions
        ]
        encoder = await self.encoder()
        answers = await asyncio.to_thread(answer_round, encoder, questions)
        elapsed = time.monotonic() - started
        await self.publish(
            DEFAULT_TOPICS.node_work(self.node.node_id),
            QualityAnswer.TYPE,
            QualityAnswer(round_id=round_.round_id, answers=list(answers), elapsed_s=elapsed),
        )
        self.stats.rounds += 1
        await self.node.emit_log(
            "info", "work", f"quality round {round_.round_id} answered in {elapsed:.2f} s"
        )
