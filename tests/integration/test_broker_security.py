"""The production broker config (assets/mosquitto) really secures a network.

A real Mosquitto runs the shipped ``mosquitto.conf`` and ``omnitensor.acl`` with only paths
and ports swapped (``tests/helpers/secure_broker.py``: certificates from a throwaway CA, a
password file written by ``mosquitto_passwd``, free loopback ports), and we check:

1. no anonymous access, on the TLS listener and on the plain loopback one;
2. TLS: a coordinator and a node reach each other over ``mqtts://`` with per-node
   credentials and work is verified and acknowledged; clients that do not trust the CA,
   or that give a wrong password, are refused;
3. the ACLs: a node cannot publish as another node or as the coordinator (Mosquitto drops a
   denied publish silently, so a subscriber logged in as the coordinator shows what got
   through, after a marker that orders the stream), nor read another node's receipts;
4. no session takeover: a client with valid credentials of its own that connects with the
   coordinator's (or a node's) client id does not push that client off the broker;
5. no secret shows: a password from the config file never appears in status or events.

The ACL is written for protocol v2 (``omnitensor/v2``). Until the protocol's prefix is v2
too, the test copy of the ACL is moved onto the protocol's prefix (``acl_for_tests``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from core.api.commands import GetLog, GetWallet
from core.config import BrokerConfig, load_config
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.protocol import DEFAULT_TOPICS
from core.transport.mqtt import client_id_for, make_client
from tests.helpers.secure_broker import HOST, Account, SecureNetwork
from tests.integration.test_network import wait_until

pytestmark = pytest.mark.broker

# Long enough for a denied message to have overtaken the marker that was sent after it.
QUIET_WINDOW_S = 0.3


# -- helpers -----------------------------------------------------------------------------

Received = list[tuple[str, bytes]]


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    return bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()


async def receive_until(
    client: aiomqtt.Client, done: Callable[[Received], bool], within: float = 5.0
) -> Received:
    """Messages until ``done`` says so, then whatever else arrives in a short quiet window."""
    got: Received = []
    async with asyncio.timeout(within):
        async for message in client.messages:
            got.append((message.topic.value, _payload(message)))
            if done(got):
                break
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(QUIET_WINDOW_S):
            async for message in client.messages:
                got.append((message.topic.value, _payload(message)))
    return got


def _has(topic: str, payload: bytes) -> Callable[[Received], bool]:
    return lambda got: (topic, payload) in got


@contextlib.asynccontextmanager
async def running_coordinator(settings: CoordinatorSettings) -> AsyncIterator[Coordinator]:
    async with Coordinator(settings) as coordinator:
        task = asyncio.create_task(coordinator.run())
        try:
            await asyncio.wait_for(coordinator.connected.wait(), 10)
            yield coordinator
        finally:
            coordinator.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- 1. no anonymous access; 2. TLS ------------------------------------------------------


async def test_anonymous_wrong_password_and_untrusting_clients_are_refused(
    secure_network: SecureNetwork,
) -> None:
    net, ca = secure_network, secure_network.pki.ca_file
    # Anonymous, on the loopback plain listener and on the TLS one; then a known user with
    # a wrong password. Mosquitto answers all three with CONNACK "not authorised".
    refused = [
        aiomqtt.Client(HOST, net.broker.plain_port, identifier="anon-plain"),
        net.client(None, ca_file=ca),
        net.client(Account(net.alice.username, "not-the-password"), ca_file=ca),
    ]
    for client in refused:
        with pytest.raises(aiomqtt.MqttCodeError) as refusal:
            async with client:
                pass
        assert "authori" in str(refusal.value).lower()
    # Good credentials, but the client does not trust the broker's CA: another CA, or
    # the system's trust store (no ca_file). The TLS handshake fails before MQTT starts.
    with pytest.raises(aiomqtt.MqttError) as foreign:
        async with net.client(net.alice, ca_file=net.pki.foreign_ca_file):
            pass
    assert not isinstance(foreign.value, aiomqtt.MqttCodeError)
    with pytest.raises(aiomqtt.MqttError):
        async with net.client(net.alice, ca_file=None):
            pass
    # Plain MQTT against the TLS port is no way around it either.
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            HOST,
            net.broker.port,
            identifier="plain-on-tls",
            username=net.alice.username,
            password=net.alice.password,
            timeout=1,
        ):
            pass
    # The control: the same broker lets the right credentials in, over TLS and plain.
    async with net.client(net.alice, ca_file=ca) as client:
        await client.publish(DEFAULT_TOPICS.node_hello(net.alice.username), b"hi", qos=1)
    async with aiomqtt.Client(
        HOST,
        net.broker.plain_port,
        identifier="plain-coordinator",
        username=net.coordinator.username,
        password=net.coordinator.password,
    ):
        pass


async def test_node_and_coordinator_work_over_tls_with_per_node_credentials(
    secure_network: SecureNetwork, tmp_path: Path
) -> None:
    net, ca = secure_network, secure_network.pki.ca_file
    # The coordinator's credentials come from its BrokerConfig; the node's user from its
    # --broker URL and its password from a password file, as a user would run it.
    settings = CoordinatorSettings(
        data_dir=tmp_path / "coord",
        broker_url=net.broker.url,
        broker=BrokerConfig(
            ca_file=ca, username=net.coordinator.username, password=net.coordinator.password
        ),
        task_interval_s=0.2,
        unit_seconds=0.2,
        board_interval_s=0.2,
    )
    password_file = tmp_path / "alice.password"
    password_file.touch(mode=0o600)
    password_file.write_text(net.alice.password + "\n")
    config = load_config(
        {
            "data_dir": str(net.alice.data_dir),
            "name": "alice",
            "broker_url": net.broker.url_for(net.alice),
            "broker.password_file": str(password_file),
            "broker.ca_file": str(ca),
            "broker.trust_first_use": True,
        }
    )
    node_url = config.broker.url
    assert node_url == net.broker.url and config.broker.password == net.alice.password
    node = Node(config, nvml=FakeNvml.with_gpus(1), network_url=node_url, resend_interval=0.5)
    async with running_coordinator(settings) as coordinator, node:
        assert node.node_id == net.alice.username
        store = node.store
        assert store is not None

        async def two_acked() -> bool:
            return (await store.work_counters())["work.acknowledged"] >= 2

        await wait_until(two_acked, what="two receipts over TLS")
        # Requests and responses pass the ACLs too.
        wallet = await node.command(GetWallet())
        assert node.link is not None and node.link.pinned_key == coordinator.node_id
    assert wallet.balance > 0
    log = net.broker.log_path.read_text(errors="replace")
    assert f"u'{net.alice.username}'" in log and "u'coordinator'" in log


# -- 3. ACLs -----------------------------------------------------------------------------


async def test_a_node_publishes_only_under_its_own_topics(secure_network: SecureNetwork) -> None:
    net, ca, topics = secure_network, secure_network.pki.ca_file, DEFAULT_TOPICS
    alice, bob = net.alice.username, net.bob.username
    forbidden = [
        topics.node_work(bob),
        topics.node_presence(bob),
        topics.node_receipt(bob),
        f"{topics.prefix}/net/leaderboard/gpu-contributors",
        f"{topics.prefix}/net/quests",
        topics.coordinator_presence,
    ]
    marker = (topics.node_work(alice), b"marker")
    async with (
        net.client(net.coordinator, ca_file=ca) as watcher,
        net.client(net.alice, ca_file=ca) as mallory,
        net.client(net.bob, ca_file=ca) as honest,
    ):
        for topic in [topics.node_work(alice), *forbidden[:2]]:
            await watcher.subscribe(topic, qos=1)
        await watcher.subscribe(f"{topics.prefix}/net/#", qos=1)
        await watcher.subscribe(f"{topics.prefix}/coordinator/#", qos=1)
        await honest.subscribe(topics.node_receipt(bob), qos=1)
        for topic in forbidden:
            await mallory.publish(topic, b"forged", qos=1)
        await mallory.publish(*marker, qos=1)
        seen_by_coordinator = await receive_until(watcher, _has(*marker))
        # The controls: the rightful publishers do get through on the very same topics.
        legit = [
            (honest, topics.node_work(bob)),
            (honest, topics.node_presence(bob)),
            (watcher, f"{topics.prefix}/net/leaderboard/gpu-contributors"),
            (watcher, f"{topics.prefix}/net/quests"),
            (watcher, topics.coordinator_presence),
        ]
        for client, topic in legit:
            await client.publish(topic, b"legit", qos=1)
        # Bob's receipts, which the coordinator cannot read, are watched by Bob.
        await watcher.publish(topics.node_receipt(bob), b"legit", qos=1)
        seen_later = await receive_until(
            watcher, lambda got: all((t, b"legit") in got for _, t in legit)
        )
        seen_by_bob = await receive_until(honest, _has(topics.node_receipt(bob), b"legit"))
    assert seen_by_coordinator == [marker]
    assert b"forged" not in {payload for _, payload in seen_later + seen_by_bob}
    assert sorted(seen_later) == sorted((t, b"legit") for _, t in legit)


async def test_a_node_cannot_read_another_nodes_receipts(secure_network: SecureNetwork) -> None:
    net, ca, topics = secure_network, secure_network.pki.ca_file, DEFAULT_TOPICS
    alice, bob = net.alice.username, net.bob.username
    secret = [
        (topics.node_receipt(bob), b"secret"),
        (topics.node_task(bob), b"secret"),
        (topics.node_response(bob), b"secret"),
    ]
    marker = (topics.node_receipt(alice), b"marker")
    async with (
        net.client(net.coordinator, ca_file=ca) as coordinator,
        net.client(net.alice, ca_file=ca) as snoop,
        net.client(net.bob, ca_file=ca) as owner,
    ):
        # Every way in: the exact topics, a wildcard over all nodes, and everything.
        for topic in [
            topics.node_receipt(bob),
            f"{topics.prefix}/node/{bob}/#",
            f"{topics.prefix}/node/+/receipt",
            "#",
        ]:
            await snoop.subscribe(topic, qos=1)
        await owner.subscribe(f"{topics.prefix}/node/{bob}/#", qos=1)
        for topic, payload in [*secret, marker]:
            await coordinator.publish(topic, payload, qos=1)
        seen_by_snoop = await receive_until(snoop, _has(*marker))
        # The control: the rightful owner does receive them.
        seen_by_owner = await receive_until(owner, lambda got: all(item in got for item in secret))
    assert set(seen_by_snoop) == {marker}
    assert sorted(seen_by_owner) == sorted(secret)


async def test_the_node_does_not_show_the_password_from_its_broker_url(
    secure_network: SecureNetwork, tmp_path: Path
) -> None:
    net = secure_network
    # Accepted from a private config file (never from --broker), and never shown.
    config_file = tmp_path / "config.toml"
    config_file.touch(mode=0o600)
    config_file.write_text(
        f'[broker]\nurl = "{net.broker.url_for(net.alice, with_password=True)}"\n'
        f'ca_file = "{net.pki.ca_file}"\n'
    )
    config = load_config({"data_dir": str(net.alice.data_dir), "config_file": str(config_file)})
    assert config.broker.url == net.broker.url
    async with Node(config, nvml=FakeNvml.with_gpus(1), network_url=config.broker.url) as node:
        await wait_until(
            lambda: node.link is not None and node.link.state == "connected", what="connect"
        )
        snap = await node.snapshot()
        events = await node.command(GetLog())
    assert snap.link.broker == net.broker.url
    assert net.alice.password not in repr(snap)
    assert net.alice.password not in repr(events)
    assert net.alice.password not in repr(config)


# -- 4. no session takeover --------------------------------------------------------------


async def test_nobody_takes_over_the_coordinators_session(
    secure_network: SecureNetwork, tmp_path: Path
) -> None:
    """Attackers with credentials of their own connect again and again with the coordinator's
    client id (even if they learnt it) and with the node's: nobody is pushed off the broker.

    Mosquitto replaces each client id with the username (use_username_as_clientid), so the
    attacker only ever reuses its own session. Without that line in mosquitto.conf each of
    these connects would disconnect the coordinator ("already connected, closing old").
    """
    net, ca = secure_network, secure_network.pki.ca_file
    settings = CoordinatorSettings(
        data_dir=tmp_path / "coord",
        broker_url=net.broker.url,
        broker=BrokerConfig(
            ca_file=ca, username=net.coordinator.username, password=net.coordinator.password
        ),
        board_interval_s=0.2,
    )
    async with running_coordinator(settings) as coordinator:
        coordinator_id = client_id_for(settings.data_dir, "coordinator")
        drops = 0

        async def watch() -> None:
            nonlocal drops
            while True:
                if not coordinator.session.is_up:
                    drops += 1
                    await coordinator.connected.wait()
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            for identifier in [coordinator_id, "coordinator", net.alice.username] * 3:
                attacker = make_client(
                    BrokerConfig(ca_file=ca, username=net.bob.username, password=net.bob.password),
                    net.broker.url,
                    identifier=identifier,
                    will=None,
                )
                async with attacker:
                    await attacker.publish(DEFAULT_TOPICS.node_hello(net.bob.username), b"x")
            # The username itself needs its password: the broker says "not authorised".
            with pytest.raises(aiomqtt.MqttCodeError, match=r"(?i)authori"):
                async with make_client(
                    BrokerConfig(ca_file=ca, username="coordinator", password="guess"),
                    net.broker.url,
                    identifier=coordinator_id,
                    will=None,
                ):
                    pass
            await asyncio.sleep(0.5)  # a dropped coordinator would show by now
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert coordinator.session.is_up
    assert drops == 0
    log = net.broker.log_path.read_text(errors="replace")
    assert "already connected, closing old connection" not in log
    # The broker did see the attacker ask for the coordinator's id, and gave it its own.
    assert f"as {net.bob.username}" in log
