"""The data directory: created private (0700), checked safe and writable, locked by one process."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
from pathlib import Path

from core.errors import DataDirError, NodeRunningError


def prepare_data_dir(path: Path) -> None:
    """Create the data dir (mode 0700), or check an existing one is ours and not shared.

    The data dir holds the node's key, its store and its control socket: a dir another user
    owns, or one others may write to (and so swap files in), is refused, never "fixed".
    """
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        created = False
    except OSError as exc:
        raise DataDirError(f"cannot create data dir {path}: {exc.strerror}") from None
    else:
        created = True
    if not path.is_dir():
        raise DataDirError(f"data dir {path} is not a directory")
    if created:
        # mkdir's mode is masked by the umask: make it exactly 0700.
        path.chmod(0o700)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise DataDirError(
            f"data dir {path} belongs to another user (uid {info.st_uid}); "
            "use a data dir of your own (--data-dir)"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise DataDirError(
            f"data dir {path} is writable by other users (mode {mode:04o}); run: chmod 700 {path}"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"data dir {path} is not writable")


def private_token(path: Path, nbytes: int) -> str:
    """A random hex token of ``nbytes`` kept in ``path`` (mode 0600): made once, then reused.

    DataDirError when the file is open to other users or does not hold such a token.
    """
    pattern = re.compile(f"[0-9a-f]{{{2 * nbytes}}}")
    if not path.exists():
        token = secrets.token_hex(nbytes)
        # Written aside, then linked: a reader never sees a half-written file, and link()
        # fails when another process made the file meanwhile (then its token is used).
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, f"{token}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise DataDirError(f"cannot create {path}: {exc.strerror}") from None
        else:
            return token
        finally:
            tmp.unlink(missing_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise DataDirError(f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise DataDirError(
            f"{path} is open to other users (mode {mode:04o}); run: chmod 600 {path}"
        )
    if not pattern.fullmatch(text):
        raise DataDirError(f"{path} is corrupt; delete it and a new one is made")
    return text


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
