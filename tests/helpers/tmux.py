"""A real terminal for tests: a detached tmux session running a shell, read by capture-pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="needs tmux")


class Tmux:
    """One detached tmux session (its own server socket) running a shell."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        assert TMUX is not None
        self.base = [TMUX, "-S", str(socket)]
        self.env = env
        subprocess.run(
            [*self.base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "t", "sh"],
            env=env,
            check=True,
        )

    def send(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "t", *keys], check=True)

    def type_line(self, line: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "t", "-l", line], check=True)
        self.send("Enter")

    def capture(self) -> str:
        return subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "t"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture()
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared; the pane shows:\n{self.capture()}")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], check=False, capture_output=True)


def shell_command(*args: str, marker: str = "console") -> str:
    """``omnitensor ARGS`` as typed at the shell, then ``<marker>-exit=<status>``.

    The exit status is printed after the command so the test sees how it ended; the split
    quotes keep the typed command itself from matching ``<marker>-exit=``.
    """
    quoted = " ".join(args)
    return f"cd {ROOT} && {sys.executable} -m tui {quoted}; echo '{marker}''-exit='$?"
