"""Store-and-forward of work results: publish the outbox until the coordinator's receipt.

Every result is written to the outbox in the same transaction as the result itself,
published (QoS 1) whenever the link is up, and deleted only when the coordinator's signed
receipt for it arrives: an application-level ack, not PUBACK, so a result survives a broker
restart, a coordinator crash and a ``kill -9`` of the node. Pending entries are re-sent every
``resend_interval`` (the coordinator answers a duplicate with its stored receipt).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aiomqtt

from core.node.store import NodeStore

PublishRaw = Callable[[str, bytes], Awaitable[None]]


class Outbox:
    """``run()`` flushes on connect, on new work and periodically, in order."""

    def __init__(
        self,
        store: NodeStore,
        publish_raw: PublishRaw,
        is_up: Callable[[], bool],
        resend_interval: float,
    ) -> None:
        self._store = store
        self._publish_raw = publish_raw
        self._is_up = is_up
        self.resend_interval = resend_interval
        self._wanted = asyncio.Event()

    def flush_soon(self) -> None:
        self._wanted.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), self.resend_interval)
            self._wanted.clear()
            if not self._is_up():
                continue  # offline: the next connection asks for a flush again
            try:
                for row in await self._store.outbox():
                    await self._publish_raw(row.topic, row.payload)
            except aiomqtt.MqttError:
                continue  # the connection dropped; the reconnect flushes again
