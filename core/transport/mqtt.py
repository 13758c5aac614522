"""MQTT connection helpers shared by the node and the coordinator (aiomqtt 2.x).

We use plain MQTT 3.1.1 features only (persistent sessions with clean_session=False,
retained messages, last wills, QoS 1), so any standard broker works: Mosquitto, a
Mosquitto bridge, EMQX, VerneMQ, HiveMQ, and the embedded broker of the local network.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from core.config import BrokerConfig
from core.datadir import private_token
from core.errors import ConfigError
from core.textsafe import redact_url

KEEPALIVE_S = 10
log = logging.getLogger("omnitensor.mqtt")
# aiomqtt/paho's own log: into our tree (so JSON log lines stay JSON), errors only: its
# warnings ("There are N pending publish calls") fire on every burst of receipts.
_client_log = logging.getLogger("omnitensor.mqtt.client")
_client_log.setLevel(logging.ERROR)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Where ``url`` points; ConfigError (showing the URL without credentials) when bad."""
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError:
        raise ConfigError(f"broker {redact_url(url)!r} has a bad host or port") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(
            f"broker {redact_url(url)!r} must look like mqtt://HOST:PORT or mqtts://HOST:PORT"
        )
    tls = parts.scheme == "mqtts"
    port = port_given or (8883 if tls else 1883)
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


CLIENT_ID_FILE = "mqtt-client-id"
_ROLE_RE = re.compile(r"[a-z][a-z0-9-]{0,15}")


def client_id_for(data_dir: Path, role: str) -> str:
    """This identity's MQTT client id: ``omnitensor-<role>-<128-bit random hex>``.

    Stable (a persistent session needs the same id after a restart) but unpredictable: it
    is made once and kept in ``DATA_DIR/mqtt-client-id`` (mode 0600). An id derived from the
    public key could be used by anyone to take the session over: a broker disconnects a
    client when another connects with its id.
    """
    if not _ROLE_RE.fullmatch(role):
        raise ValueError(f"bad client role {role!r}")
    return f"omnitensor-{role}-{private_token(data_dir / CLIENT_ID_FILE, 16)}"


def make_client(
    broker: BrokerConfig,
    url: str,
    *,
    identifier: str,
    will: aiomqtt.Will | None,
    max_queued_incoming: int = 10_000,
) -> aiomqtt.Client:
    """A client with a persistent session (clean_session False) under a stable identifier."""
    address = parse_broker_url(url)
    tls_params = None
    if address.tls:
        tls_params = aiomqtt.TLSParameters(
            ca_certs=str(broker.ca_file) if broker.ca_file else None,
            certfile=str(broker.cert_file) if broker.cert_file else None,
            keyfile=str(broker.key_file) if broker.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return aiomqtt.Client(
        address.host,
        address.port,
        identifier=identifier,
        username=broker.username or address.username,
        password=broker.password or address.password,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=False,
        will=will,
        keepalive=KEEPALIVE_S,
        timeout=10,
        tls_params=tls_params,
        max_queued_incoming_messages=max_queued_incoming,
        logger=_client_log,
        # paho leaves Nagle on: receipts and answers would wait ~40 ms for delayed ACKs.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


class Backoff:
    """Exponential reconnect delays with full jitter, reset after a good connection."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self._attempt)
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0


def raise_if_cancelling() -> None:
    """Re-raise a pending cancellation that an exception in cleanup has masked.

    aiomqtt's ``__aexit__`` can raise MqttError while the task is being cancelled (its
    DISCONNECT fails): without this check a reconnect loop would swallow the cancellation
    and run forever.
    """
    import asyncio

    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any], *, retry_s: float = 1.0) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a cancel gets lost.

    aiomqtt can swallow a cancellation that lands inside its connect (3.11 TaskGroups can
    too); a task that survives one cancel is cancelled again rather than waited on forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=retry_s)
    if not task.cancelled() and task.exception() is not None:
        log.warning("task %s ended with %r", task.get_name(), task.exception())
