"""Merkle tree over result-block digests: domain-separated SHA-256, odd levels padded, fixed depth.

Definitions (all digests SHA-256; tags are 4 ASCII bytes so data stays word-aligned):

* leaf   = H("OTL1" || block as int32 little-endian, row-major)
* node   = H("OTN1" || left || right)
* a level with an odd number of nodes is padded with EMPTY = H("OTE1") before pairing
* top    = the single node left after ceil(log2(N)) levels (the leaf itself when N = 1)
* root   = H("OTR1" || spec_id || top)   (binds the tree to one work spec)

The number of leaves N is fixed by the spec, so the depth is too: a path is exactly
``depth`` sibling digests, ordered from the leaf up, and the index bits say which side
each sibling is on. Device arrays hold digests as ``(N, 8)`` uint32 state words; bytes are
their big-endian encoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kernels.backend import Array
from kernels.sha256 import Hasher

__all__ = [
    "EMPTY",
    "LEAF_TAG",
    "NODE_TAG",
    "bind_root",
    "build_levels",
    "depth_for",
    "digest_bytes",
    "fold_path",
    "leaf_digest",
    "node_digest",
    "parent_level",
    "path_from_levels",
]

LEAF_TAG = int.from_bytes(b"OTL1", "big")
NODE_TAG = int.from_bytes(b"OTN1", "big")
EMPTY = hashlib.sha256(b"OTE1").digest()
_EMPTY_WORDS = np.frombuffer(EMPTY, dtype=">u4").astype(np.uint32)

Digests = npt.NDArray[np.uint32]


def depth_for(n_leaves: int) -> int:
    """Levels between the leaves and the top: ceil(log2(n)), 0 for a single leaf."""
    if n_leaves < 1:
        raise ValueError(f"a tree needs at least one leaf, got {n_leaves}")
    return (n_leaves - 1).bit_length()


def digest_bytes(words: Digests) -> bytes:
    """The 32 bytes of one digest held as 8 uint32 state words."""
    return np.asarray(words, dtype=np.uint32).astype(">u4").tobytes()


def leaf_digest(block: npt.NDArray[np.int32]) -> bytes:
    """H("OTL1" || block) with the block's int32 values little-endian, row-major."""
    return hashlib.sha256(b"OTL1" + np.ascontiguousarray(block, dtype="<i4").tobytes()).digest()


def node_digest(left: bytes, right: bytes) -> bytes:
    """H("OTN1" || left || right)."""
    return hashlib.sha256(b"OTN1" + left + right).digest()


def bind_root(spec_id: bytes, top: bytes) -> bytes:
    """The committed root: H("OTR1" || spec_id || top)."""
    return hashlib.sha256(b"OTR1" + spec_id + top).digest()


def parent_level(hasher: Hasher, level: Array) -> Array:
    """The level above ``level`` ((N, 8) words on the hasher's device), padding odd N."""
    xp = hasher.backend.xp
    n = level.shape[0]
    if n % 2:
        pad = hasher.backend.asarray(_EMPTY_WORDS.reshape(1, 8))
        level = xp.concatenate([level, pad], axis=0)
    pairs = xp.ascontiguousarray(level).reshape(-1, 16)
    return hasher.hash(pairs, NODE_TAG, False)


def build_levels(hasher: Hasher, leaves: Array, stop: int = 1) -> list[Array]:
    """Every level from ``leaves`` up to one with at most ``stop`` nodes (device arrays)."""
    levels = [leaves]
    while levels[-1].shape[0] > stop:
        levels.append(parent_level(hasher, levels[-1]))
    return levels


def path_from_levels(levels: Sequence[Digests], index: int) -> list[bytes]:
    """Sibling digests of node ``index`` of ``levels[0]``, one per level up to the top."""
    path: list[bytes] = []
    for level in levels[:-1]:
        sibling = index ^ 1
        path.append(digest_bytes(level[sibling]) if sibling < level.shape[0] else EMPTY)
        index >>= 1
    return path


def fold_path(leaf: bytes, index: int, siblings: Sequence[bytes]) -> bytes:
    """The top reached from ``leaf`` at ``index`` through ``siblings`` (leaf level first)."""
    node = leaf
    for sibling in siblings:
        node = node_digest(sibling, node) if index & 1 else node_digest(node, sibling)
        index >>= 1
    return node
