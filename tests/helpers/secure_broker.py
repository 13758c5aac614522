"""A Mosquitto running the shipped production config (assets/mosquitto), for the tests.

Only paths and ports are swapped: certificates from a throwaway CA made here, a password file
written by ``mosquitto_passwd``, a temp persistence dir, free loopback ports. The
``secure_network`` fixture starts it with accounts for the coordinator and two nodes.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.config import BrokerConfig
from core.datadir import prepare_data_dir
from core.identity import load_or_create_identity
from core.protocol.topics import TOPIC_PREFIX
from core.transport.mqtt import make_client
from tests.helpers.broker import MOSQUITTO_BINARY, MosquittoProcess, free_port, wait_for_port

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "mosquitto"
HOST = "127.0.0.1"
ACL_PREFIX = "omnitensor/v2"


def acl_for_tests(directory: Path) -> Path:
    """The shipped ACL, exactly as shipped: it must be on the protocol's topic prefix."""
    text = (ASSETS / "omnitensor.acl").read_text(encoding="utf-8")
    assert TOPIC_PREFIX == ACL_PREFIX, f"the ACL is for {ACL_PREFIX}, not {TOPIC_PREFIX}"
    assert ACL_PREFIX in text and "omnitensor/v1" not in text
    path = directory / "omnitensor.acl"
    path.write_text(text, encoding="utf-8")
    return path


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

    def url_for(self, account: Account, *, with_password: bool = False) -> str:
        """``mqtts://user@host:port``, or ``mqtts://user:password@host:port``."""
        user, password = quote(account.username, safe=""), quote(account.password, safe="")
        login = f"{user}:{password}" if with_password else user
        return f"mqtts://{login}@{self.host}:{self.port}"

    @property
    def plain_url(self) -> str:
        return f"mqtt://{self.host}:{self.plain_port}"

    def write_config(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        swaps = {
            "password_file": str(self.password_file),
            "acl_file": str(acl_for_tests(self.directory)),
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
