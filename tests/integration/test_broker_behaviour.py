"""The broker behaviours the network relies on, checked against mosquitto and the embedded broker.

Each test runs on both brokers (``any_broker``) with aiomqtt 2.5 clients. The network speaks
MQTT 3.1.1: persistent sessions are ``clean_session=False`` with a stable client id. MQTT 5
(``clean_start=False`` plus a session expiry) is checked on mosquitto only, because rumqttd
serves MQTT 5 on a separate listener port and the embedded broker opens only the 3.1.1 one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.config import BrokerConfig
from core.errors import DataDirError
from core.identity import Identity
from core.protocol import (
    DEFAULT_TOPICS,
    InboundFilter,
    Message,
    Presence,
    SequenceCounter,
    WorkProof,
    encode,
    presence_messages,
)
from core.transport.embedded_broker import EmbeddedBroker
from core.transport.mqtt import cancel_and_wait, client_id_for
from core.transport.session import PeerSession, SessionSettings
from tests.helpers.broker import BrokerHandle, MosquittoProcess

TIMEOUT = 5.0

# A node process that connects with a last will, announces itself and then waits to be killed.
_WILL_CLIENT = """
import asyncio, base64, os, sys
import aiomqtt

async def main():
    host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    online, offline = base64.b64decode(sys.argv[4]), base64.b64decode(sys.argv[5])
    will = aiomqtt.Will(topic, offline, qos=1, retain=True)
    # The login comes in the environment: a command line shows in `ps`.
    login = {"username": os.environ.get("TEST_MQTT_USER") or None,
             "password": os.environ.get("TEST_MQTT_PASS") or None}
    async with aiomqtt.Client(host, port, identifier="doomed-node", will=will, **login) as client:
        await client.publish(topic, online, qos=1, retain=True)
        print("ready", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@asynccontextmanager
async def connect(
    broker: BrokerHandle, identifier: str, **kwargs: Any
) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=identifier,
        timeout=TIMEOUT,
        username=broker.username,
        password=broker.password,
        **kwargs,
    ) as client:
        yield client


def session_options(protocol: str) -> dict[str, Any]:
    """Client options for a session that outlives the connection."""
    if protocol == "5":
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
        properties.SessionExpiryInterval = 300
        return {
            "protocol": aiomqtt.ProtocolVersion.V5,
            "clean_start": False,
            "properties": properties,
        }
    return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}


def payload_of(message: aiomqtt.Message) -> bytes:
    assert isinstance(message.payload, bytes | bytearray), type(message.payload)
    return bytes(message.payload)


async def collect(
    client: aiomqtt.Client, count: int, within: float = TIMEOUT
) -> list[aiomqtt.Message]:
    """The next ``count`` messages; fails the test when they do not all arrive in time."""
    got: list[aiomqtt.Message] = []
    try:
        async with asyncio.timeout(within):
            async for message in client.messages:
                got.append(message)
                if len(got) == count:
                    break
    except TimeoutError:
        pytest.fail(f"received {len(got)} of {count} messages: {[str(m.topic) for m in got]}")
    return got


async def nothing_arrives(client: aiomqtt.Client, wait: float = 0.3) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    try:
        async with asyncio.timeout(wait):
            async for message in client.messages:
                got.append(message)
    except TimeoutError:
        pass
    return got


def node_filter() -> InboundFilter:
    # A coordinator-side filter: node topics are only accepted from the node that owns them.
    return InboundFilter()


async def test_retained_message_reaches_late_subscriber(any_broker: BrokerHandle) -> None:
    node = Identity.generate()
    seqs = SequenceCounter()
    topic = DEFAULT_TOPICS.node_presence(node.node_id)
    online = encode(node, seqs.next(), Presence.TYPE, Presence(online=True))
    async with connect(any_broker, "publisher") as pub:
        await pub.publish(topic, online, qos=1, retain=True)

    async with connect(any_broker, "late-subscriber") as sub:
        await sub.subscribe(DEFAULT_TOPICS.any_node("presence"), qos=1)
        [message] = await collect(sub, 1)
    assert message.retain
    assert str(message.topic) == topic
    received = node_filter().receive(payload_of(message), topic=topic, retained=True)
    assert received is not None
    assert received.expect(Presence).online


async def test_empty_retained_message_clears_it(any_broker: BrokerHandle) -> None:
    async with connect(any_broker, "publisher") as pub:
        await pub.publish("t/state/a", b"a", qos=1, retain=True)
        await pub.publish("t/state/b", b"b", qos=1, retain=True)
        await pub.publish("t/state/a", b"", qos=1, retain=True)

    async with connect(any_broker, "late-subscriber") as sub:
        await sub.subscribe("t/state/#", qos=1)
        [message] = await collect(sub, 1)
        assert str(message.topic) == "t/state/b"
        assert await nothing_arrives(sub) == []


