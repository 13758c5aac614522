"""The node in-process: lifecycle, lock, snapshot, events, benchmark, guard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.api.commands import GetLog, GetWallet, RunBench
from core.api.events import BenchDoneEvent, TelemetryEvent
from core.api.views import WorkIdle, WorkPaused
from core.config import load_config
from core.errors import CommandError, DataDirError, NodeRunningError
from core.node.fake_nvml import FakeNvml
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tests.helpers.nvml import skip_if_nvml_works


def _config(data_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return load_config({"data_dir": str(data_dir), "name": "alice", **overrides})


async def test_snapshot_with_fake_gpus(data_dir: Path) -> None:
    nvml = FakeNvml.with_gpus(2)
    async with Node(_config(data_dir), nvml=nvml) as node:
        snap = await LocalNodeClient(node).snapshot()
    assert snap.node.name == "alice"
    assert snap.node.id == node.node_id
    assert snap.backend.name == "numpy"
    assert snap.telemetry is not None and snap.telemetry.status.available is True
    assert len(snap.telemetry.gpus) == 2
    assert snap.guard is not None and snap.guard.paused is False
    assert snap.work == WorkIdle()
    assert snap.last_benchmark is None


async def test_no_gpu_is_a_status_not_a_crash(data_dir: Path) -> None:
    # The real pynvml here: no driver, so the sampler reports why and the node runs on CPU.
    skip_if_nvml_works()
    async with Node(_config(data_dir)) as node:
        snap = await node.snapshot()
    assert snap.telemetry is not None
    status = snap.telemetry.status
    assert status.available is False
    assert status.reason
    assert snap.telemetry.gpus == ()


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
                seen.append(event.tag)
                if isinstance(event, BenchDoneEvent):
                    return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        result = await client.command(RunBench(quick=True))
        await asyncio.wait_for(watcher, 5)
        snap = await client.snapshot()
        events = await client.command(GetLog(limit=50))
    assert result.verified is True
    assert "bench.progress" in seen and seen[-1] == "bench.done"
    assert snap.last_benchmark is not None and snap.last_benchmark.verified is True
    assert any("benchmark done" in e.message for e in events.events)


async def test_guard_pauses_work_and_refuses_benchmark(data_dir: Path) -> None:
    nvml = FakeNvml.with_gpus(1)
    config = _config(data_dir, config_file=None)
    async with Node(config, nvml=nvml) as node:
        nvml.set_temperature(0, 90)
        async with node.subscribe() as queue:
            while True:
                event = await asyncio.wait_for(queue.get(), 5)
                if isinstance(event, TelemetryEvent) and event.guard.paused:
                    break
        snap = await node.snapshot()
        assert isinstance(snap.work, WorkPaused) and snap.work.state == "paused"
        assert snap.guard is not None and "90°C > 85°C" in snap.guard.summary
        with pytest.raises(CommandError, match="paused"):
            await node.run_benchmark(quick=True)
        events = await node.command(GetLog())
    assert any("GPU 0 paused" in e.message for e in events.events)


async def test_coordinator_answers_are_decoded_at_the_node(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.node.link import NetworkLink

    wallet = {
        "staked": 0,
        "available": 5,
        "reputation": 1,
        "reputation_detail": {"consecutive": 1, "verified": 1, "failed": 0},
        "balance": 5,
        "entries": [],
        "rejected": [],
        "earned_today": 5,
        "work": {"accepted": 1, "rejected": 0},
    }
    answers: dict[str, object] = {"wallet": {**wallet, "balance": "lots"}}

    async def request(method: str, params: dict[str, object], wait_s: float = 10.0) -> object:
        return answers[method]

    async with Node(_config(data_dir), nvml=FakeNvml.with_gpus(1)) as node:
        # A link that never connects: its requests are answered here.
        node.link = NetworkLink(node, "mqtt://127.0.0.1:1")
        monkeypatch.setattr(node.link, "request", request)
        with pytest.raises(CommandError, match=r"^wallet: the coordinator sent a malformed"):
            await node.command(GetWallet())
        assert (await node.snapshot()).wallet is None
        answers["wallet"] = wallet
        got = await node.command(GetWallet())
        assert got.balance == 5 and (await node.snapshot()).wallet == got
        # No per-hour pay from this coordinator: the charts fall back to this node's receipts.
        assert (await node.snapshot()).earnings_hourly == (0,) * 24
        hourly, daily = list(range(24)), [0, 0, 0, 0, 0, 0, 276]
        answers["wallet"] = {**wallet, "work_hourly": hourly, "work_daily": daily}
        await node.command(GetWallet())
        snap = await node.snapshot()
        assert snap.earnings_hourly == tuple(hourly) and snap.earnings_daily == tuple(daily)
        node.link = None
