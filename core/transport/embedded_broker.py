"""An MQTT broker that ships with the package, for the one-command local network.

It wraps ``iotcore`` (the Rust broker rumqttd, compiled into a pip wheel) run in a child
process, because rumqttd has no shutdown call: stopping means ending that process, which also
frees the port. The child also exits on its own when this process dies (it watches a pipe).

What rumqttd does and does not do, as checked by tests/integration/test_broker_behaviour.py:

* keeps retained messages, delivers last wills (also retained ones), queues QoS 1 messages for
  persistent sessions (MQTT 3.1.1 ``clean_session=False`` and MQTT 5 session expiry);
* keeps all of that in memory only: a restart loses retained messages and sessions;
* keeps each topic's messages in a ring of ``segment_count`` x ``segment_size`` bytes: a
  persistent session offline for longer than that ring holds silently misses the oldest;
* drops a client's connection, with no error to it, when a payload exceeds
  ``max_payload_size``: keep that above :data:`core.protocol.MAX_MESSAGE_BYTES`;
* checks a username and password (rumqttd 0.20's ``[v4.1.connections] auth`` table) and
  closes, with no CONNACK, a connection without them or with wrong ones. Ours is one user,
  :data:`LOCAL_USERNAME`, with a random 128-bit password, so other users of the machine
  cannot join the local network; it has no ACLs and no TLS (it listens on loopback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from core.config import BrokerConfig
from core.datadir import private_token
from core.protocol import MAX_MESSAGE_BYTES

log = logging.getLogger("omnitensor.broker")

DEFAULT_MAX_PAYLOAD_SIZE: Final = 2 * MAX_MESSAGE_BYTES
DEFAULT_SEGMENT_SIZE: Final = 8 * 1024 * 1024
DEFAULT_SEGMENT_COUNT: Final = 4
_PORT_ATTEMPTS: Final = 5
LOCAL_USERNAME: Final = "omnitensor"
_PASSWORD_BYTES: Final = 16

_CONFIG_TEMPLATE: Final = """\
# Written by OmniTensor's EmbeddedBroker; rumqttd {version} format.
id = 0

[router]
id = 0
max_connections = {max_connections}
max_outgoing_packet_count = 200
max_segment_size = {segment_size}
max_segment_count = {segment_count}

[v4.1]
name = "v4-1"
listen = "{host}:{port}"
next_connection_delay_ms = 1

[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = {max_payload_size}
max_inflight_count = 100
dynamic_filters = true
auth = {{ "{username}" = "{password}" }}
"""


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS may hand it out again: retry on clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """An MQTT 3.1.1 broker on ``host:port`` (port 0 picks a free one), in a child process.

    Use ``async with EmbeddedBroker() as broker:`` or ``await start()`` / ``await stop()``; the
    ``*_blocking`` variants are for synchronous callers (CLI, test fixtures). ``restart`` keeps
    the port but not the state (rumqttd keeps no state on disk).

    Clients log in as :attr:`username` with :attr:`password` (:meth:`client_config` gives a
    ``BrokerConfig`` holding both). The password is random: kept in ``password_file`` (mode
    0600, made on first use, for other local processes to join) or, without one, in memory.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        segment_count: int = DEFAULT_SEGMENT_COUNT,
        max_connections: int = 1000,
        start_timeout: float = 10.0,
        password_file: Path | None = None,
    ) -> None:
        if segment_size < max_payload_size:
            raise ValueError("segment_size must hold at least one maximal payload")
        self.host = host
        self._port = port
        self.max_payload_size = max_payload_size
        self.segment_size = segment_size
        self.segment_count = segment_count
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self._broker: Any = None  # iotcore.Broker (untyped)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.password_file = password_file
        self._password: str | None = None

    @property
    def username(self) -> str:
        return LOCAL_USERNAME

    @property
    def password(self) -> str:
        """The clients' password (read from, or first written to, ``password_file``)."""
        if self._password is None:
            if self.password_file is None:
                self._password = secrets.token_hex(_PASSWORD_BYTES)
            else:
                self._password = private_token(self.password_file, _PASSWORD_BYTES)
        return self._password

    def client_config(self, base: BrokerConfig | None = None) -> BrokerConfig:
        """``base`` (or defaults) with this broker's login for a client."""
        return dataclasses.replace(
            base or BrokerConfig(), username=self.username, password=self.password
        )

    @property
    def port(self) -> int:
        """The listening port (the picked one once started, when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self._port}"

    @property
    def is_running(self) -> bool:
        return self._broker is not None and bool(self._broker.is_running)

    async def start(self) -> None:
        """Start the broker and return once its port accepts connections."""
        await asyncio.to_thread(self.start_blocking)

    async def stop(self) -> None:
        """Stop the broker and free its port. Safe to call twice."""
        await asyncio.to_thread(self.stop_blocking)

    async def restart(self) -> None:
        """Stop and start again on the same port (retained messages and sessions are lost)."""
        await asyncio.to_thread(self.restart_blocking)

    def start_blocking(self) -> None:
        """:meth:`start` for synchronous callers; OSError when the port cannot be used."""
        if self.is_running:
            return
        from iotcore import Broker  # imported late: loads a 14 MB native module

        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="omnitensor-broker-")
        config = Path(self._tmp.name) / "rumqttd.toml"
        # A picked port can be taken between picking and binding: pick again a few times. Once
        # a port is in use (fixed by the caller, or picked on a first start) it stays.
        fixed = self._port != 0
        for attempt in range(1 if fixed else _PORT_ATTEMPTS):
            port = self._port if fixed else pick_free_port(self.host)
            config.touch(mode=0o600)  # it holds the password
            config.write_text(self._config(port), encoding="utf-8")
            broker = Broker(config_path=str(config))
            try:
                broker.start(timeout=self.start_timeout)
            except (OSError, RuntimeError) as exc:
                broker.stop()
                if fixed or attempt + 1 == _PORT_ATTEMPTS:
                    self._cleanup()
                    raise OSError(
                        f"embedded MQTT broker cannot listen on {self.host}:{port}: {exc}"
                    ) from exc
                log.debug("port %d unavailable (%s); picking another", port, exc)
                continue
            self._broker = broker
            self._port = port
            break
        self._wait_until_accepting()
        log.info("embedded MQTT broker listening on %s", self.url)

    def stop_blocking(self) -> None:
        """:meth:`stop` for synchronous callers."""
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.stop()
            log.info("embedded MQTT broker on %s stopped", self.url)
        self._cleanup()

    def restart_blocking(self) -> None:
        """:meth:`restart` for synchronous callers."""
        self.stop_blocking()
        self.start_blocking()

    def _wait_until_accepting(self) -> None:
        # iotcore.Broker.start already polls the port; check again so start() means "ready"
        # whatever iotcore version is installed.
        deadline = time.monotonic() + self.start_timeout
        while not port_accepts(self._connect_host, self._port):
            if time.monotonic() > deadline or not self.is_running:
                self.stop_blocking()
                raise OSError(f"embedded MQTT broker did not come up on {self.host}:{self._port}")
            time.sleep(0.02)

    @property
    def _connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def _config(self, port: int) -> str:
        return _CONFIG_TEMPLATE.format(
            version="0.20",
            host=self.host,
            port=port,
            max_connections=self.max_connections,
            segment_size=self.segment_size,
            segment_count=self.segment_count,
            max_payload_size=self.max_payload_size,
            username=self.username,
            password=self.password,
        )

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<EmbeddedBroker {self.url} {state}>"
