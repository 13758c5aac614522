"""The production broker config (assets/mosquitto) really secures a network.

A real Mosquitto runs the shipped ``mosquitto.conf`` and ``omnitensor.acl`` with only paths
and ports swapped (certificates from a throwaway CA made here, a password file written by
``mosquitto_passwd``, a temp persistence dir, free loopback ports), and we check:

1. no anonymous access, on the TLS listener and on the plain loopback one;
2. TLS: a coordinator and a node reach each other over ``mqtts://`` with per-node
   credentials and work is verified and acknowledged; clients that do not trust the CA,
   or that give a wrong password, are refused;
3. the ACLs: a node cannot publish as another node or as the coordinator (Mosquitto drops a
   denied publish silently, so a subscriber logged in as the coordinator shows what got
   through, after a marker that orders the stream), nor read another node's receipts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import getpass
import ipaddress
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.api.commands import GetLog, GetWallet
from core.config import BrokerConfig, load_config
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.datadir import prepare_data_dir
from core.identity import load_or_create_identity
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.protocol import DEFAULT_TOPICS
from core.transport.mqtt import make_client
from tests.helpers.broker import MOSQUITTO_BINARY, MosquittoProcess, free_port, wait_for_port
from tests.integration.test_network import wait_until

pytestmark = pytest.mark.broker

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "mosquitto"
HOST = "127.0.0.1"
# Long enough for a denied message to have overtaken the marker that was sent after it.
QUIET_WINDOW_S = 0.3


def _find_mosquitto_passwd() -> str | None:
    found = shutil.which("mosquitto_passwd")
    if found:
        return found
    if MOSQUITTO_BINARY is not None:
        beside = Path(MOSQUITTO_BINARY).with_name("mosquitto_passwd")
        if beside.exists():
            return str(beside)
    return None


# -- a throwaway PKI ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    foreign_ca_file: Path  # a CA that did not sign the server's certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True)
    ca_key, ca_cert = _make_ca("OmniTensor test CA")
    server_key, server_cert = _make_server_cert(ca_key, ca_cert)
    _, foreign_cert = _make_ca("Some other CA")
    pem = serialization.Encoding.PEM
    pki = Pki(
        ca_file=directory / "ca.crt",
        cert_file=directory / "server.crt",
        key_file=directory / "server.key",
        foreign_ca_file=directory / "foreign-ca.crt",
    )
    pki.ca_file.write_bytes(ca_cert.public_bytes(pem))
    pki.cert_file.write_bytes(server_cert.public_bytes(pem))
    pki.foreign_ca_file.write_bytes(foreign_cert.public_bytes(pem))
    pki.key_file.touch(mode=0o600)
    pki.key_file.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


# -- accounts and the broker -------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass(frozen=True)
class NodeAccount(Account):
    data_dir: Path


def make_node_account(data_dir: Path) -> NodeAccount:
    """A node's data dir with its identity: the MQTT username is the node id."""
    prepare_data_dir(data_dir)
    identity, _ = load_or_create_identity(data_dir)
    return NodeAccount(identity.node_id, secrets.token_urlsafe(16), data_dir)


def write_password_file(path: Path, accounts: list[Account]) -> None:
    tool = _find_mosquitto_passwd()
    if tool is None:
        pytest.skip("mosquitto_passwd not found (apt install mosquitto)")
    for index, account in enumerate(accounts):
        create = ["-c"] if index == 0 else []
        subprocess.run(
            [tool, *create, "-b", str(path), account.username, account.password],
            check=True,
            capture_output=True,
        )


