"""The node's Ed25519 identity: a key pair in the data dir and the node id derived from it.

The node id is the hex of the raw 32-byte public key, so any message's sender id is also the
key that must verify its signature: no node can speak for another, and no registry of keys is
needed to check a signature.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from core.errors import IdentityError

KEY_FILE_NAME = "node.key"
_PEM_HEADER = b"-----BEGIN PRIVATE KEY-----"


def node_id_from_public_key(public_key: bytes) -> str:
    """The node id for a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return public_key.hex()


def public_key_from_node_id(node_id: str) -> bytes:
    """The raw public key a node id stands for; ValueError when it is not a node id."""
    raw = bytes.fromhex(node_id)
    if len(raw) != 32:
        raise ValueError("a node id is 64 hex digits")
    return raw


def short_id(node_id: str) -> str:
    """A short form for display (like a git short hash)."""
    return node_id[:12]


@functools.lru_cache(maxsize=100_000)
def _public_key(node_id: str) -> Ed25519PublicKey:
    # Loading a key decompresses a curve point: a third of a verify. Nodes sign many messages.
    return Ed25519PublicKey.from_public_bytes(public_key_from_node_id(node_id))


def verify_signature(node_id: str, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` over ``data`` was made by the key behind ``node_id``."""
    try:
        key = _public_key(node_id)
        key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A node's (or the coordinator's) signing identity."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def node_id(self) -> str:
        return node_id_from_public_key(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    @classmethod
    def load(cls, path: Path) -> Identity:
        """Load a key file; IdentityError (naming the file) when it is unreadable or corrupt."""
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IdentityError(f"cannot read key file {path}: {exc.strerror}") from None
        if not data.startswith(_PEM_HEADER):
            raise IdentityError(f"key file {path} is corrupt (not a PEM private key)")
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise IdentityError(f"key file {path} is corrupt (cannot parse the key)") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"key file {path} does not hold an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key with mode 0600, atomically, never replacing an existing key."""
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self.to_pem())
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() fails if the key appeared meanwhile: a key is never overwritten.
        try:
            os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def load_or_create_identity(data_dir: Path) -> tuple[Identity, bool]:
    """The identity in ``data_dir``, creating it on first start. Returns (identity, created)."""
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise IdentityError(
                f"key file {path} is readable by other users (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        return Identity.load(path), False
    identity = Identity.generate()
    try:
        identity.save(path)
    except FileExistsError:
        return Identity.load(path), False
    except OSError as exc:
        raise IdentityError(f"cannot write key file {path}: {exc.strerror}") from None
    return identity, True
