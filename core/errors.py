"""One small exception hierarchy for errors a user can act on.

Every ``OmniError`` carries a one-line message naming what is wrong and where (a file, a
value); the CLI prints that line and exits non-zero, never a traceback.
"""

from __future__ import annotations


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
    """The local store cannot be opened or migrated."""
