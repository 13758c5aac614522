"""Real MQTT brokers for tests: a throwaway mosquitto process and the embedded broker.

Import the fixtures from a conftest (``from tests.broker import any_broker, ...``). Tests that
take ``mosquitto`` directly should carry ``@pytest.mark.broker``; ``any_broker`` marks its
mosquitto case itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.transport.embedded_broker import EmbeddedBroker

__all__ = [
    "MOSQUITTO_BINARY",
    "BrokerHandle",
    "MosquittoProcess",
    "any_broker",
    "embedded_broker",
    "free_port",
    "mosquitto",
    "wait_for_port",
]


def _find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


MOSQUITTO_BINARY = _find_mosquitto()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float = 10.0, alive: Callable[[], bool] | None = None
) -> None:
    """Block until ``host:port`` accepts TCP connections; TimeoutError otherwise.

    ``alive`` lets the caller stop waiting early (RuntimeError) when its process has died.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"process exited before listening on {host}:{port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.01)


class MosquittoProcess:
    """A mosquitto broker of our own: its config, log and persistence live in ``directory``.

    Persistence is on, so :meth:`restart` (SIGTERM, then start on the same port) keeps
    retained messages, persistent sessions and their queued QoS 1 messages.
    """

    persistent = True

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        binary = binary or MOSQUITTO_BINARY
        if binary is None:
            raise FileNotFoundError("mosquitto binary not found (apt install mosquitto)")
        self.binary = binary
        self.directory = directory
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.start_timeout = start_timeout
        self.config_path = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        self.persistence_dir = directory / "persistence"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            # mosquitto wants the trailing slash: it concatenates the file name.
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Started as root, mosquitto 2 switches to the "mosquitto" user, which cannot
            # write our temp dir: stay who we are (ignored when not root).
            f"user {getpass.getuser()}",
            "max_queued_messages 10000",
            # As assets/mosquitto/mosquitto.conf: without it Nagle's algorithm and delayed
            # ACKs add ~40 ms to every small message's round trip.
            "set_tcp_nodelay true",
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Start mosquitto and return once its port accepts connections."""
        if self.is_running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_config()
        # Output to a file, not a pipe nobody reads (a full pipe would block the broker).
        with open(self.directory / "stderr.log", "ab") as stderr:
            process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        self._process = process
        try:
            wait_for_port(
                self.host, self.port, self.start_timeout, alive=lambda: process.poll() is None
            )
        except (RuntimeError, TimeoutError) as exc:
            self.kill()
            raise RuntimeError(f"mosquitto did not start: {exc}\n{self.log_tail()}") from None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait; SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved since the last autosave."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(5.0)

    def restart(self) -> None:
        """Stop cleanly and start again on the same port with the same persistence."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of mosquitto's log and output, for error messages."""
        text = []
        for path in (self.directory / "stderr.log", self.log_path):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text) or "(no mosquitto output)"

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MosquittoProcess {self.url} {'running' if self.is_running else 'stopped'}>"


class BrokerHandle:
    """What a broker-agnostic test needs: where to connect, as whom, and how to restart.

    ``persistent`` says whether a restart keeps retained messages and sessions; ``username``
    and ``password`` are the login (None for the anonymous test mosquitto).
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        persistent: bool,
        restart: Callable[[], None],
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.persistent = persistent
        self.username = username
        self.password = password
        self._restart = restart

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def restart(self) -> None:
        """Restart on the same host and port (blocks)."""
        self._restart()

    async def arestart(self) -> None:
        """:meth:`restart` without blocking the event loop."""
        await asyncio.to_thread(self._restart)

    def __repr__(self) -> str:
        return f"<BrokerHandle {self.name} {self.url}>"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A fresh mosquitto on a free loopback port (skips when mosquitto is not installed)."""
    if MOSQUITTO_BINARY is None:
        pytest.skip("mosquitto binary not found (apt install mosquitto)")
    broker = MosquittoProcess(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """A fresh embedded (iotcore/rumqttd) broker on a free loopback port."""
    broker = EmbeddedBroker()
    broker.start_blocking()
    try:
        yield broker
    finally:
        broker.stop_blocking()


@pytest.fixture(
    params=[pytest.param("mosquitto", marks=pytest.mark.broker), "embedded"],
)
def any_broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """The same test against mosquitto and against the embedded broker."""
    if request.param == "mosquitto":
        mq: MosquittoProcess = request.getfixturevalue("mosquitto")
        return BrokerHandle("mosquitto", mq.host, mq.port, persistent=True, restart=mq.restart)
    eb: EmbeddedBroker = request.getfixturevalue("embedded_broker")
    return BrokerHandle(
        "embedded",
        eb.host,
        eb.port,
        persistent=False,
        restart=eb.restart_blocking,
        username=eb.username,
        password=eb.password,
    )
