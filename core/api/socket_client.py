"""``NodeAPI`` over a running node's control socket (JSON lines; see ``core.api.wire``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import msgspec

from core.api.commands import GetSnapshot, Request, decode_result
from core.api.events import NodeEvent
from core.api.views import NodeSnapshot
from core.api.wire import MAX_LINE, SUBSCRIBE, WireLine, WireRequest, encode_line
from core.errors import CommandError, NoNodeRunning

R = TypeVar("R")
log = logging.getLogger("omnitensor.control")

_line_decoder = msgspec.json.Decoder(WireLine)
_event_decoder = msgspec.json.Decoder(NodeEvent)


class SocketNodeClient:
    """``NodeAPI`` over a running node's control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[WireLine]] = {}
        self._events: asyncio.Queue[NodeEvent | None] = asyncio.Queue(1024)
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
                message = _line_decoder.decode(line)
                if message.event:
                    self._on_event(message.event)
                    continue
                future = self._waiting.pop(message.id if message.id is not None else -1, None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, ValueError):
            pass  # msgspec's DecodeError is a ValueError: a node that speaks nonsense is gone
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(NoNodeRunning("the node closed the connection"))
            self._waiting.clear()
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(None)

    def _on_event(self, raw: msgspec.Raw) -> None:
        try:
            event = _event_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            # A newer node's event this client does not know: skip it, keep the stream.
            log.debug("skipped an event: %s", exc)
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(event)

    async def _request(self, cmd: str, params: msgspec.Raw) -> WireLine:
        if self._writer is None or self._reader_task is None or self._reader_task.done():
            raise NoNodeRunning("not connected to a node")
        self._next_id += 1
        future: asyncio.Future[WireLine] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        line = encode_line(WireRequest(id=self._next_id, cmd=cmd, params=params))
        try:
            self._writer.write(line)
            await self._writer.drain()
        except OSError as exc:
            self._waiting.pop(self._next_id, None)
            raise NoNodeRunning(f"lost the node's control socket ({exc})") from None
        reply = await future
        if not reply.ok:
            raise CommandError(reply.error or "command failed")
        return reply

    async def snapshot(self) -> NodeSnapshot:
        return await self.command(GetSnapshot())

    async def command(self, request: Request[R]) -> R:
        # A request encodes as its parameters (the command's name is its class).
        reply = await self._request(request.name, msgspec.Raw(msgspec.json.encode(request)))
        return decode_result(type(request), bytes(reply.result), source="the node")

    async def events(self) -> AsyncIterator[NodeEvent]:
        if not self._subscribed:
            await self._request(SUBSCRIBE, msgspec.Raw(b"{}"))
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
