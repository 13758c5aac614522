"""``NodeAPI`` over a ``Node`` in the same process (the console that started its node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.api.client import JSON
from core.node.service import Node


class LocalNodeClient:
    """``NodeAPI`` over a ``Node`` in the same process."""

    def __init__(self, node: Node) -> None:
        self._node = node

    async def snapshot(self) -> JSON:
        return await self._node.snapshot()

    async def events(self) -> AsyncIterator[JSON]:
        async with self._node.subscribe() as queue:
            while True:
                yield await queue.get()

    async def command(self, name: str, **params: Any) -> JSON:
        return await self._node.command(name, **params)

    async def close(self) -> None:
        return None
