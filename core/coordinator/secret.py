"""The coordinator's challenge secret, made once in its data dir and never sent anywhere."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.errors import DataDirError

SECRET_FILE = "challenge.key"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(path: Path) -> bytes:
    """The coordinator's challenge secret: 32 random bytes in a 0600 file, made once.

    Challenges are HMACs under it; a node that knew it could pick roots whose challenge
    misses its skipped blocks. It never leaves this file (not sent, not logged).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return data
    except OSError as exc:
        raise DataDirError(f"cannot read the challenge secret {path}: {exc.strerror}") from None
    if len(data) != 32:
        raise DataDirError(f"challenge secret {path} is corrupt (not 32 bytes)")
    return data
