"""``NodeAPI`` over a running node's control socket (JSON lines; see ``core.node.control``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from core.api.client import JSON
from core.errors import CommandError, NoNodeRunning

MAX_LINE = 1 << 20


class SocketNodeClient:
    """``NodeAPI`` over a running node's control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[JSON]] = {}
        self._events: asyncio.Queue[JSON | None] = asyncio.Queue(1024)
        self._subscribed = False
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, path: Path) -> SocketNodeClient:
        client = cls(path)
        await client._connect()
        return client

    async def _connect(self) -> None:
        if not self.path.exists():
            raise NoNodeRunning(f"no node is running on data dir {self.path.parent}")
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self.path), limit=MAX_LINE
            )
        except (ConnectionRefusedError, FileNotFoundError):
            raise NoNodeRunning(f"no node is running on data dir {self.path.parent}") from None
        except PermissionError:
            raise NoNodeRunning(
                f"the node on data dir {self.path.parent} belongs to another user"
            ) from None
        self._reader_task = asyncio.create_task(self._read_loop(), name="control.client.read")

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                if "event" in message:
                    with contextlib.suppress(asyncio.QueueFull):
                        self._events.put_nowait(message["event"])
                    continue
                future = self._waiting.pop(message.get("id", -1), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, ValueError):
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(NoNodeRunning("the node closed the connection"))
            self._waiting.clear()
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(None)

    async def _request(self, cmd: str, params: dict[str, Any]) -> JSON:
        if self._writer is None or self._reader_task is None or self._reader_task.done():
            raise NoNodeRunning("not connected to a node")
        self._next_id += 1
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        payload = {"id": self._next_id, "cmd": cmd, "params": params}
        try:
            self._writer.write(json.dumps(payload).encode() + b"\n")
            await self._writer.drain()
        except OSError as exc:
            self._waiting.pop(self._next_id, None)
            raise NoNodeRunning(f"lost the node's control socket ({exc})") from None
        reply = await future
        if not reply.get("ok"):
            raise CommandError(str(reply.get("error", "command failed")))
        result: JSON = reply.get("result", {})
        return result

    async def snapshot(self) -> JSON:
        return await self._request("snapshot", {})

    async def command(self, name: str, **params: Any) -> JSON:
        return await self._request(name, params)

    async def events(self) -> AsyncIterator[JSON]:
        if not self._subscribed:
            await self._request("subscribe", {})
            self._subscribed = True
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
