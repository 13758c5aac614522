"""Trust on first use is explicit: on a broker other than the local one, a node needs the
coordinator's key (or --trust-first-use) before it takes tasks from anyone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.api.commands import GetLog
from core.config import load_config
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_network import (
    assert_never_run,
    running_coordinator,
    unit_refused_by_node,
    wait_until,
)

pytestmark = pytest.mark.broker


def node_on(data_dir: Path, url: str, **overrides: object) -> Node:
    config = load_config(
        {"data_dir": str(data_dir), "name": "alice", "broker_url": url, **overrides}
    )
    return Node(config, nvml=FakeNvml.with_gpus(1), network_url=url, resend_interval=0.5)


async def test_an_unpinned_coordinator_on_a_remote_broker_gets_no_work(
    mosquitto: MosquittoProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="omnitensor.protocol")
    async with (
        running_coordinator(tmp_path / "coord", mosquitto.url, task_interval_s=0.2) as coordinator,
        node_on(tmp_path / "n", mosquitto.url) as node,
    ):
        assert node.link is not None and node.store is not None
        await wait_until(lambda: node.link is not None and node.link.state == "connected")

        async def refused() -> bool:
            events = (await node.command(GetLog())).events
            return any("NOT TRUSTED" in e.message for e in events)

        await wait_until(refused, what="the refusal")
        # The coordinator sent this node a unit; the node dropped it and never ran it.
        task_id = await unit_refused_by_node(coordinator, node, caplog)
        await assert_never_run(coordinator, node, task_id)
        pinned = await node.store.get_setting("coordinator_key")
        events = (await node.command(GetLog())).events
        link = node.link.view()
    assert pinned is None and link.coordinator is None
    [line] = [e.message for e in events if "NOT TRUSTED" in e.message]  # said once
    assert f"--coordinator-key {coordinator.node_id}" in line and "--trust-first-use" in line


async def test_trust_first_use_when_asked_pins_the_key(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with (
        running_coordinator(tmp_path / "coord", mosquitto.url, task_interval_s=0.2) as coordinator,
        node_on(tmp_path / "n", mosquitto.url, **{"broker.trust_first_use": True}) as node,
    ):
        store = node.store
        assert store is not None

        async def worked() -> bool:
            return (await store.work_counters())["work.acknowledged"] >= 1

        await wait_until(worked, what="a receipt")
        assert await store.get_setting("coordinator_key") == coordinator.node_id
