"""Run the real ``omnitensor`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITENSOR_")}
    env.update({"OMNITENSOR_BACKEND": "numpy", "PYTHONUNBUFFERED": "1", **extra})
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=ROOT,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


class HeadlessNode:
    """``omnitensor --headless`` in a child process, stopped by a signal."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "--headless", *args],
            cwd=ROOT,
            env=env or cli_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_for_socket(self, socket_path: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A killed node leaves its socket file behind: wait until one accepts.
            if socket_path.exists() and _accepts(socket_path):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}: {self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no control socket after {timeout}s: {self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()
