"""Attacks on who the coordinator is (issue 9, attacks 6 and 7): an impostor's retained
presence and oversized task, and a session takeover by client id."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import aiomqtt
import pytest

from core.api.commands import GetLog
from core.config import load_config
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.protocol import DEFAULT_TOPICS, Presence, TaskUnit
from tests.adversarial.conftest import Hostile, Network
from tests.integration.test_network import wait_until

pytestmark = pytest.mark.broker


async def test_an_impostor_coordinator_is_not_pinned_and_its_work_never_runs(
    network: Network, tmp_path: Path
) -> None:
    """Attack 6: a retained coordinator/presence signed by another key, then a huge task."""
    broker = network.broker
    async with Hostile(broker.port) as impostor:
        # The impostor's presence, retained, where a fresh node looks for its coordinator.
        await impostor.send(DEFAULT_TOPICS.coordinator_presence, Presence(online=True), retain=True)
        config = load_config({"data_dir": str(tmp_path / "fresh"), "broker_url": broker.url})
        node = Node(config, nvml=FakeNvml.with_gpus(1), network_url=broker.url)
        async with node:
            assert node.store is not None and node.link is not None

            async def refused() -> bool:
                return any(
                    "NOT TRUSTED" in e.message for e in (await node.command(GetLog())).events
                )

            await wait_until(refused, what="the impostor refused")
            # A 2^18 x 2^18 x 2^20 unit from the impostor: never accepted, never computed.
            huge = TaskUnit(
                task_id="huge",
                recipient=node.node_id,
                purpose="work",
                seed=secrets.token_hex(32),
                m=1 << 18,
                n=1 << 18,
                k=1 << 20,
                block=8,
                issued_ts=time.time(),
                deadline_ts=time.time() + 3600,
            )
            await impostor.send(DEFAULT_TOPICS.node_task(node.node_id), huge)
            await asyncio.sleep(1.0)
            assert await node.store.unit("huge") is None
            assert (await node.store.work_counters())["work.submitted"] == 0
            assert node.link.pinned_key is None


async def test_the_coordinators_client_id_cannot_be_guessed(network: Network) -> None:
    """Attack 7: connect with the coordinator's (once predictable) client id."""
    coordinator = network.coordinator
    client_id = coordinator.session.settings.client_id
    assert coordinator.node_id[:16] not in client_id  # not derived from its public key
    guessed = f"omnitensor-coordinator-{coordinator.node_id[:16]}"
    before = coordinator.stats.copy()
    async with aiomqtt.Client("127.0.0.1", network.broker.port, identifier=guessed):
        await asyncio.sleep(1.0)
    # The coordinator's session was never taken over: still up, still answering.
    assert coordinator.session.is_up
    from core.api.commands import Ping

    pong = await network.honest.command(Ping())
    assert pong.coordinator == coordinator.node_id
    assert coordinator.stats["verified"] >= before["verified"]
