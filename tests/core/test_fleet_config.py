"""``[[fleet.rigs]]``: parsed by ``core.fleet``, one clear line per bad entry, and ignored by
the node's own config."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from core.config import load_config
from core.errors import ConfigError
from core.fleet import FleetRig, load_fleet


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_local_and_ssh_rigs(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[node]
name = "me"

[[fleet.rigs]]
name = "rig-a"
data_dir = "/srv/a"

[[fleet.rigs]]
name = "rig-b"
ssh = "me@rig-b.lan"
remote_data_dir = "/home/me/.local/share/omnitensor"
""",
    )
    rigs = load_fleet(path)
    assert rigs == (
        FleetRig(name="rig-a", data_dir=Path("/srv/a")),
        FleetRig(
            name="rig-b",
            ssh="me@rig-b.lan",
            remote_data_dir=PurePosixPath("/home/me/.local/share/omnitensor"),
        ),
    )
    assert rigs[0].socket_path == Path("/srv/a/node.sock")
    assert rigs[1].remote_socket == PurePosixPath("/home/me/.local/share/omnitensor/node.sock")
    # The node's own config reads the same file and leaves the fleet alone.
    assert load_config({"config_file": str(path)}, env={}).name == "me"


def test_no_file_or_no_fleet_is_no_rigs(tmp_path: Path) -> None:
    assert load_fleet(None) == ()
    assert load_fleet(tmp_path / "missing.toml") == ()
    assert load_fleet(_write(tmp_path, '[node]\nname = "me"\n')) == ()


BAD = [
    pytest.param('[[fleet.rigs]]\ndata_dir = "/a"\n', "#1: missing name", id="no-name"),
    pytest.param(
        '[[fleet.rigs]]\nname = "a"\ndata_dir = "/a"\nssh = "me@h"\n',
        "#1 (a): set either data_dir or ssh, not both",
        id="both",
    ),
    pytest.param(
        '[[fleet.rigs]]\nname = "a"\n',
        "#1 (a): set either data_dir or ssh, not neither",
        id="neither",
    ),
    pytest.param(
        '[[fleet.rigs]]\nname = "a"\ndata_dir = "/a"\n'
        '[[fleet.rigs]]\nname = "a"\ndata_dir = "/b"\n',
        "#2: the name 'a' is used twice",
        id="duplicate",
    ),
    pytest.param(
        '[[fleet.rigs]]\nname = "a"\nssh = "me@h"\n',
        "#1 (a): an ssh rig needs remote_data_dir",
        id="ssh-without-remote-dir",
    ),
    pytest.param(
        '[[fleet.rigs]]\nname = "a"\nssh = "-oProxyCommand=x"\nremote_data_dir = "/r"\n',
        "is not user@host",
        id="ssh-option-injection",
    ),
    pytest.param(
        '[[fleet.rigs]]\nname = "a"\ndata_dir = "/a"\nport = 3\n',
        "#1: unknown setting 'port'",
        id="unknown-key",
    ),
    pytest.param(
        '[fleet]\nrigs = "a"\n', "write each rig as a [[fleet.rigs]] table", id="not-list"
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_entries_are_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message
