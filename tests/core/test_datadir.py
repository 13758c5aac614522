"""The data dir: made private, an existing one checked; private tokens; MQTT client ids."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core.datadir import prepare_data_dir, private_token
from core.errors import DataDirError
from core.transport.mqtt import CLIENT_ID_FILE, client_id_for


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_data_dir_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077 | 0o100)  # would make mkdir's 0700 a 0600
    try:
        prepare_data_dir(tmp_path / "a" / "d")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a" / "d") == 0o700


def test_an_existing_data_dir_keeps_its_mode_when_safe(tmp_path: Path) -> None:
    path = tmp_path / "d"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    prepare_data_dir(path)
    assert mode_of(path) == 0o755  # readable by others is the user's choice; not changed


@pytest.mark.parametrize("mode", [0o775, 0o777, 0o720, 0o702])
def test_a_data_dir_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "d"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(DataDirError) as error:
        prepare_data_dir(path)
    assert str(error.value) == (
        f"data dir {path} is writable by other users (mode {mode:04o}); run: chmod 700 {path}"
    )
    assert mode_of(path) == mode  # refused, never "fixed" behind the user's back


def test_a_data_dir_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d"
    path.mkdir(mode=0o700)
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(DataDirError, match=rf"belongs to another user \(uid {owner}\)"):
        prepare_data_dir(path)


def test_private_token_is_made_once_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = private_token(path, 16)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert mode_of(path) == 0o600
    assert private_token(path, 16) == token
    assert private_token(tmp_path / "other", 16) != token
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("ab" * 16, 0o644, "open to other users (mode 0644); run: chmod 600"),
        ("not hex", 0o600, "is corrupt; delete it"),
        ("ab" * 8, 0o600, "is corrupt"),
    ],
)
def test_private_token_refuses_unsafe_or_corrupt_files(
    tmp_path: Path, text: str, mode: int, expected: str
) -> None:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(DataDirError, match=re.escape(expected)):
        private_token(path, 16)


def test_client_ids_are_stable_per_data_dir_and_unpredictable(tmp_path: Path) -> None:
    for name in ("a", "b"):
        prepare_data_dir(tmp_path / name)
    first = client_id_for(tmp_path / "a", "node")
    assert re.fullmatch(r"omnitensor-node-[0-9a-f]{32}", first)
    assert client_id_for(tmp_path / "a", "node") == first
    assert mode_of(tmp_path / "a" / CLIENT_ID_FILE) == 0o600
    assert client_id_for(tmp_path / "b", "coordinator").startswith("omnitensor-coordinator-")
    assert client_id_for(tmp_path / "b", "coordinator")[-32:] != first[-32:]
    with pytest.raises(ValueError, match="bad client role"):
        client_id_for(tmp_path / "a", "Node X")
