"""The node in-process: lifecycle, lock, snapshot, events, benchmark, guard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.config import load_config
from core.errors import CommandError, DataDirError, NodeRunningError
from core.node.fake_nvml import FakeNvml
from core.node.local_client import LocalNodeClient
from core.node.service import Node


def _config(data_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return load_config({"data_dir": str(data_dir), "name": "alice", **overrides})


async def test_snapshot_with_fake_gpus(data_dir: Path) -> None:
    nvml = FakeNvml.with_gpus(2)
    async with Node(_config(data_dir), nvml=nvml) as node:
        snap = await LocalNodeClient(node).snapshot()
    assert snap["node"]["name"] == "alice"
    assert snap["node"]["id"] == node.node_id
    assert snap["backend"]["name"] == "numpy"
    assert snap["telemetry"]["status"]["available"] is True
    assert len(snap["telemetry"]["gpus"]) == 2
    assert snap["guard"]["paused"] is False
    assert snap["work"] == {"state": "idle"}
    assert snap["last_benchmark"] is None


async def test_no_gpu_is_a_status_not_a_crash(data_dir: Path) -> None:
    # The real pynvml here: no driver, so the sampler reports why and the node runs on CPU.
    async with Node(_config(data_dir)) as node:
        snap = await node.snapshot()
    status = snap["telemetry"]["status"]
    assert status["available"] is False
    assert status["reason"]
    assert snap["telemetry"]["gpus"] == []


async def test_second_node_on_same_data_dir_refused(data_dir: Path) -> None:
    config = _config(data_dir)
    async with Node(config, nvml=FakeNvml.with_gpus(1)):
        with pytest.raises(NodeRunningError, match=str(data_dir)):
            await Node(config, nvml=FakeNvml.with_gpus(1)).start()
    # The lock is released on stop: a new node can start.
    async with Node(config, nvml=FakeNvml.with_gpus(1)):
        pass


async def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataDirError, match=str(blocker)):
        await Node(_config(blocker / "sub")).start()


async def test_benchmark_is_stored_and_streamed(data_dir: Path) -> None:
    async with Node(_config(data_dir), nvml=FakeNvml.with_gpus(1)) as node:
        client = LocalNodeClient(node)
        seen: list[str] = []

        async def watch() -> None:
            async for event in client.events():
                seen.append(event["type"])
                if event["type"] == "bench.done":
                    return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        result = await client.command("bench", quick=True)
        await asyncio.wait_for(watcher, 5)
        snap = await client.snapshot()
        events = await client.command("events", limit=50)
    assert result["verified"] is True
    assert "bench.progress" in seen and seen[-1] == "bench.done"
    assert snap["last_benchmark"]["verified"] is True
    assert any("benchmark done" in e["message"] for e in events["events"])


async def test_guard_pauses_work_and_refuses_benchmark(data_dir: Path) -> None:
    nvml = FakeNvml.with_gpus(1)
    config = _config(data_dir, config_file=None)
    async with Node(config, nvml=nvml) as node:
        nvml.set_temperature(0, 90)
        async with node.subscribe() as queue:
            while True:
                event = await asyncio.wait_for(queue.get(), 5)
                if event["type"] == "telemetry" and event["guard"]["paused"]:
                    break
        snap = await node.snapshot()
        assert snap["work"]["state"] == "paused"
        assert "90°C > 85°C" in snap["guard"]["summary"]
        with pytest.raises(CommandError, match="paused"):
            await node.run_benchmark(quick=True)
        events = await node.command("events")
    assert any("GPU 0 paused" in e["message"] for e in events["events"])
