"""Which nodes get work, how much, and when: registration, liveness, sizing and issuing units.

Nothing a node says sets its work size: each unit is sized from the node's throughput as the
coordinator measured it on verified units (issue to verified result), grown at most 4x per
unit and halved by a missed deadline. A node never measured starts at 1 GFLOP/s. Hellos and
presence only say a node is there: a node with no traffic for ``ghost_after_s`` gets no
work, and presence re-published while online changes nothing (only an offline -> online
edge does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import statistics
import time

import aiomqtt

from core.coordinator.state import CoordinatorState, NodeState
from core.coordinator.work_records import Unit
from core.identity import short_id
from core.protocol import DEFAULT_TOPICS, Hello, TaskUnit
from kernels.work_spec import MIN_RATE, WorkSpec, deadline_s, spec_flops, spec_for

log = logging.getLogger("omnitensor.coordinator")

GROWTH_CAP = 4.0  # a unit is sized for at most this many times the last sizing rate


class Scheduler:
    """Keeps at most one open unit per live node, one per task interval."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state

    # -- what nodes tell us ----------------------------------------------------------------

    async def on_hello(self, sender: str, hello: Hello, now: float) -> None:
        node = self.state.node(sender)
        first = node.last_traffic == 0.0
        node.last_traffic = now
        if first or hello.name != node.name:
            # The claimed figures are stored for display; nothing reads them for pay or size.
            await self.state.store.upsert_node(
                sender,
                name=hello.name,
                online=True,
                backend=hello.backend,
                device=hello.device,
                gemm_tflops=hello.claimed_tflops,
            )
            node.name = hello.name
        node.models = frozenset(hello.models)
        if first:
            rates = await self.state.store.worker_rates(sender)
            log.info("node %s (%s) registered: %s", hello.name, short_id(sender), hello.device)
        else:
            rates = {}
        # One slot per announced worker; a claim of more workers than real only brings units
        # the node cannot finish in time (each is sized and measured on its own).
        for index in range(hello.workers):
            slot = node.slot(index)
            if index in rates:
                slot.sizing_rate = max(rates[index], MIN_RATE)
        del node.workers[max(hello.workers, _last_open(node) + 1) :]
        if not node.online:
            node.online = True
            for slot in node.workers:
                slot.next_issue = min(slot.next_issue, now)

    async def on_presence(self, sender: str, online: bool, now: float) -> None:
        node = self.state.nodes.get(sender)
        if node is None:
            return  # presence before hello: wait for the hello to register it
        node.last_traffic = now
        if online == node.online:
            return  # a re-published presence is not an edge: it changes nothing
        node.online = online
        await self.state.store.upsert_node(sender, online=online)
        if online:
            for slot in node.workers:
                slot.next_issue = min(slot.next_issue, now)

    def seen(self, sender: str, now: float) -> None:
        """Any authentic traffic from a node keeps it live."""
        node = self.state.nodes.get(sender)
        if node is not None:
            node.last_traffic = now

    # -- what the coordinator measured ----------------------------------------------------

    async def on_verified(self, unit: Unit, now: float) -> None:
        """A unit verified: its worker's measured rate is its FLOPs over issue-to-verified."""
        slot = self.state.node(unit.node_id).slot(unit.worker)
        rate = unit.flops / max(now - unit.issued_ts, 1e-3)
        slot.rates.append(rate)
        measured = statistics.median(slot.rates)
        slot.sizing_rate = min(measured, slot.sizing_rate * GROWTH_CAP)
        slot.missed = 0
        await self.state.store.set_worker_rate(unit.node_id, unit.worker, measured)
        self._answered(unit)

    def on_failed(self, unit: Unit, *, missed_deadline: bool) -> None:
        slot = self.state.node(unit.node_id).slot(unit.worker)
        if missed_deadline:
            slot.sizing_rate = max(slot.sizing_rate / 2, MIN_RATE)
            slot.missed += 1
        self._answered(unit)

    def _answered(self, unit: Unit) -> None:
        slot = self.state.node(unit.node_id).slot(unit.worker)
        if slot.open_task == unit.task_id:
            slot.open_task = None

    # -- issuing ---------------------------------------------------------------------------

    def live(self, node: NodeState, now: float) -> bool:
        return node.online and now - node.last_traffic < self.state.settings.ghost_after_s

    async def run(self) -> None:
        interval = self.state.settings.task_interval_s
        while True:
            try:
                await self._tick(time.time())
            except Exception:
                # The scheduler must outlive any bug: log it whole and keep scheduling.
                log.exception("scheduler tick failed")
            await asyncio.sleep(min(0.5, max(interval / 4, 0.05)))

    async def _tick(self, now: float) -> None:
        if not self.state.is_connected():
            return
        for node_id, node in list(self.state.nodes.items()):
            if not self.live(node, now):
                continue
            if node.inference_open and not node.bench_wanted:
                continue  # inference first: GEMM units fill the idle time only
            for index, slot in enumerate(node.workers):
                if slot.open_task is not None:
                    continue
                if node.bench_wanted:
                    # A benchmark unit goes to the first free worker, ahead of its interval.
                    node.bench_wanted = False
                    await self._issue_safely(node_id, node, index, "benchmark", now)
                elif slot.next_issue <= now:
                    await self._issue_safely(node_id, node, index, "work", now)

    async def _issue_safely(
        self, node_id: str, node: NodeState, worker: int, purpose: str, now: float
    ) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # not sent: issued again once reconnected
            await self.issue(node_id, node, purpose, now, worker=worker)

    async def issue(
        self, node_id: str, node: NodeState, purpose: str, now: float, *, worker: int = 0
    ) -> Unit:
        settings = self.state.settings
        slot = node.slot(worker)
        spec = spec_for(slot.sizing_rate, settings.unit_seconds)
        unit = Unit(
            task_id=f"u{int(now * 1000):x}{secrets.token_hex(4)}",
            node_id=node_id,
            purpose=purpose,
            seed=spec.seed,
            m=spec.m,
            n=spec.n,
            k=spec.k,
            block=spec.block,
            flops=spec_flops(spec),
            issued_ts=now,
            deadline_ts=now + deadline_s(spec, slot.sizing_rate),
            worker=worker,
        )
        await self.state.store.add_unit(unit)
        slot.open_task = unit.task_id
        slot.next_issue = now + settings.task_interval_s
        message = TaskUnit(
            task_id=unit.task_id,
            recipient=node_id,
            worker=worker,
            purpose=purpose,
            seed=unit.seed.hex(),
            m=unit.m,
            n=unit.n,
            k=unit.k,
            block=unit.block,
            issued_ts=unit.issued_ts,
            deadline_ts=unit.deadline_ts,
        )
        try:
            await self.state.publish(
                DEFAULT_TOPICS.node_task(node_id), TaskUnit.TYPE, message, False
            )
        except aiomqtt.MqttError:
            slot.open_task = None  # never sent: forget it, so nobody is judged for it
            await self.state.store.discard_unit(unit.task_id)
            raise
        return unit


def _last_open(node: NodeState) -> int:
    """The highest worker index with a unit out (-1: none)."""
    return max((i for i, w in enumerate(node.workers) if w.open_task is not None), default=-1)


def unit_spec(unit: Unit) -> WorkSpec:
    return WorkSpec(seed=unit.seed, m=unit.m, n=unit.n, k=unit.k, block=unit.block)
