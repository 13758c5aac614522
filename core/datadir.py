"""The data directory: created private (0700), checked writable, locked by one process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from core.errors import DataDirError, NodeRunningError


def prepare_data_dir(path: Path) -> None:
    """Create the data dir (mode 0700) and check it is writable."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create data dir {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise DataDirError(f"data dir {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"data dir {path} is not writable")


class DataDirLock:
    """An exclusive advisory lock on ``node.lock``; the kernel drops it if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DataDirError(f"cannot create lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise NodeRunningError(
                f"another node (pid {holder}) is already running on data dir {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