class ProductionMosquitto(MosquittoProcess):
    """assets/mosquitto/mosquitto.conf + omnitensor.acl, with only paths and ports swapped.

    ``port`` is the TLS listener (8883 in production), ``plain_port`` the loopback one (1883).
    """

    def __init__(self, directory: Path, pki: Pki, password_file: Path) -> None:
        super().__init__(directory, host=HOST)
        self.pki = pki
        self.password_file = password_file
        self.plain_port = free_port(HOST)

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def url_for(self, account: Account) -> str:
        """``mqtts://user:password@host:port``: credentials in the URL's userinfo."""
        user, password = quote(account.username, safe=""), quote(account.password, safe="")
        return f"mqtts://{user}:{password}@{self.host}:{self.port}"

    @property
    def plain_url(self) -> str:
        return f"mqtt://{self.host}:{self.plain_port}"

    def write_config(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        swaps = {
            "password_file": str(self.password_file),
            "acl_file": str(ASSETS / "omnitensor.acl"),
            # mosquitto wants the trailing slash: it concatenates the file name.
            "persistence_location": f"{self.persistence_dir}/",
            "cafile": str(self.pki.ca_file),
            "certfile": str(self.pki.cert_file),
            "keyfile": str(self.pki.key_file),
        }
        ports = [self.port, self.plain_port]
        seen: set[str] = set()
        lines: list[str] = []
        for line in (ASSETS / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
            words = line.split()
            directive = words[0] if words and not words[0].startswith("#") else ""
            if directive == "listener":
                # The TLS listener binds every interface in production; here loopback only.
                lines.append(f"listener {ports.pop(0)} {words[2] if len(words) > 2 else HOST}")
            elif directive in swaps:
                lines.append(f"{directive} {swaps[directive]}")
                seen.add(directive)
            else:
                lines.append(line)
        # If the shipped config changes shape, this test must be looked at again.
        assert seen == set(swaps), f"not in mosquitto.conf: {set(swaps) - seen}"
        assert not ports, "mosquitto.conf no longer has a TLS and a plain listener"
        lines += [
            "",
            "# Added for the test:",
            # Started as root, mosquitto 2 switches to the "mosquitto" user, which cannot
            # read our temp dir: stay who we are (ignored when not root).
            f"user {getpass.getuser()}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        super().start()  # waits for the TLS listener, which mosquitto opens first
        wait_for_port(self.host, self.plain_port, self.start_timeout)


@dataclass(frozen=True)
class SecureNetwork:
    broker: ProductionMosquitto
    pki: Pki
    coordinator: Account
    alice: NodeAccount
    bob: NodeAccount

    def client(self, account: Account | None, *, ca_file: Path | None = None) -> aiomqtt.Client:
        """A TLS client (through the project's ``make_client``) trusting ``ca_file``."""
        broker = BrokerConfig(
            ca_file=ca_file,
            username=account.username if account else None,
            password=account.password if account else None,
        )
        name = account.username[:12] if account else "anonymous"
        return make_client(
            broker, self.broker.url, identifier=f"test-{name}-{secrets.token_hex(4)}", will=None
        )


@pytest.fixture
def secure_network(tmp_path: Path) -> Iterator[SecureNetwork]:
    if MOSQUITTO_BINARY is None:
        pytest.skip("mosquitto binary not found (apt install mosquitto)")
    pki = make_pki(tmp_path / "pki")
    coordinator = Account("coordinator", secrets.token_urlsafe(16))
    # Short data dirs: a node's control socket path must stay under ~107 bytes.
    alice, bob = make_node_account(tmp_path / "a"), make_node_account(tmp_path / "b")
    password_file = tmp_path / "omnitensor.passwd"
    write_password_file(password_file, [coordinator, alice, bob])
    broker = ProductionMosquitto(tmp_path / "mosquitto", pki, password_file)
    broker.start()
    try:
        yield SecureNetwork(broker, pki, coordinator, alice, bob)
    finally:
        broker.stop()


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
    # The coordinator's credentials come from its BrokerConfig; the node's from its URL.
    settings = CoordinatorSettings(
        data_dir=tmp_path / "coord",
        broker_url=net.broker.url,
        broker=BrokerConfig(
            ca_file=ca, username=net.coordinator.username, password=net.coordinator.password
        ),
        task_interval_s=0.2,
        task_n=64,
        board_interval_s=0.2,
    )
    node_url = net.broker.url_for(net.alice)
    config = load_config(
        {
            "data_dir": str(net.alice.data_dir),
            "name": "alice",
            "broker_url": node_url,
            "broker.ca_file": str(ca),
        }
    )
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
    secure_network: SecureNetwork,
) -> None:
    net = secure_network
    url = net.broker.url_for(net.alice)
    config = load_config(
        {
            "data_dir": str(net.alice.data_dir),
            "broker_url": url,
            "broker.ca_file": str(net.pki.ca_file),
        }
    )
    async with Node(config, nvml=FakeNvml.with_gpus(1), network_url=url) as node:
        await wait_until(
            lambda: node.link is not None and node.link.state == "connected", what="connect"
        )
        snap = await node.snapshot()
        events = await node.command(GetLog())
    assert net.alice.password not in repr(snap)
    assert net.alice.password not in repr(events)
