"""The control socket: a running node's API for other processes of the same user.

A unix socket ``node.sock`` in the data dir speaks the JSON lines of ``core.api.wire``: a
request names a command of ``core.api.commands`` (or ``subscribe``) and its parameters, the
reply carries the command's view, and after ``subscribe`` events arrive among the replies.

Only the node's own user may connect: the data dir is 0700, the socket 0600, and every
connection's peer uid is checked (SO_PEERCRED) before a byte is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from pathlib import Path

import msgspec

from core.api.commands import parse
from core.api.wire import (
    MAX_LINE,
    SUBSCRIBE,
    WireEvent,
    WireReply,
    WireRequest,
    encode_line,
)
from core.errors import DataDirError, OmniError
from core.node.service import Node

log = logging.getLogger("omnitensor.control")

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serves a ``Node`` on its data dir's socket."""

    def __init__(self, node: Node, path: Path) -> None:
        self.node = node
        self.path = path
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise DataDirError(
                f"data dir {self.path.parent} is too long a path for the control socket "
                f"(unix sockets allow {MAX_SOCKET_PATH} bytes); choose a shorter --data-dir"
            )
        # The node holds the data dir lock, so a socket file left here is stale.
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._on_connect, path=str(self.path), limit=MAX_LINE
        )
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Close the connections rather than cancel their tasks: asyncio's stream callback
            # logs an error for a handler task cancelled before it ran.
            for writer in list(self._connections.values()):
                writer.close()
            if self._connections:
                _done, slow = await asyncio.wait(list(self._connections), timeout=2.0)
                for task in slow:
                    task.cancel()
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            if _peer_uid(writer) != os.getuid():
                log.warning("control: refused a connection from another user")
                return
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The server is stopping. Ending normally matters: asyncio's stream callback
            # calls task.exception() on this task, which raises (and logs) if cancelled.
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        write_lock = asyncio.Lock()
        pending: set[asyncio.Task[None]] = set()
        decoder = msgspec.json.Decoder(WireRequest)

        async def send(message: msgspec.Struct) -> None:
            async with write_lock:
                writer.write(encode_line(message))
                await writer.drain()

        async def forward_events() -> None:
            async with self.node.subscribe() as queue:
                while True:
                    await send(WireEvent(event=await queue.get()))

        async def handle(request: WireRequest) -> None:
            rid = request.id
            try:
                command = parse(request.cmd, request.params)
                result = await self.node.command(command)
            except OmniError as exc:  # a refusal, an unknown command, bad parameters
                await send(WireReply(id=rid, ok=False, error=str(exc)))
            except Exception as exc:
                # A bug must not leave the client waiting for its answer.
                log.exception("control: %s failed", request.cmd)
                await send(WireReply(id=rid, ok=False, error=f"internal error: {exc!r}"))
            else:
                await send(WireReply(id=rid, ok=True, result=result))

        try:
            while line := await reader.readline():
                try:
                    request = decoder.decode(line)
                except msgspec.DecodeError as exc:
                    await send(WireReply(ok=False, error=f"bad request: {exc}"))
                    continue
                if request.cmd == SUBSCRIBE:
                    pending.add(asyncio.create_task(forward_events(), name="control.events"))
                    await send(WireReply(id=request.id, ok=True, result={}))
                    continue
                # Commands run concurrently so a long benchmark does not block snapshots.
                task = asyncio.create_task(handle(request), name=f"control.{request.cmd}")
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            for task in pending:
                task.cancel()
            for task in list(pending):
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