async def test_last_will_is_delivered_when_a_client_dies(
    any_broker: BrokerHandle, tmp_path: Path
) -> None:
    node = Identity.generate()
    topic = DEFAULT_TOPICS.node_presence(node.node_id)
    online, offline = presence_messages(node, SequenceCounter(tmp_path / "seq"))
    inbound = node_filter()

    async with connect(any_broker, "watcher") as watcher:
        await watcher.subscribe(topic, qos=1)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WILL_CLIENT,
            any_broker.host,
            str(any_broker.port),
            topic,
            base64.b64encode(online).decode(),
            base64.b64encode(offline).decode(),
            stdout=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "TEST_MQTT_USER": any_broker.username or "",
                "TEST_MQTT_PASS": any_broker.password or "",
            },
        )
        try:
            assert child.stdout is not None
            async with asyncio.timeout(TIMEOUT):
                assert await child.stdout.readline() == b"ready\n"
            [first] = await collect(watcher, 1)
            msg = inbound.receive(payload_of(first), topic=topic, retained=first.retain)
            assert msg is not None and msg.expect(Presence).online

            # No DISCONNECT packet: the process vanishes and the kernel closes its socket.
            os.kill(child.pid, signal.SIGKILL)
            [will] = await collect(watcher, 1)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
    assert payload_of(will) == offline
    msg = inbound.receive(payload_of(will), topic=topic, retained=will.retain)
    assert msg is not None, "the connect-time signed will must pass the replay filter"
    assert not msg.expect(Presence).online

    # The will was retained: a console starting now sees the node as offline.
    async with connect(any_broker, "late-watcher") as late:
        await late.subscribe(topic, qos=1)
        [retained] = await collect(late, 1)
    assert retained.retain and payload_of(retained) == offline
    assert inbound.receive(payload_of(retained), topic=topic, retained=True) is not None


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_persistent_session_gets_messages_published_while_away(
    any_broker: BrokerHandle, protocol: str
) -> None:
    if protocol == "5" and any_broker.name == "embedded":
        pytest.skip("the embedded broker listens for MQTT 3.1.1 only (rumqttd needs a 2nd port)")
    options = session_options(protocol)
    async with connect(any_broker, "persistent-node", **options) as node:
        await node.subscribe("t/inbox", qos=1)

    async with connect(any_broker, "sender") as sender:
        for i in range(5):
            await sender.publish("t/inbox", f"m{i}".encode(), qos=1)

    # Reconnect without subscribing again: the session remembers the subscription and queue.
    async with connect(any_broker, "persistent-node", **options) as node:
        got = await collect(node, 5)
    assert [payload_of(m) for m in got] == [f"m{i}".encode() for i in range(5)]
    assert all(m.qos == 1 for m in got)


async def test_qos1_delivers_full_size_signed_results_in_order(any_broker: BrokerHandle) -> None:
    node = Identity.generate()
    seqs = SequenceCounter()
    topic = DEFAULT_TOPICS.node_work(node.node_id)
    sent = []
    for i in range(10):
        result = WorkProof(
            task_id=f"t{i}",
            root="ab" * 32,
            proof_b64=base64.b64encode(os.urandom(60_000)).decode(),
        )
        sent.append(encode(node, seqs.next(), WorkProof.TYPE, result))
    inbound = node_filter()

    async with connect(any_broker, "coordinator") as coordinator:
        await coordinator.subscribe(DEFAULT_TOPICS.any_node("work"), qos=1)
        async with connect(any_broker, "node") as pub:
            for payload in sent:
                await pub.publish(topic, payload, qos=1)
        got = await collect(coordinator, len(sent))
    assert [payload_of(m) for m in got] == sent
    assert all(m.qos == 1 for m in got)
    accepted = [inbound.receive(payload_of(m), topic=str(m.topic)) for m in got]
    assert [m.expect(WorkProof).task_id for m in accepted if m] == [f"t{i}" for i in range(10)]


async def test_clients_reconnect_after_a_restart_on_the_same_port(
    any_broker: BrokerHandle,
) -> None:
    async with connect(any_broker, "before") as client:
        await client.publish("t/x", b"1", qos=1)
    await any_broker.arestart()
    async with connect(any_broker, "sub-after") as sub:
        await sub.subscribe("t/x", qos=1)
        async with connect(any_broker, "pub-after") as pub:
            await pub.publish("t/x", b"2", qos=1)
        [message] = await collect(sub, 1)
    assert payload_of(message) == b"2"


@pytest.mark.broker
async def test_mosquitto_keeps_sessions_and_retained_across_restart(
    mosquitto: MosquittoProcess,
) -> None:
    broker = BrokerHandle(
        "mosquitto", mosquitto.host, mosquitto.port, persistent=True, restart=mosquitto.restart
    )
    options = session_options("3.1.1")
    async with connect(broker, "persistent-node", **options) as node:
        await node.subscribe("t/inbox", qos=1)
    async with connect(broker, "sender") as sender:
        await sender.publish("t/state", b"kept", qos=1, retain=True)
        for i in range(3):
            await sender.publish("t/inbox", f"m{i}".encode(), qos=1)

    await broker.arestart()

    async with connect(broker, "persistent-node", **options) as node:
        got = await collect(node, 3)
    assert [payload_of(m) for m in got] == [b"m0", b"m1", b"m2"]
    async with connect(broker, "late") as late:
        await late.subscribe("t/state", qos=1)
        [state] = await collect(late, 1)
    assert state.retain and payload_of(state) == b"kept"


