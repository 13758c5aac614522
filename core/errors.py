"""One exception hierarchy, rooted at ``OmniError``, for every error a user can act on.

Every ``OmniError`` carries a one-line message naming what is wrong and where (a file, a
value); the CLI prints that line and exits non-zero, never a traceback. Subsystems add their
own branches here or below one of these (the game's refusals derive from ``OmniError`` too).
"""

from __future__ import annotations

from typing import ClassVar


class OmniError(Exception):
    """An error a user can act on; ``str(err)`` is the one line shown to them."""

    exit_code: int = 2


class ConfigError(OmniError):
    """A bad configuration value or file."""


class DataDirError(OmniError):
    """The data directory cannot be created, written or locked."""


class IdentityError(OmniError):
    """The node's key file is missing, corrupt or unsafe."""


class NodeRunningError(OmniError):
    """Another node already runs on the same data directory."""


class NoNodeRunning(OmniError):
    """A command needs a running node and none answers on the data directory."""

    exit_code = 3


class StoreError(OmniError):
    """A local store (SQLite file) cannot be opened or migrated."""


class CommandError(OmniError):
    """A node command was refused or failed; the message says why, in one line."""

    exit_code = 1


class KernelError(OmniError):
    """The compute backend cannot run (no usable device, a kernel failed)."""


class ProtocolError(OmniError):
    """An inbound payload is not a valid, authentic message.

    ``reason`` is a short stable code (for counters and tests); ``detail`` says more for logs.
    """

    REASONS: ClassVar[frozenset[str]] = frozenset(
        {
            "oversized",
            "not-json",
            "bad-envelope",
            "bad-version",
            "unknown-type",
            "bad-sender",
            "bad-base64",
            "bad-signature",
            "bad-payload",
        }
    )

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
