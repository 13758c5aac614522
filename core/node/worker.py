"""The node's work: units from the coordinator, computed and proved on the kernel thread.

A unit (a seeded GEMM, ``kernels/work_unit.py``) is computed once and committed to by its
Merkle root; when the coordinator's challenge arrives the node answers it with the sampled
blocks' paths. Each stage's message is stored with the unit's new state in one transaction
(the outbox) and sent from there. A unit whose result is no longer in memory (the node
restarted) is simply computed again: it is fully determined by its spec.

Nothing from the network is trusted to fit: a unit over the node's size caps, past its
deadline or not addressed to this node is refused with a log line, never computed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from core.api.events import WorkEvent
from core.node.context import NodeContext
from core.node.store import ReceivedUnit
from core.protocol import (
    DEFAULT_TOPICS,
    Challenge,
    SequenceCounter,
    TaskUnit,
    WorkCommit,
    WorkProof,
    encode,
)

log = logging.getLogger("omnitensor.node")

# A unit's operands and product must fit in memory: A (m x k), Bt (n x k), C (m x n), fp32.
MAX_UNIT_BYTES_HOST = 1 << 30
MAX_UNIT_BYTES_DEVICE = 4 << 30
KEEP_UNITS = 2  # computed units kept in memory for their challenge


def unit_bytes(m: int, n: int, k: int) -> int:
    return 4 * (m * k + n * k + m * n)


class Worker:
    """One device's worker: ``run()`` computes its units and answers their challenges until
    cancelled; one failure stops nothing."""

    def __init__(
        self,
        node: NodeContext,
        seqs: SequenceCounter,
        on_message: Callable[[], None],
        *,
        index: int = 0,
    ) -> None:
        self.node = node
        self.seqs = seqs
        self.index = index  # the device it runs on, and its worker index on the network
        self.on_message = on_message  # a new message waits in the outbox
        self.units: asyncio.Queue[ReceivedUnit] = asyncio.Queue()
        self.challenges: asyncio.Queue[Challenge] = asyncio.Queue()
        self._results: OrderedDict[str, Any] = OrderedDict()  # task id -> UnitResult
        self.current: str | None = None  # the unit being computed
        self.done = 0  # units committed since start
        self.last_rate: float | None = None  # FLOP/s of the last unit, its own timing

    async def accept(self, task: TaskUnit) -> None:
        """A unit arrived: check it fits, keep it, queue it (a re-delivery is ignored)."""
        store = self.node.store
        assert store is not None
        refusal = self._refusal(task)
        if refusal is not None:
            await self.node.emit_log("warning", "work", f"unit {task.task_id} refused: {refusal}")
            return
        unit = ReceivedUnit(
            task.task_id,
            task.purpose,
            task.seed,
            task.m,
            task.n,
            task.k,
            task.block,
            task.issued_ts,
            task.deadline_ts,
            worker=self.index,
        )
        if await store.add_unit(unit):
            await self.units.put(unit)

    def _refusal(self, task: TaskUnit) -> str | None:
        from kernels.work_spec import WorkSpec

        spec = WorkSpec(bytes.fromhex(task.seed), task.m, task.n, task.k, task.block)
        try:
            spec.check()
        except ValueError as exc:
            return str(exc)
        limit = MAX_UNIT_BYTES_DEVICE if self.node.backend_name == "cupy" else MAX_UNIT_BYTES_HOST
        size = unit_bytes(task.m, task.n, task.k)
        if size > limit:
            return f"needs {size / 2**30:.1f} GiB, over this node's {limit / 2**30:.0f} GiB cap"
        if task.deadline_ts <= time.time():
            return "its deadline has passed"
        return None

    async def resume(self) -> None:
        """After a restart: queue the units received but not committed, still in time."""
        store = self.node.store
        assert store is not None
        for unit in await store.units_to_compute(time.time()):
            if unit.worker == self.index:
                await self.units.put(unit)

    async def run(self) -> None:
        await asyncio.gather(self._compute_loop(), self._challenge_loop())

    async def _compute_loop(self) -> None:
        from kernels.work_unit import warm_up

        # Compiled kernels, cuBLAS handle, hasher self-check: paid before the first unit.
        await self.node.run_on_device(self.index, warm_up)
        while True:
            unit = await self.units.get()
            # Polled: the guard changes at most once per telemetry tick.
            while (  # noqa: ASYNC110
                self.node.work_paused(self.index) and time.time() < unit.deadline_ts
            ):
                await asyncio.sleep(0.5)
            if time.time() >= unit.deadline_ts:
                await self.node.emit_log("warning", "work", f"unit {unit.task_id} expired")
                continue
            try:
                await self.commit(unit)
            except Exception as exc:
                # One failed unit must not stop the node's work.
                log.exception("unit %s failed", unit.task_id)
                await self.node.emit_log("error", "work", f"unit {unit.task_id} failed: {exc}")

    async def _challenge_loop(self) -> None:
        while True:
            challenge = await self.challenges.get()
            try:
                await self.prove(challenge)
            except Exception as exc:
                log.exception("challenge for unit %s failed", challenge.task_id)
                await self.node.emit_log(
                    "error", "work", f"challenge for unit {challenge.task_id} failed: {exc}"
                )

    async def _compute(self, unit: ReceivedUnit) -> Any:
        from kernels.work_spec import WorkSpec
        from kernels.work_unit import compute_unit

        spec = WorkSpec(bytes.fromhex(unit.seed), unit.m, unit.n, unit.k, unit.block)
        self.current = unit.task_id
        try:
            result = await self.node.run_on_device(
                self.index, lambda backend: compute_unit(backend, spec)
            )
        finally:
            self.current = None
        self._results[unit.task_id] = result
        while len(self._results) > KEEP_UNITS:
            self._results.popitem(last=False)
        return result

    async def commit(self, unit: ReceivedUnit) -> None:
        """Compute the unit and queue its commitment (the Merkle root)."""
        store, identity = self.node.store, self.node.identity
        assert store is not None and identity is not None
        started = time.monotonic()
        result = await self._compute(unit)
        elapsed = time.monotonic() - started
        self.done += 1
        self.last_rate = 2 * unit.m * unit.n * unit.k / max(elapsed, 1e-9)
        root = result.root.hex()
        commit = WorkCommit(task_id=unit.task_id, root=root, elapsed_s=elapsed)
        payload = encode(identity, self.seqs.next(), WorkCommit.TYPE, commit)
        topic = DEFAULT_TOPICS.node_work(identity.node_id)
        await store.advance_unit(
            unit.task_id, "committed", topic, payload, root=root, elapsed_s=elapsed
        )
        self.node.publish(WorkEvent(submitted=unit.task_id))
        self.on_message()

    async def prove(self, challenge: Challenge) -> None:
        """Answer a challenge with the sampled blocks' Merkle paths."""
        from kernels.work_proof import encode_proof
        from kernels.work_unit import answer

        store, identity = self.node.store, self.node.identity
        assert store is not None and identity is not None
        unit = await store.unit(challenge.task_id)
        if unit is None or unit.root != challenge.root:
            log.warning("challenge for unit %s does not match it; ignored", challenge.task_id)
            return
        if unit.status == "proved":
            self.on_message()  # a challenge re-sent: the proof waits in the outbox already
            return
        if unit.status != "committed":
            return  # settled already
        result = self._results.get(unit.task_id)
        if result is None:
            result = await self._compute(unit)  # restarted since: the spec makes it again
            if result.root.hex() != unit.root:
                raise RuntimeError("recomputed unit has another root than the committed one")
        indices = list(challenge.indices)
        proof = await self.node.run_on_device(
            self.index, lambda _backend: encode_proof(answer(result, indices))
        )
        message = WorkProof(
            task_id=unit.task_id, root=unit.root, proof_b64=base64.b64encode(proof).decode()
        )
        payload = encode(identity, self.seqs.next(), WorkProof.TYPE, message)
        topic = DEFAULT_TOPICS.node_work(identity.node_id)
        await store.advance_unit(unit.task_id, "proved", topic, payload)
        self.on_message()

    def forget(self, task_id: str) -> None:
        """The unit is settled: its result is no longer needed."""
        self._results.pop(task_id, None)