async def test_embedded_broker_context_manager_picks_a_free_port() -> None:
    async with EmbeddedBroker() as broker:
        assert broker.is_running and broker.port > 0
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            timeout=TIMEOUT,
            username=broker.username,
            password=broker.password,
        ) as client:
            await client.subscribe("t/ping", qos=1)
            await client.publish("t/ping", b"pong", qos=1)
            [message] = await collect(client, 1)
        assert payload_of(message) == b"pong"
    assert not broker.is_running


def test_embedded_broker_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = EmbeddedBroker(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="cannot listen"):
            broker.start_blocking()
        assert not broker.is_running


async def test_embedded_broker_lets_in_only_its_password(tmp_path: Path) -> None:
    """The local network is not open to every user of the machine: rumqttd checks logins."""
    password_file = tmp_path / "broker-password"
    async with EmbeddedBroker(password_file=password_file, start_timeout=5) as broker:
        username, password = broker.username, broker.password
        refused: list[tuple[str | None, str | None]] = [
            (None, None),
            (username, "not-the-password"),
            ("someone-else", password),
            (username, None),
        ]
        for user, secret in refused:
            # rumqttd closes the connection without a CONNACK: the connect times out.
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    broker.host, broker.port, timeout=1, username=user, password=secret
                ):
                    pass
        # The control: the right login gets in and works.
        async with aiomqtt.Client(
            broker.host, broker.port, timeout=TIMEOUT, username=username, password=password
        ) as client:
            await client.subscribe("t/ping", qos=1)
            await client.publish("t/ping", b"pong", qos=1)
            [message] = await collect(client, 1)
        assert payload_of(message) == b"pong"
    # The password is random, 128 bits, kept private, and the same on the next start.
    assert len(password) == 32 and int(password, 16) >= 0
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text().strip() == password
    assert EmbeddedBroker(password_file=password_file).password == password
    assert EmbeddedBroker().password != EmbeddedBroker().password


def test_embedded_broker_refuses_a_password_file_others_can_read(tmp_path: Path) -> None:
    password_file = tmp_path / "broker-password"
    password_file.write_text("ab" * 16 + "\n")
    password_file.chmod(0o644)
    broker = EmbeddedBroker(password_file=password_file)
    with pytest.raises(DataDirError, match=r"open to other users \(mode 0644\); run: chmod 600"):
        broker.start_blocking()
    assert not broker.is_running


async def test_project_session_gets_messages_published_while_it_was_away(
    any_broker: BrokerHandle, tmp_path: Path
) -> None:
    # The project's own client (PeerSession over make_client), not a raw aiomqtt client: a
    # node that stops, or loses its connection, must find the tasks and receipts sent in
    # the meantime when it comes back with the same client id (and, on mosquitto, after a
    # broker restart too).
    node, coordinator = Identity.generate(), Identity.generate()
    inbox = DEFAULT_TOPICS.node_task(node.node_id)
    settings = SessionSettings(
        url=any_broker.url,
        broker=BrokerConfig(username=any_broker.username, password=any_broker.password),
        client_id=client_id_for(tmp_path, "node"),
        presence_topic=DEFAULT_TOPICS.node_presence(node.node_id),
        subscriptions=[inbox],
    )
    received: list[Message] = []
    arrived = asyncio.Event()

    async def on_message(message: Message, topic: str, retained: bool) -> None:
        assert topic == inbox and not retained
        received.append(message)
        if len(received) == 3:
            arrived.set()

    async def session_run() -> asyncio.Task[None]:
        session = PeerSession(
            settings, node, SequenceCounter(tmp_path / "seq"), on_message=on_message
        )
        task = asyncio.create_task(session.run())
        await asyncio.wait_for(session.connected.wait(), TIMEOUT)
        return task

    first = await session_run()
    await cancel_and_wait(first)  # a clean DISCONNECT: only a persistent session survives it

    seqs = SequenceCounter()
    sent = [seqs.next() for _ in range(3)]
    async with connect(any_broker, "coordinator") as sender:
        for seq in sent:
            payload = encode(coordinator, seq, Presence.TYPE, Presence(online=True))
            await sender.publish(inbox, payload, qos=1)
    if any_broker.persistent:
        await any_broker.arestart()

    second = await session_run()
    try:
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{len(received)} of 3 messages sent while the session was away arrived")
    finally:
        await cancel_and_wait(second)
    assert [(m.sender, m.seq) for m in received] == [(coordinator.node_id, s) for s in sent]
