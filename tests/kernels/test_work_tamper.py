"""Every tampering and every malformed proof is a rejection with a reason, never an exception."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.backend import numpy_backend
from kernels.merkle import leaf_digest
from kernels.work_proof import MAX_PROOF_BYTES, Proof, decode_proof, expected_blocks
from kernels.work_spec import WorkSpec
from kernels.work_unit import (
    UnitResult,
    answer,
    challenge_indices,
    compute_unit,
    encode_proof,
    unit_from_leaf_digests,
    verify,
)

SECRET = b"another-coordinator-secret-32byt"


def make_spec(seed: int) -> WorkSpec:
    return WorkSpec(seed=hashlib.sha256(bytes([seed])).digest(), m=256, n=512, k=64, block=8)


SPEC = make_spec(1)
OTHER = make_spec(2)  # same shape, other seed


@pytest.fixture(scope="module")
def unit() -> UnitResult:
    return compute_unit(numpy_backend(), SPEC)


@pytest.fixture(scope="module")
def indices(unit: UnitResult) -> tuple[int, ...]:
    return challenge_indices(SECRET, SPEC, unit.root)


def words(digest: bytes) -> np.ndarray:
    return np.frombuffer(digest, dtype=">u4").astype(np.uint32)


def test_the_honest_proof_passes(unit: UnitResult, indices: tuple[int, ...]) -> None:
    assert verify(SPEC, unit.root, indices, encode_proof(answer(unit, indices))).ok


def test_one_wrong_value_in_a_sampled_block_is_caught(
    unit: UnitResult, indices: tuple[int, ...]
) -> None:
    # The prover commits to a tree where one challenged block has one value off by one.
    target = indices[5]
    block = expected_blocks(SPEC, [target])[0]
    block[3, 4] += 1
    digests = unit.levels[0].copy()
    digests[target] = words(leaf_digest(block))
    cheat = unit_from_leaf_digests(SPEC, digests)
    verdict = verify(SPEC, cheat.root, indices, encode_proof(answer(cheat, indices)))
    assert not verdict.ok
    assert f"block {target} " in verdict.reason and "committed root" in verdict.reason
    assert verdict.checked == 5  # the five blocks before it were right


def test_a_wrong_merkle_path_is_caught(unit: UnitResult, indices: tuple[int, ...]) -> None:
    proof = bytearray(encode_proof(answer(unit, indices)))
    proof[-100] ^= 0x01  # a bit of the last path's siblings
    verdict = verify(SPEC, unit.root, indices, bytes(proof))
    assert not verdict.ok and "committed root" in verdict.reason


def test_paths_swapped_between_blocks_are_caught(
    unit: UnitResult, indices: tuple[int, ...]
) -> None:
    honest = answer(unit, indices)
    paths = list(honest.paths)
    paths[0], paths[1] = paths[1], paths[0]
    swapped = Proof(spec_id=honest.spec_id, indices=honest.indices, paths=paths)
    assert not verify(SPEC, unit.root, indices, encode_proof(swapped)).ok


def test_answering_in_another_order_or_other_blocks_is_rejected(
    unit: UnitResult, indices: tuple[int, ...]
) -> None:
    reordered = indices[1:] + indices[:1]
    verdict = verify(SPEC, unit.root, indices, encode_proof(answer(unit, reordered)))
    assert not verdict.ok and "other blocks" in verdict.reason
    others = tuple(i for i in range(SPEC.n_leaves) if i not in indices)[: len(indices)]
    verdict = verify(SPEC, unit.root, indices, encode_proof(answer(unit, others)))
    assert not verdict.ok and "other blocks" in verdict.reason


def test_a_proof_from_another_unit_is_rejected(indices: tuple[int, ...]) -> None:
    other = compute_unit(numpy_backend(), OTHER)
    stolen = answer(other, indices)
    verdict = verify(SPEC, other.root, indices, encode_proof(stolen))
    assert not verdict.ok and "another work unit" in verdict.reason
    # Relabelled with this unit's id, the other unit's paths and root still do not fit.
    relabelled = Proof(spec_id=SPEC.spec_id, indices=stolen.indices, paths=stolen.paths)
    verdict = verify(SPEC, other.root, indices, encode_proof(relabelled))
    assert not verdict.ok and "committed root" in verdict.reason


def test_a_garbage_or_malformed_root_is_rejected(
    unit: UnitResult, indices: tuple[int, ...]
) -> None:
    proof = encode_proof(answer(unit, indices))
    assert not verify(SPEC, bytes(32), indices, proof).ok
    assert not verify(SPEC, unit.root[:31], indices, proof).ok
    assert not verify(SPEC, "not bytes", indices, proof).ok  # type: ignore[arg-type]


def _header(count: int, depth: int, spec_id: bytes = SPEC.spec_id) -> bytes:
    return struct.pack("<4sBBH32s", b"OTWP", 1, depth, count, spec_id)


def test_malformed_proofs_are_clean_rejections(unit: UnitResult, indices: tuple[int, ...]) -> None:
    proof = encode_proof(answer(unit, indices))
    depth = SPEC.depth
    cases = {
        "empty": b"",
        "truncated": proof[:-1],
        "extra byte": proof + b"\0",
        "wrong magic": b"XXXX" + proof[4:],
        "version 2": proof[:4] + b"\x02" + proof[5:],
        "zero paths": _header(0, depth),
        "huge count": _header(65535, depth) + bytes(64),
        "huge declared size": _header(64, 255),
        "oversized": bytes(MAX_PROOF_BYTES + 1),
        "wrong depth": _header(len(indices), depth - 1)
        + struct.pack(f"<{len(indices)}I", *indices)
        + bytes(32 * (depth - 1) * len(indices)),
    }
    for name, data in cases.items():
        verdict = verify(SPEC, unit.root, indices, data)
        assert not verdict.ok, name
        assert verdict.reason, name


def test_a_bad_challenge_or_spec_is_a_rejection(unit: UnitResult, indices: tuple[int, ...]) -> None:
    proof = encode_proof(answer(unit, indices))
    assert not verify(SPEC, unit.root, [SPEC.n_leaves], proof).ok
    assert not verify(SPEC, unit.root, [], proof).ok
    broken = WorkSpec(seed=SPEC.seed, m=SPEC.m, n=SPEC.n, k=65)
    assert "bad spec" in verify(broken, unit.root, indices, proof).reason


def test_non_bytes_proofs_are_rejected(unit: UnitResult, indices: tuple[int, ...]) -> None:
    for junk in (None, 42, "OTWP", [1, 2]):
        assert not verify(SPEC, unit.root, indices, junk).ok  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=4096), keep_header=st.booleans())
def test_random_bytes_never_raise(data: bytes, keep_header: bool) -> None:
    root = hashlib.sha256(data).digest()
    payload = _header(4, SPEC.depth) + data if keep_header else data
    verdict = verify(SPEC, root, [0, 1, 2, 3], payload)
    assert not verdict.ok and verdict.reason


def test_decode_round_trips() -> None:
    proof = Proof(spec_id=bytes(range(32)), indices=(3, 1), paths=[[b"a" * 32], [b"b" * 32]])
    assert decode_proof(encode_proof(proof)) == Proof(
        spec_id=proof.spec_id, indices=(3, 1), paths=[[b"a" * 32], [b"b" * 32]]
    )
    with pytest.raises(ValueError):
        encode_proof(Proof(spec_id=bytes(32), indices=(1,), paths=[[b"short"]]))


def test_memoryview_and_bytearray_proofs_decode_like_bytes(
    unit: UnitResult, indices: tuple[int, ...]
) -> None:
    proof = encode_proof(answer(unit, indices))
    assert verify(SPEC, unit.root, indices, memoryview(proof)).ok  # type: ignore[arg-type]
    assert verify(SPEC, unit.root, indices, bytearray(proof)).ok  # type: ignore[arg-type]
