"""The coordinator's side of a work unit: the challenge, the proof's wire format, verification.

The challenge is drawn only after the node committed its root, from a secret the node never
sees: ``HMAC-SHA256(secret, "OTC1" || spec_id || root || counter)`` expanded into distinct
uniform leaf indices (rejection sampling, no modulo bias). A node therefore cannot know
which blocks will be checked when it commits, nor grind roots until the draw suits it.

Proof wire format, version 1, little-endian::

    "OTWP" | version u8 = 1 | depth u8 | count u16 | spec_id (32)
    | count x index u32 | count x depth x sibling digest (32)

No block values travel: the verifier regenerates the 2 x block rows of operands each sampled
block needs, multiplies them exactly (float32 BLAS; every partial sum is an integer below
2**24), hashes the block into its leaf and folds the path up to the committed root. A wrong
value, a wrong path or a block of another unit all end in a different root (or a SHA-256
collision). :func:`verify` never raises on hostile bytes: every failure is a Verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kernels.merkle import bind_root, fold_path, leaf_digest
from kernels.operands import host_rows, operand_key
from kernels.work_spec import WorkSpec

__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_PROOF_BYTES",
    "MAX_SAMPLES",
    "Proof",
    "ProofError",
    "Verdict",
    "challenge_indices",
    "decode_proof",
    "encode_proof",
    "expected_blocks",
    "proof_size",
    "verify",
]

DEFAULT_SAMPLES = 32
MAX_SAMPLES = 64
MAX_DEPTH = 32
_MAGIC = b"OTWP"
_VERSION = 1
_HEADER = struct.Struct("<4sBBH32s")
MAX_PROOF_BYTES = _HEADER.size + MAX_SAMPLES * (4 + MAX_DEPTH * 32)
# Operand bytes regenerated per batch of samples: small enough to stay in cache.
_BATCH_BYTES = 2 << 20


class ProofError(ValueError):
    """Bytes that are not a well-formed proof."""


@dataclass(frozen=True)
class Proof:
    """Merkle paths (leaf level first) of the challenged leaves, in challenge order."""

    spec_id: bytes
    indices: tuple[int, ...]
    paths: Sequence[Sequence[bytes]]


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying one unit; ``reason`` is "" when ``ok``."""

    ok: bool
    reason: str
    checked: int = 0  # blocks recomputed and found in the tree


def proof_size(count: int, depth: int) -> int:
    """Bytes of an encoded proof of ``count`` paths of ``depth`` siblings."""
    return _HEADER.size + count * (4 + depth * 32)


def encode_proof(proof: Proof) -> bytes:
    """The wire bytes of ``proof`` (raises ValueError for a proof that cannot be encoded)."""
    count = len(proof.indices)
    depth = len(proof.paths[0]) if proof.paths else 0
    if not 0 < count <= MAX_SAMPLES or len(proof.paths) != count or depth > MAX_DEPTH:
        raise ValueError("a proof has 1..64 paths of at most 32 siblings, one per index")
    if len(proof.spec_id) != 32:
        raise ValueError("spec_id must be 32 bytes")
    parts = [_HEADER.pack(_MAGIC, _VERSION, depth, count, proof.spec_id)]
    parts.append(struct.pack(f"<{count}I", *proof.indices))
    for path in proof.paths:
        if len(path) != depth or any(len(s) != 32 for s in path):
            raise ValueError("every path has the same depth of 32-byte digests")
        parts.extend(path)
    return b"".join(parts)


