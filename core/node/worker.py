"""The node's work: tasks from the coordinator, run one at a time on the kernel thread.

A task waits while the guard pauses work (until its deadline); its result is signed, stored
with its outgoing message in one transaction (the outbox) and handed to the outbox to send.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import time
from collections.abc import Callable

from core.api.events import WorkEvent
from core.node.context import NodeContext
from core.protocol import DEFAULT_TOPICS, SequenceCounter, TaskGemm, WorkResult, encode

log = logging.getLogger("omnitensor.node")


class Worker:
    """``run()`` takes tasks from ``queue`` until cancelled; one failed task stops nothing."""

    def __init__(
        self, node: NodeContext, seqs: SequenceCounter, on_result: Callable[[], None]
    ) -> None:
        self.node = node
        self.seqs = seqs
        self.on_result = on_result
        self.queue: asyncio.Queue[TaskGemm] = asyncio.Queue()

    async def run(self) -> None:
        while True:
            task = await self.queue.get()
            # Polled: the guard changes at most once per telemetry tick.
            while self.node.work_paused() and time.time() < task.deadline_ts:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            if time.time() >= task.deadline_ts:
                await self.node.emit_log("warning", "work", f"task {task.task_id} expired")
                continue
            try:
                await self.run_task(task)
            except sqlite3.IntegrityError:
                pass  # a task re-delivered after it was done: its result is already queued
            except Exception as exc:
                # One failed task must not stop the node's work.
                log.exception("task %s failed", task.task_id)
                await self.node.emit_log("error", "work", f"task {task.task_id} failed: {exc}")

    async def run_task(self, task: TaskGemm) -> None:
        from kernels.gemm_task import run_work_unit

        store, identity = self.node.store, self.node.identity
        assert store is not None and identity is not None
        product = await self.node.run_in_kernel_thread(
            lambda backend: run_work_unit(backend, task.n, task.dtype, task.seed)
        )
        work_id = f"w-{task.task_id}"
        result = WorkResult(
            work_id=work_id,
            task_id=task.task_id,
            kind="gemm",
            seed=task.seed,
            n=task.n,
            dtype=task.dtype,
            commitment=product.commitment,
            result_b64=base64.b64encode(product.result).decode(),
            elapsed_s=product.elapsed_s,
            tflops=product.tflops,
        )
        topic = DEFAULT_TOPICS.node_work(identity.node_id)
        payload = encode(identity, self.seqs.next(), WorkResult.TYPE, result)
        await store.add_work(
            {
                "work_id": work_id,
                "task_id": task.task_id,
                "ts": time.time(),
                "n": task.n,
                "dtype": task.dtype,
                "tflops": product.tflops,
                "elapsed_s": product.elapsed_s,
                "commitment": product.commitment,
            },
            topic,
            payload,
        )
        self.node.publish(WorkEvent(submitted=work_id))
        self.on_result()
