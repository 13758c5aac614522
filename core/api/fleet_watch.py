"""Watching a fleet of rigs: each rig's node over its control socket, SSH rigs forwarded.

A ``RigWatch`` keeps one rig's ``SocketNodeClient``, fetches a snapshot every
``POLL_SECONDS`` and reports a ``RigStatus`` after each try; a rig it cannot reach is reported
with the reason and tried again every ``RETRY_SECONDS``. An SSH rig's remote socket is
forwarded by the system's OpenSSH (``SshTunnel``) to a socket in a private (0700) directory
of this user: never a TCP port, so no rig's socket is reachable by anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.api.socket_client import SocketNodeClient
from core.api.views import NodeSnapshot
from core.errors import OmniError
from core.fleet import FleetRig

SSH_COMMAND = "ssh"
"""The OpenSSH client (a name looked up on PATH, or a path)."""
POLL_SECONDS = 1.0
RETRY_SECONDS = 3.0
CONNECT_TIMEOUT = 5.0
SNAPSHOT_TIMEOUT = 10.0
SSH_READY_TIMEOUT = 15.0
SSH_MAX_BACKOFF = 60.0
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


class RigUnreachable(OmniError):
    """A rig's socket cannot be reached; the message says why."""


@dataclass(frozen=True)
class RigStatus:
    """What is known of one rig after the last try."""

    rig: FleetRig
    online: bool
    reason: str = ""
    """Why it is unreachable (empty when online, or before the first try)."""
    snapshot: NodeSnapshot | None = None
    """The last snapshot fetched (kept while the rig is unreachable)."""
    checked_ts: float = 0.0


class SshTunnel:
    """``ssh -N -L LOCAL:REMOTE`` for one rig: started when needed, restarted with backoff."""

    def __init__(self, rig: FleetRig, directory: Path) -> None:
        assert rig.ssh is not None and rig.remote_socket is not None
        self.rig = rig
        self.local = directory / f"{rig.name}.sock"
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=5)
        self._stderr_task: asyncio.Task[None] | None = None
        self._failures = 0
        self._next_start = 0.0
        self._reason = ""

    def command(self) -> list[str]:
        assert self.rig.ssh is not None
        return [
            SSH_COMMAND,
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StreamLocalBindUnlink=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=15",
            "-L",
            f"{self.local}:{self.rig.remote_socket}",
            "--",
            self.rig.ssh,
        ]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def connected(self) -> None:
        """The node answered through the tunnel: the next failure starts the backoff anew."""
        self._failures = 0

    async def socket(self) -> Path:
        """The local end of the forward, once ssh listens on it; RigUnreachable otherwise."""
        if self.running:
            await self._wait_ready()
            return self.local
        if self._proc is not None:
            await self._reap()
        wait = self._next_start - time.monotonic()
        if wait > 0:
            raise RigUnreachable(f"{self._reason}; ssh starts again in {wait:.0f}s")
        await self._start()
        await self._wait_ready()
        return self.local

    async def _start(self) -> None:
        if shutil.which(SSH_COMMAND) is None:
            raise RigUnreachable("ssh not installed")
        if len(os.fsencode(self.local)) > _MAX_SOCKET_PATH:
            raise RigUnreachable(f"{self.local} is too long a path for a unix socket")
        self.local.unlink(missing_ok=True)
        self._stderr.clear()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise RigUnreachable(f"cannot run ssh ({exc.strerror or exc})") from None
        self._stderr_task = asyncio.create_task(self._read_stderr(self._proc))

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + SSH_READY_TIMEOUT
        while not self.local.exists():
            if not self.running:
                await self._reap()
                raise RigUnreachable(self._reason)
            if time.monotonic() > deadline:
                raise RigUnreachable(
                    f"ssh to {self.rig.ssh}: no forward after {SSH_READY_TIMEOUT:g}s"
                )
            await asyncio.sleep(0.05)

    async def _reap(self) -> None:
        """ssh ended: why, and when it may start again (1 s, 2 s, 4 s, ... up to a minute)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        code = await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr_task, 1.0)
            self._stderr_task = None
        last = self._stderr[-1] if self._stderr else f"exited with status {code}"
        self._reason = f"ssh {self.rig.ssh}: {last}"
        self._next_start = time.monotonic() + min(2.0**self._failures, SSH_MAX_BACKOFF)
        self._failures += 1
        self.local.unlink(missing_ok=True)

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stderr_task
            self._stderr_task = None
        self.local.unlink(missing_ok=True)


class RigWatch:
    """One rig, watched until cancelled: ``report`` gets a ``RigStatus`` after each try."""

    def __init__(
        self,
        rig: FleetRig,
        report: Callable[[RigStatus], None],
        *,
        tunnel_dir: Path | None = None,
        poll_seconds: float = POLL_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.rig = rig
        self.report = report
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.tunnel: SshTunnel | None = None
        if rig.ssh is not None:
            assert tunnel_dir is not None, "an ssh rig needs a directory for its socket"
            self.tunnel = SshTunnel(rig, tunnel_dir)
        self._last: NodeSnapshot | None = None

    async def _endpoint(self) -> Path:
        if self.tunnel is not None:
            return await self.tunnel.socket()
        assert self.rig.socket_path is not None
        return self.rig.socket_path

    async def run(self) -> None:
        client: SocketNodeClient | None = None
        try:
            while True:
                try:
                    if client is None:
                        path = await self._endpoint()
                        client = await asyncio.wait_for(
                            SocketNodeClient.connect(path), CONNECT_TIMEOUT
                        )
                    snapshot = await asyncio.wait_for(client.snapshot(), SNAPSHOT_TIMEOUT)
                except (OmniError, OSError, TimeoutError) as exc:
                    if client is not None:
                        await client.close()
                        client = None
                    self.report(self._down(exc))
                    await asyncio.sleep(self.retry_seconds)
                    continue
                if self.tunnel is not None:
                    self.tunnel.connected()
                self._last = snapshot
                self.report(RigStatus(self.rig, True, "", snapshot, time.time()))
                await asyncio.sleep(self.poll_seconds)
        finally:
            if client is not None:
                await client.close()
            if self.tunnel is not None:
                await self.tunnel.close()

    def _down(self, exc: BaseException) -> RigStatus:
        if isinstance(exc, TimeoutError):
            reason = "no answer from the node (timed out)"
        elif isinstance(exc, OmniError):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return RigStatus(self.rig, False, reason or type(exc).__name__, self._last, time.time())


def tunnel_directory() -> Path:
    """A new private directory (0700, this user's) for forwarded sockets; remove it after."""
    # /tmp rather than a long $TMPDIR: a unix socket's path has to fit in 107 bytes.
    base = "/tmp" if os.path.isdir("/tmp") else None
    path = Path(tempfile.mkdtemp(prefix="omnitensor-fleet-", dir=base))
    os.chmod(path, 0o700)
    return path