def decode_proof(data: bytes) -> Proof:
    """Parse wire bytes; raises :class:`ProofError` for anything malformed or oversized."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProofError("a proof is bytes")
    size = memoryview(data).nbytes  # checked before copying anything
    if size > MAX_PROOF_BYTES:
        raise ProofError(f"proof is {size} bytes, more than the {MAX_PROOF_BYTES} allowed")
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ProofError(f"proof is {len(data)} bytes, shorter than its header")
    magic, version, depth, count, spec_id = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise ProofError("not a version 1 work proof")
    if not 0 < count <= MAX_SAMPLES or depth > MAX_DEPTH:
        raise ProofError(f"proof declares {count} paths of depth {depth}")
    if len(data) != proof_size(count, depth):
        raise ProofError(f"proof is {len(data)} bytes, expected {proof_size(count, depth)}")
    indices = struct.unpack_from(f"<{count}I", data, _HEADER.size)
    at = _HEADER.size + 4 * count
    paths = [
        [data[at + (p * depth + d) * 32 : at + (p * depth + d + 1) * 32] for d in range(depth)]
        for p in range(count)
    ]
    return Proof(spec_id=spec_id, indices=tuple(indices), paths=paths)


def challenge_indices(
    secret: bytes, spec: WorkSpec, root: bytes, count: int = DEFAULT_SAMPLES
) -> tuple[int, ...]:
    """``min(count, n_leaves)`` distinct leaf indices drawn with the coordinator's secret.

    Call only after the node's root arrived; the same (secret, spec, root) always gives
    the same indices, so the coordinator need not store them.
    """
    if len(secret) < 16:
        raise ValueError("the challenge secret must be at least 16 bytes")
    if len(root) != 32:
        raise ValueError("a root is 32 bytes")
    if not 0 < count <= MAX_SAMPLES:
        raise ValueError(f"count must be 1..{MAX_SAMPLES}, got {count}")
    n = spec.n_leaves
    count = min(count, n)
    limit = (1 << 64) - (1 << 64) % n  # accept below a multiple of n: no modulo bias
    chosen: dict[int, None] = {}  # insertion-ordered set
    counter = 0
    while len(chosen) < count:
        msg = b"OTC1" + spec.spec_id + root + counter.to_bytes(8, "little")
        block = hmac.new(secret, msg, hashlib.sha256).digest()
        counter += 1
        for at in range(0, 32, 8):
            x = int.from_bytes(block[at : at + 8], "little")
            if x < limit and len(chosen) < count:
                chosen.setdefault(x % n)
    return tuple(chosen)


def expected_blocks(spec: WorkSpec, indices: Sequence[int]) -> npt.NDArray[np.int32]:
    """The exact values of the given blocks, (len, block, block) int32, from the seed alone."""
    b, k = spec.block, spec.k
    key_a, key_b = operand_key(spec.seed, "A"), operand_key(spec.seed, "Bt")
    out = np.empty((len(indices), b, b), dtype=np.int32)
    span = np.arange(b, dtype=np.int64)
    step = max(1, _BATCH_BYTES // (2 * b * k * 4))
    for start in range(0, len(indices), step):
        batch = indices[start : start + step]
        origins = np.array([spec.block_origin(i) for i in batch], dtype=np.int64)
        a = host_rows(key_a, (origins[:, :1] + span).reshape(-1), k).reshape(-1, b, k)
        bt = host_rows(key_b, (origins[:, 1:] + span).reshape(-1), k).reshape(-1, b, k)
        # Exact: products are +-1, +-2, +-4 and every partial sum is an integer < 2**24.
        out[start : start + len(batch)] = np.matmul(a, bt.transpose(0, 2, 1)).astype(np.int32)
    return out


def verify(spec: WorkSpec, root: bytes, indices: Sequence[int], proof_bytes: bytes) -> Verdict:
    """Check the node's answer to the challenge ``indices`` against its committed ``root``."""
    try:
        return _verify(spec, root, indices, proof_bytes)
    except Exception as exc:  # hostile input must end in a verdict, never in a crash
        return Verdict(False, f"proof cannot be checked: {type(exc).__name__}")


def _verify(spec: WorkSpec, root: bytes, indices: Sequence[int], proof_bytes: bytes) -> Verdict:
    try:
        spec.check()
    except ValueError as exc:
        return Verdict(False, f"bad spec: {exc}")
    if not isinstance(root, bytes) or len(root) != 32:
        return Verdict(False, "the committed root is not 32 bytes")
    challenge = tuple(int(i) for i in indices)
    if not 0 < len(challenge) <= MAX_SAMPLES or not all(0 <= i < spec.n_leaves for i in challenge):
        return Verdict(False, "the challenge is not a set of leaf indices of this unit")
    try:
        proof = decode_proof(proof_bytes)
    except ProofError as exc:
        return Verdict(False, f"malformed proof: {exc}")
    if proof.spec_id != spec.spec_id:
        return Verdict(False, "proof is for another work unit")
    if proof.indices != challenge:
        return Verdict(False, "proof answers other blocks than the challenge, or in another order")
    if len(proof.paths[0]) != spec.depth:
        return Verdict(
            False, f"paths have {len(proof.paths[0])} siblings, the tree needs {spec.depth}"
        )
    blocks = expected_blocks(spec, challenge)
    for checked, (index, block, path) in enumerate(
        zip(challenge, blocks, proof.paths, strict=True)
    ):
        top = fold_path(leaf_digest(block), index, path)
        if not hmac.compare_digest(bind_root(spec.spec_id, top), root):
            row, col = spec.block_origin(index)
            return Verdict(
                False,
                f"block {index} (C[{row}:{row + spec.block}, {col}:{col + spec.block}]) "
                "does not lead to the committed root: wrong values or wrong path",
                checked,
            )
    return Verdict(True, "", len(challenge))
