"""The control socket: typed views across a process boundary, and clear refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.api.commands import GetLog, GetWallet, RunBench
from core.api.events import BenchDoneEvent, BenchProgressEvent, TelemetryEvent
from core.api.socket_client import SocketNodeClient
from core.api.views import NodeSnapshot, WorkIdle
from core.config import load_config
from core.errors import CommandError
from core.node.control import ControlServer
from core.node.fake_nvml import FakeNvml
from core.node.local_client import LocalNodeClient
from core.node.service import Node


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[Node]:
    config = load_config({"data_dir": str(data_dir), "name": "alice", "telemetry_interval": 0.25})
    async with (
        Node(config, nvml=FakeNvml.with_gpus(2)) as node,
        ControlServer(node, config.socket_path),
    ):
        yield node


async def _raw(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        for line in lines:
            writer.write(line + b"\n")
        await writer.drain()
        return [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in lines]
    finally:
        writer.close()


async def test_the_socket_returns_the_same_views_as_the_node(served: Node) -> None:
    client = await SocketNodeClient.connect(served.config.socket_path)
    try:
        remote = await client.snapshot()
        local = await LocalNodeClient(served).snapshot()
        assert isinstance(remote, NodeSnapshot) and remote.work == WorkIdle()
        assert remote.node.id == served.node_id and remote.backend == local.backend
        assert remote.telemetry is not None and len(remote.telemetry.gpus) == 2
        assert remote.link == local.link and remote.counters == local.counters
        log = await client.command(GetLog(limit=5))
        assert log.events and log.events[-1].message.startswith("node alice")
    finally:
        await client.close()


async def test_events_arrive_typed_over_the_socket(served: Node) -> None:
    client = await SocketNodeClient.connect(served.config.socket_path)
    seen: list[str] = []

    async def watch() -> None:
        async for event in client.events():
            seen.append(event.tag)
            if isinstance(event, BenchDoneEvent):
                return

    try:
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)  # subscribed, and a telemetry frame or two
        result = await client.command(RunBench(quick=True))
        await asyncio.wait_for(watcher, 10)
    finally:
        await client.close()
    assert result.verified is True and result.blas_peak_tflops is None
    assert TelemetryEvent.__struct_config__.tag in seen
    assert BenchProgressEvent.__struct_config__.tag in seen and seen[-1] == "bench.done"


async def test_refusals_are_one_line_errors(served: Node) -> None:
    path = served.config.socket_path
    replies = await _raw(
        path,
        b'{"id": 1, "cmd": "no.such.command"}',
        b'{"id": 2, "cmd": "bench", "params": {"quik": true}}',
        b"not json",
        b'{"id": 4, "cmd": "events", "params": {"limit": 1}}',
    )
    by_id = {r.get("id"): r for r in replies}
    assert by_id[1] == {"id": 1, "ok": False, "error": "unknown command 'no.such.command'"}
    assert by_id[2]["ok"] is False and by_id[2]["error"].startswith("bench: bad parameters")
    assert by_id[None]["ok"] is False and by_id[None]["error"].startswith("bad request")
    assert by_id[4]["ok"] is True and len(by_id[4]["result"]["events"]) == 1
    client = await SocketNodeClient.connect(path)
    try:
        with pytest.raises(CommandError, match=r"^this node is not on a network"):
            await client.command(GetWallet())
    finally:
        await client.close()
