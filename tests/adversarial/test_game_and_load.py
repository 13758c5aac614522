"""Attacks on the game and on the coordinator itself (issue 9, attacks 3, 5a, 5b, 9).

Sybil identities farming quests, a request flood from one identity, a flood of ghost
registrations, and display names that try to forge terminal output.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from core.api.commands import GetLeaderboard, Ping
from core.identity import Identity
from core.protocol import Response
from tests.adversarial.conftest import Hostile, Network

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


async def test_sybil_identities_earn_nothing_from_quests(network: Network) -> None:
    """Attack 3: fresh keys claim the benchmark quest (and report a 'verified' benchmark)."""
    paid = 0
    for _ in range(5):
        async with Hostile(network.broker.port) as sybil:
            await sybil.hello(claimed_tflops=2000.0)
            # The old trick: a self-reported verified benchmark. No such method any more.
            report = await sybil.request("bench.report", verified=True, tflops=2_000_000)
            assert not report.ok and "unknown method" in report.error
            quests = (await sybil.request("quests")).result_as(dict)["quests"]
            bench = next(q for q in quests if q["action"] == "bench")
            assert (await sybil.request("quest.accept", id=bench["id"])).ok
            # A benchmark unit, computed honestly: the quest completes...
            assert (await sybil.request("bench.challenge")).ok
            seen: set[str] = set()
            while True:
                task = await sybil.next_unit(seen)
                seen.add(task.task_id)
                await sybil.do_unit(task)
                if task.purpose == "benchmark":
                    break
            claim = await sybil.request("quest.claim", id=bench["id"])
            # ...but a fresh identity has no record of verified work: nothing is paid.
            assert not claim.ok and "verified work units on record" in claim.error
            store = network.coordinator.state.store
            paid += sum(e.amount for e in await store.entries(sybil.node_id) if e.kind == "quest")
    assert paid == 0


_FLOOD = """
import asyncio, sys
import aiomqtt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from core.api.commands import GetLeaderboard, Ping
from core.identity import Identity
from core.protocol import Response
from core.protocol import DEFAULT_TOPICS, Request, encode

async def main():
    port, pem = int(sys.argv[1]), sys.argv[2].encode()
    me = Identity(load_pem_private_key(pem, password=None))
    topic = DEFAULT_TOPICS.node_request(me.node_id)
    wires = [
        encode(me, 10 + i, Request.TYPE, Request(request_id=f"f{i}", method="wallet", params={}))
        for i in range(5000)
    ]
    async with aiomqtt.Client("127.0.0.1", port, identifier="flooder") as client:
        print("ready", flush=True)
        for wire in wires:
            await client.publish(topic, wire, qos=1)
    print("done", flush=True)

asyncio.run(main())
"""


async def test_a_request_flood_from_one_identity_does_not_slow_others(network: Network) -> None:
    """Attack 5a: 5,000 requests from one identity; another node's ping stays fast."""
    async with Hostile(network.broker.port) as flooder:
        await flooder.hello()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _FLOOD,
            str(network.broker.port),
            flooder.identity.to_pem().decode(),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"ready"
        await asyncio.sleep(0.5)  # the flood is arriving
        latencies = []
        for _ in range(3):
            started = time.monotonic()
            pong = await network.honest.command(Ping())
            latencies.append(time.monotonic() - started)
            assert pong.coordinator == network.coordinator.node_id
        assert (await process.stdout.readline()).strip() == b"done"
        await process.wait()
        await asyncio.sleep(1.0)
        answers = flooder.received(Response)
    assert max(latencies) < 2.0, latencies
    # Most of the flood was refused cheaply: far fewer answers than requests.
    assert len(answers) < 500
    assert any("rate limited" in r.error for r in answers)


async def test_ghost_registrations_get_little_work_and_then_none(network: Network) -> None:
    """Attack 5b: thousands of hellos without a last will, then silence."""
    coordinator = network.coordinator
    async with Hostile(network.broker.port) as carrier:
        ghosts = [Identity.generate() for _ in range(1000)]
        assert carrier._client is not None
        registered_at = time.monotonic()
        for ghost in ghosts:
            fake = Hostile(network.broker.port, ghost)
            fake._client = carrier._client
            await fake.hello(name="ghost")
        await asyncio.sleep(2.0)
        ghost_ids = {g.node_id for g in ghosts}
        store = coordinator.state.store
        # New identities register at a bounded rate (5/s, burst 50), not 1,000 at once.
        known = [n for n in ghost_ids if n in coordinator.state.nodes]
        assert len(known) <= 50 + 5 * (time.monotonic() - registered_at) + 5
        # Silent past ghost_after_s: no more units for any of them.
        await asyncio.sleep(coordinator.settings.ghost_after_s + 1.0)
        before = len([u for u in await store.open_units() if u.node_id in ghost_ids])
        await asyncio.sleep(3.0)
        later = [
            u
            for u in await store.open_units()
            if u.node_id in ghost_ids and u.issued_ts > time.time() - 2.5
        ]
        assert later == [], "units still issued to silent ghosts"
        assert before <= len(known)  # at most one open unit each


async def test_display_names_cannot_carry_control_characters(network: Network) -> None:
    """Attack 9: a name with ESC sequences and a newline, to forge leaderboard lines."""
    forged = "x\x1b]0;owned\x07\n1. honest - 999999 OMNIT"
    async with Hostile(network.broker.port) as forger:
        # Hand-built: our own encoder refuses to sign such a hello at all.
        await forger.send_raw(
            f"omnitensor/v2/node/{forger.node_id}/hello",
            "hello",
            {
                "name": forged,
                "version": "0",
                "backend": "x",
                "device": "x",
                "gpus": [],
                "claimed_tflops": 0.0,
            },
        )
        await asyncio.sleep(1.5)
    # Dropped as a bad payload: never registered, never on a board.
    assert forger.node_id not in network.coordinator.state.nodes
    board = await network.honest.command(GetLeaderboard(category="gpu-contributors"))
    assert all(e.name.isprintable() for e in board.entries)
