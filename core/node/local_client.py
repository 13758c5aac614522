"""``NodeAPI`` over a ``Node`` in the same process (the console that started its node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from core.api.commands import Request
from core.api.events import NodeEvent
from core.api.views import NodeSnapshot
from core.node.service import Node

R = TypeVar("R")


class LocalNodeClient:
    """``NodeAPI`` over a ``Node`` in the same process."""

    def __init__(self, node: Node) -> None:
        self._node = node

    async def snapshot(self) -> NodeSnapshot:
        return await self._node.snapshot()

    async def events(self) -> AsyncIterator[NodeEvent]:
        async with self._node.subscribe() as queue:
            while True:
                yield await queue.get()

    async def command(self, request: Request[R]) -> R:
        return await self._node.command(request)

    async def close(self) -> None:
        return None
