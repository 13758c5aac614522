"""Which nodes get work, and when: registration (hello), presence, and issuing tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

import aiomqtt

from core.coordinator.state import CoordinatorState, NodeState
from core.identity import short_id
from core.protocol import DEFAULT_TOPICS, Hello, TaskGemm

log = logging.getLogger("omnitensor.coordinator")


class Scheduler:
    """Keeps one open task per online node, one per task interval."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state

    async def on_hello(self, sender: str, hello: Hello) -> None:
        await self.state.store.upsert_node(
            sender,
            name=hello.name,
            online=True,
            backend=hello.backend,
            device=hello.device,
            gemm_tflops=hello.gemm_tflops,
        )
        node = self.state.node(sender)
        node.online = True
        node.tflops_claim = hello.gemm_tflops
        # A hello starts a node session: tasks it held in memory may be gone with a restart.
        node.open_task = None
        log.info("node %s (%s) registered: %s", hello.name, short_id(sender), hello.device)

    async def on_presence(self, sender: str, online: bool) -> None:
        store = self.state.store
        if not await store.known_node(sender):
            return  # presence before hello: wait for the hello to register it
        await store.upsert_node(sender, online=online)
        node = self.state.node(sender)
        node.online = online
        if online:
            node.next_issue = 0.0

    def on_answered(self, sender: str, task_id: str) -> None:
        """A result for ``task_id`` came in: the node may get its next task."""
        node = self.state.node(sender)
        if node.open_task == task_id:
            node.open_task = None

    async def run(self) -> None:
        interval = self.state.settings.task_interval_s
        while True:
            now = time.time()
            for node_id, node in list(self.state.nodes.items()):
                if not self.state.is_connected() or not node.online or node.next_issue > now:
                    continue
                if node.open_task is not None and node.open_deadline > now:
                    continue
                with contextlib.suppress(aiomqtt.MqttError):
                    await self.issue_task(node_id, node)
            await asyncio.sleep(min(0.5, interval / 4))

    async def issue_task(self, node_id: str, node: NodeState) -> None:
        settings = self.state.settings
        task_id = f"t{int(time.time() * 1000):x}{secrets.token_hex(4)}"
        seed = secrets.randbits(62)
        # The deadline leaves a node that went offline time to come back and deliver.
        deadline = time.time() + max(60.0, settings.task_interval_s * 6)
        await self.state.store.add_task(
            task_id,
            node_id,
            seed=seed,
            n=settings.task_n,
            dtype=settings.task_dtype,
            deadline_ts=deadline,
        )
        node.open_task, node.open_deadline = task_id, deadline
        node.next_issue = time.time() + settings.task_interval_s
        task = TaskGemm(
            task_id=task_id,
            seed=seed,
            n=settings.task_n,
            dtype=settings.task_dtype,
            deadline_ts=deadline,
        )
        try:
            await self.state.publish(DEFAULT_TOPICS.node_task(node_id), TaskGemm.TYPE, task, False)
        except aiomqtt.MqttError:
            node.open_task = None  # never sent: issue another once reconnected
            raise
