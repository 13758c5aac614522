"""The rigs a fleet console watches: ``[[fleet.rigs]]`` tables in the node's config file.

Each rig has a ``name`` and either ``data_dir`` (a node on this machine: its control socket
is ``DATA_DIR/node.sock``) or ``ssh = "user@host"`` with ``remote_data_dir`` (the node's data
dir on that host, an absolute path; its socket is forwarded over OpenSSH)::

    [[fleet.rigs]]
    name = "rig-a"
    data_dir = "/home/me/.local/share/omnitensor"

    [[fleet.rigs]]
    name = "rig-b"
    ssh = "me@rig-b.lan"
    remote_data_dir = "/home/me/.local/share/omnitensor"

Parsed here, on its own, so ``core.config`` only has to skip the ``[fleet]`` table.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import ConfigError

_RIG_KEYS = ("name", "data_dir", "ssh", "remote_data_dir")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
# user@host or host; no spaces and no leading '-' (it would read as an ssh option).
_SSH_RE = re.compile(r"^(?:[A-Za-z0-9_.\-]+@)?[A-Za-z0-9_.\-:\[\]]+$")

FLEET_EXAMPLE = (
    'a [[fleet.rigs]] table per rig, with name = "rig-a" and data_dir = "/path/to/data-dir" '
    '(or ssh = "user@host" and remote_data_dir = "/home/user/.local/share/omnitensor")'
)


@dataclass(frozen=True)
class FleetRig:
    """One rig: a local node's data dir, or an SSH destination and the remote data dir."""

    name: str
    data_dir: Path | None = None
    ssh: str | None = None
    remote_data_dir: PurePosixPath | None = None

    @property
    def socket_path(self) -> Path | None:
        """A local rig's control socket (None for an SSH rig)."""
        return None if self.data_dir is None else self.data_dir / "node.sock"

    @property
    def remote_socket(self) -> PurePosixPath | None:
        """An SSH rig's control socket on the remote host."""
        return None if self.remote_data_dir is None else self.remote_data_dir / "node.sock"

    @property
    def where(self) -> str:
        """Where the rig is, for people: its data dir or ``user@host:dir``."""
        if self.data_dir is not None:
            return str(self.data_dir)
        return f"{self.ssh}:{self.remote_data_dir}"


def _text(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} must be non-empty text, not {value!r}")
    return value


def _rig(entry: object, where: str) -> FleetRig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table: {FLEET_EXAMPLE}")
    unknown = sorted(set(entry) - set(_RIG_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r} (one of {', '.join(_RIG_KEYS)})"
        )
    name = _text(entry, "name", where)
    if name is None:
        raise ConfigError(f'{where}: missing name (like name = "rig-a")')
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: name {name!r} must be 1-32 letters, digits, '_', '-' or '.'")
    where = f"{where} ({name})"
    data_dir = _text(entry, "data_dir", where)
    ssh = _text(entry, "ssh", where)
    remote = _text(entry, "remote_data_dir", where)
    if (data_dir is None) == (ssh is None):
        raise ConfigError(
            f"{where}: set either data_dir or ssh, not {'both' if ssh else 'neither'}"
        )
    if data_dir is not None:
        if remote is not None:
            raise ConfigError(f"{where}: remote_data_dir goes with ssh, not data_dir")
        return FleetRig(name=name, data_dir=Path(data_dir).expanduser().absolute())
    assert ssh is not None
    if not _SSH_RE.match(ssh) or ssh.startswith("-"):
        raise ConfigError(f"{where}: ssh {ssh!r} is not user@host")
    if remote is None or not remote.startswith("/"):
        raise ConfigError(
            f"{where}: an ssh rig needs remote_data_dir, the node's data dir on {ssh} as an "
            'absolute path (like remote_data_dir = "/home/user/.local/share/omnitensor")'
        )
    return FleetRig(name=name, ssh=ssh, remote_data_dir=PurePosixPath(remote))


def parse_fleet(table: dict[str, Any], where: str) -> tuple[FleetRig, ...]:
    """The rigs of a config file's parsed TOML (``()`` when it has no ``[fleet]``)."""
    fleet = table.get("fleet")
    if fleet is None:
        return ()
    if not isinstance(fleet, dict):
        raise ConfigError(f"{where}: fleet must be a table of [[fleet.rigs]]")
    unknown = sorted(set(fleet) - {"rigs"})
    if unknown:
        raise ConfigError(f"{where} [fleet]: unknown setting {unknown[0]!r} (only [[fleet.rigs]])")
    entries = fleet.get("rigs", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: write each rig as a [[fleet.rigs]] table")
    rigs: list[FleetRig] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        rig = _rig(entry, f"{where} [[fleet.rigs]] #{number}")
        if rig.name in seen:
            raise ConfigError(
                f"{where} [[fleet.rigs]] #{number}: the name {rig.name!r} is used twice"
            )
        seen.add(rig.name)
        rigs.append(rig)
    return tuple(rigs)


def load_fleet(config_file: Path | None) -> tuple[FleetRig, ...]:
    """The rigs in ``config_file`` (``()`` when there is no file or no ``[fleet]``)."""
    if config_file is None or not config_file.exists():
        return ()
    try:
        with config_file.open("rb") as fh:
            table = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{config_file}: cannot read ({exc.strerror})") from None
    return parse_fleet(table, str(config_file))
