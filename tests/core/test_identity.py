from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.errors import IdentityError
from core.identity import (
    KEY_FILE_NAME,
    Identity,
    load_or_create_identity,
    node_id_from_public_key,
    verify_signature,
)


def test_created_once_with_mode_0600_and_stable_id(tmp_path: Path) -> None:
    first, created = load_or_create_identity(tmp_path)
    assert created
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again, created_again = load_or_create_identity(tmp_path)
    assert not created_again
    assert again.node_id == first.node_id
    assert first.node_id == node_id_from_public_key(first.public_key)
    assert len(first.node_id) == 64


def test_signatures_bind_to_node_id() -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    sig = alice.sign(b"payload")
    assert verify_signature(alice.node_id, sig, b"payload")
    assert not verify_signature(alice.node_id, sig, b"payload!")
    assert not verify_signature(mallory.node_id, sig, b"payload")
    assert not verify_signature("not-hex", sig, b"payload")


def test_corrupt_key_file_is_a_clear_error_and_kept(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_bytes(b"garbage")
    os.chmod(key_file, 0o600)
    with pytest.raises(IdentityError, match=f"key file {key_file} is corrupt"):
        load_or_create_identity(tmp_path)
    assert key_file.read_bytes() == b"garbage"  # never replaced behind the user's back


def test_truncated_pem_is_corrupt(tmp_path: Path) -> None:
    identity = Identity.generate()
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_bytes(identity.to_pem()[:60])
    os.chmod(key_file, 0o600)
    with pytest.raises(IdentityError, match="corrupt"):
        load_or_create_identity(tmp_path)


def test_world_readable_key_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    os.chmod(tmp_path / KEY_FILE_NAME, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_identity(tmp_path)
