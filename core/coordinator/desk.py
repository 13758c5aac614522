"""A desk for one kind of node message: a bounded queue, handled one at a time, and a clock.

Inference tasks and quality rounds both take messages from nodes (commitments, reveals,
answers) and have deadlines to keep; a desk drains its queue and ticks its clock in one
loop, so a message and a deadline never race. A full queue drops the message (the node's
seat times out, as if it were lost); one failing message or tick stops nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Generic, TypeVar

from core.coordinator.state import CoordinatorState
from core.protocol import Message

log = logging.getLogger("omnitensor.coordinator")

T = TypeVar("T")


class MessageDesk(Generic[T]):
    """Subclasses implement ``on_message`` and ``tick``; ``POLL_S`` is the clock's period."""

    POLL_S = 1.0

    def __init__(self, state: CoordinatorState, queue_max: int) -> None:
        self.state = state
        self.queue: asyncio.Queue[tuple[Message, T]] = asyncio.Queue(queue_max)

    def offer(self, message: Message, data: T) -> None:
        """Queue a message without waiting; dropped (and counted) when the queue is full."""
        try:
            self.queue.put_nowait((message, data))
        except asyncio.QueueFull:
            self.state.stats["dropped"] += 1

    async def run(self) -> None:
        name = type(self).__name__
        while True:
            try:
                message, data = await asyncio.wait_for(self.queue.get(), self.POLL_S)
            except TimeoutError:
                pass
            else:
                try:
                    await self.on_message(message.sender, data, time.time())
                except Exception:
                    log.exception("%s: a message from %s failed", name, message.sender[:12])
            try:
                await self.tick(time.time())
            except Exception:
                log.exception("%s: tick failed", name)

    async def on_message(self, sender: str, data: T, now: float) -> None:
        raise NotImplementedError

    async def tick(self, now: float) -> None:
        raise NotImplementedError
