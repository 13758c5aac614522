"""Node and coordinator over a real Mosquitto: work verified, credited once, receipts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from core.api.commands import GetLeaderboard, GetLog, GetWallet
from core.config import load_config
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.coordinator.store import CoordinatorStore
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.transport.mqtt import cancel_and_wait
from tests.helpers.broker import MosquittoProcess

pytestmark = pytest.mark.broker


async def wait_until(check: Callable[[], object], within: float = 20.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_coordinator(
    data_dir: Path, url: str, task_interval_s: float = 0.2
) -> AsyncIterator[Coordinator]:
    settings = CoordinatorSettings(
        data_dir=data_dir,
        broker_url=url,
        task_interval_s=task_interval_s,
        unit_seconds=0.2,
        board_interval_s=0.2,
    )
    async with Coordinator(settings) as coordinator:
        task = asyncio.create_task(coordinator.run())
        try:
            await asyncio.wait_for(coordinator.connected.wait(), 10)
            yield coordinator
        finally:
            coordinator.close()
            await cancel_and_wait(task)


def node_for(
    data_dir: Path,
    url: str,
    key: str | None = None,
    name: str = "alice",
    *,
    nvml: FakeNvml | None = None,
    telemetry_interval: float = 1.0,
    first_benchmark: bool = True,
) -> Node:
    # These networks run on a test mosquitto: trusting the coordinator on first use is asked for.
    config = load_config(
        {
            "data_dir": str(data_dir),
            "name": name,
            "broker_url": url,
            "broker.trust_first_use": True,
            "telemetry_interval": telemetry_interval,
            "first_benchmark": first_benchmark,
        }
    )
    if key:
        config = replace(config, broker=replace(config.broker, coordinator_key=key))
    gpus = nvml if nvml is not None else FakeNvml.with_gpus(1)
    return Node(config, nvml=gpus, network_url=url, resend_interval=0.5)


async def test_work_is_verified_credited_and_acknowledged(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with (
        running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator,
        node_for(tmp_path / "n", mosquitto.url) as node,
    ):
        store = node.store
        assert store is not None

        async def three_acked() -> bool:
            return (await store.work_counters())["work.acknowledged"] >= 3

        # Generous: the first unit waits for the warm-up, and CI shares two cores.
        await wait_until(three_acked, within=60, what="three receipts")
        # Trusted on first use, and pinned in the data dir.
        assert node.link is not None and node.link.pinned_key == coordinator.node_id
        assert await store.get_setting("coordinator_key") == coordinator.node_id
        wallet = await node.command(GetWallet())
        board = await node.command(GetLeaderboard(category="gpu-contributors", limit=5))
        snap = await node.snapshot()
    assert snap.link.state == "connected"
    assert wallet.balance > 0
    assert all(e.kind == "reward" and e.reason for e in wallet.entries)
    assert board.entries[0].name == "alice"
    assert board.own_rank == 1
    assert board.entries[0].amount == wallet.balance
    # Work went on after the wallet query: the ledger can only have grown since.
    async with CoordinatorStore(tmp_path / "coord" / "coordinator.db") as cstore:
        minted, burned = await cstore.supply()
        assert burned == 0
        assert minted == await cstore.balance(node.node_id) >= wallet.balance


async def unit_refused_by_node(
    coordinator: Coordinator, node: Node, caplog: pytest.LogCaptureFixture
) -> str:
    """Wait until ``coordinator`` has issued a unit to ``node`` and the node has dropped that
    task.unit (a sender it has not pinned); the unit's task id. Needs ``caplog`` set to
    WARNING for ``omnitensor.protocol``."""
    assert coordinator.store is not None
    cstore = coordinator.store

    async def issued_to_node() -> list[str]:
        return [u.task_id for u in await cstore.open_units() if u.node_id == node.node_id]

    def refusals() -> list[str]:
        # The node's inbound filter on its task topic, refusing the unit message.
        return [
            r.getMessage()
            for r in caplog.records
            if "sender is not the pinned coordinator" in r.getMessage()
            and f"/node/{node.node_id}/task" in r.getMessage()
            and f"task.unit from {coordinator.node_id[:12]}" in r.getMessage()
        ]

    await wait_until(issued_to_node, what="a unit issued to the node")
    await wait_until(refusals, what="the node refusing the unit")
    [task_id] = await issued_to_node()
    return task_id


async def assert_never_run(coordinator: Coordinator, node: Node, task_id: str) -> None:
    """The unit was never kept, computed or answered by the node."""
    assert coordinator.store is not None and node.store is not None
    assert await node.store.unit(task_id) is None
    counters = await node.store.work_counters()
    assert counters["work.submitted"] == 0 and counters["outbox.pending"] == 0
    [issued] = (await coordinator.store.units([task_id])).values()
    assert issued.state == "issued" and issued.root is None


async def test_wrong_coordinator_key_is_refused(
    mosquitto: MosquittoProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="omnitensor.protocol")
    async with (
        running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator,
        node_for(tmp_path / "n", mosquitto.url, key="ab" * 32) as node,
    ):
        # The other coordinator did send this node work, and the node received it...
        task_id = await unit_refused_by_node(coordinator, node, caplog)
        # ...and never kept, ran or answered it; the impostor is refused loudly.
        await assert_never_run(coordinator, node, task_id)
        events = await node.command(GetLog())
    assert any("REFUSED coordinator key" in e.message for e in events.events)


async def test_offline_node_keeps_work_and_flushes(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    # A unit received before the outage is held back (a hot GPU pauses work) until the
    # broker is down; released then, it must be computed offline and its commit must wait
    # in the outbox (outbox.pending > 0 while the broker is down), then be verified and
    # credited once the broker is back. A node that drops work while offline fails here.
    gpus = FakeNvml.with_gpus(1)
    gpus.set_temperature(0, 95)  # hot from the start: units arrive and wait
    async with (
        running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator,
        node_for(tmp_path / "n", mosquitto.url, nvml=gpus, telemetry_interval=0.25) as node,
    ):
        store = node.store
        assert store is not None
        assert node.work_paused()

        async def held_unit() -> str | None:
            units = await store.units_to_compute(time.time())
            return units[0].task_id if units else None

        await wait_until(held_unit, what="a unit received while work is paused")
        held = await held_unit()
        assert held is not None
        mosquitto.stop()
        await wait_until(lambda: node.link is not None and node.link.state == "offline")
        snap = await node.snapshot()
        assert snap.link.state == "offline" and (snap.link.since_ts or 0) > 0
        gpus.set_temperature(0, None)

        async def committed_offline() -> bool:
            unit = await store.unit(held)
            return unit is not None and unit.status == "committed"

        await wait_until(committed_offline, what="the held unit computed while offline")
        offline = await store.work_counters()
        assert node.link is not None and node.link.state == "offline"
        assert offline["outbox.pending"] > 0, "work done offline was not queued"
        assert held in {row.task_id for row in await store.outbox()}
        mosquitto.start()

        async def settled() -> bool:
            c = await store.work_counters()
            return (
                c["work.submitted"] > offline["work.submitted"]
                and c["outbox.pending"] == 0
                and c["work.acknowledged"] == c["work.submitted"]
            )

        await wait_until(settled, within=40, what="outbox flushed after restart")
        counters = await store.work_counters()
        unit = await store.unit(held)
        assert coordinator.store is not None
        entries = await coordinator.store.entries(node.node_id, limit=10_000)
    assert unit is not None and unit.status == "accepted"
    assert held in {e.ref for e in entries}
    assert len({e.ref for e in entries}) == len(entries)
    assert counters["work.acknowledged"] == counters["work.submitted"]
