"""Honest work units: commitment, challenge, answer and verification; exactness; sizing."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kernels.backend import numpy_backend
from kernels.merkle import EMPTY, bind_root, depth_for, digest_bytes, leaf_digest, node_digest
from kernels.operands import host_rows, operand_key
from kernels.work_proof import (
    DEFAULT_SAMPLES,
    MAX_PROOF_BYTES,
    expected_blocks,
    proof_size,
)
from kernels.work_spec import K_MAX, MN_MAX, WorkSpec, deadline_s, spec_flops, spec_for
from kernels.work_unit import (
    answer,
    challenge_indices,
    compute_unit,
    encode_proof,
    exact_gemm,
    verify,
)

SECRET = b"coordinator-secret-for-tests-32b"
KiB = 1024


def spec_of(seed: int = 1, m: int = 512, n: int = 768, k: int = 128, block: int = 8) -> WorkSpec:
    return WorkSpec(seed=hashlib.sha256(bytes([seed])).digest(), m=m, n=n, k=k, block=block)


def test_honest_unit_verifies() -> None:
    spec = spec_of()
    unit = compute_unit(numpy_backend(), spec, panel=256)
    indices = challenge_indices(SECRET, spec, unit.root)
    proof = encode_proof(answer(unit, indices))
    verdict = verify(spec, unit.root, indices, proof)
    assert verdict.ok, verdict.reason
    assert verdict.checked == DEFAULT_SAMPLES
    assert len(proof) == proof_size(DEFAULT_SAMPLES, spec.depth)


@pytest.mark.parametrize("block", [4, 8, 16])
def test_every_block_size_commits_to_the_exact_product(block: int) -> None:
    spec = spec_of(seed=block, m=32 * block, n=64 * block, k=64, block=block)
    unit = compute_unit(numpy_backend(), spec)
    key_a, key_b = operand_key(spec.seed, "A"), operand_key(spec.seed, "Bt")
    a = host_rows(key_a, np.arange(spec.m), spec.k).astype(np.int64)
    bt = host_rows(key_b, np.arange(spec.n), spec.k).astype(np.int64)
    c = a @ bt.T
    # Leaf 1030 is in the second tile: the leaf order crosses a tile boundary.
    for leaf in (0, 1, 31, 32, 1023, 1030, spec.n_leaves - 1):
        row, col = spec.block_origin(leaf)
        block_values = c[row : row + block, col : col + block]
        assert digest_bytes(unit.levels[0][leaf]) == leaf_digest(block_values)
        assert np.array_equal(expected_blocks(spec, [leaf])[0], block_values)
    indices = challenge_indices(SECRET, spec, unit.root)
    assert verify(spec, unit.root, indices, encode_proof(answer(unit, indices))).ok


def test_root_follows_the_documented_tree() -> None:
    # 2 x 3 tiles: 6144 leaves, odd levels above the tiles get EMPTY padding.
    spec = spec_of(m=512, n=768, k=64)
    unit = compute_unit(numpy_backend(), spec)
    level = [digest_bytes(d) for d in unit.levels[0]]
    while len(level) > 1:
        if len(level) % 2:
            level.append(EMPTY)
        level = [node_digest(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    assert unit.root == bind_root(spec.spec_id, level[0])
    assert len(unit.levels) == depth_for(spec.n_leaves) + 1 == spec.depth + 1


def test_tile_recompute_and_fp16_give_the_same_root_and_proofs() -> None:
    spec = spec_of(seed=3)
    backend = numpy_backend()
    kept = compute_unit(backend, spec, panel=512)
    lean = compute_unit(backend, spec, keep_leaves_max=0)
    half = compute_unit(backend, spec, precision="float16", keep_leaves_max=0)
    assert kept.root == lean.root == half.root
    assert (kept.base_level, lean.base_level) == (0, 10)
    indices = challenge_indices(SECRET, spec, kept.root)
    proof = encode_proof(answer(kept, indices))
    assert encode_proof(answer(lean, indices)) == proof == encode_proof(answer(half, indices))


def test_fp16_chunks_are_exact_where_a_single_fp16_sum_would_not_be() -> None:
    # Rows of +2 against +2 sum to 4k = 4096 over k = 1024: beyond fp16's exact integers.
    a = np.full((2, 1024), 2, dtype=np.float16)
    assert exact_gemm(np, a, a, "float16").tolist() == [[4096, 4096], [4096, 4096]]
    assert (a @ a.T).dtype == np.float16


def test_fp32_product_is_exact_at_the_largest_k() -> None:
    key_a, key_b = operand_key(b"x" * 32, "A"), operand_key(b"x" * 32, "Bt")
    a = host_rows(key_a, np.arange(4), K_MAX)
    bt = host_rows(key_b, np.arange(4), K_MAX)
    reference = a.astype(np.int64) @ bt.astype(np.int64).T
    assert np.array_equal(exact_gemm(np, a, bt, "float32"), reference)
    # The extreme: every product +4, so the sum reaches 4 * K_MAX = 2**22.
    twos = np.full((2, K_MAX), 2, dtype=np.float32)
    assert exact_gemm(np, twos, twos, "float32").tolist() == [[1 << 22] * 2] * 2


def test_challenge_is_distinct_in_range_and_bound_to_secret_spec_and_root() -> None:
    spec = spec_of()
    root = bytes(32)
    draw = challenge_indices(SECRET, spec, root)
    assert draw == challenge_indices(SECRET, spec, root)
    assert len(set(draw)) == len(draw) == DEFAULT_SAMPLES
    assert all(0 <= i < spec.n_leaves for i in draw)
    assert draw != challenge_indices(SECRET[::-1], spec, root)
    assert draw != challenge_indices(SECRET, spec, b"\x01" * 32)
    assert draw != challenge_indices(SECRET, spec_of(seed=9), root)
    tiny = spec_of(m=256, n=256, k=64, block=8)
    assert sorted(challenge_indices(SECRET, tiny, root, 64)) != list(range(64))
    with pytest.raises(ValueError, match="secret"):
        challenge_indices(b"short", spec, root)


def test_answer_refuses_a_challenge_that_is_not_one() -> None:
    spec = spec_of(m=256, n=256, k=64)
    unit = compute_unit(numpy_backend(), spec)
    for bad in ([], [spec.n_leaves], [-1], list(range(65)), [True]):
        with pytest.raises(ValueError):
            answer(unit, bad)


def test_spec_bounds_are_enforced() -> None:
    good = spec_of()
    good.check()
    bad = [
        WorkSpec(seed=b"short", m=256, n=256, k=64),
        WorkSpec(seed=good.seed, m=300, n=256, k=64),
        WorkSpec(seed=good.seed, m=256, n=256, k=100),
        WorkSpec(seed=good.seed, m=256, n=256, k=K_MAX + 64),
        WorkSpec(seed=good.seed, m=2 * MN_MAX, n=256, k=64),
        WorkSpec(seed=good.seed, m=256, n=256, k=64, block=5),
    ]
    for spec in bad:
        with pytest.raises(ValueError):
            spec.check()


@pytest.mark.parametrize("rate", [1e8, 1e10, 8.5e10, 1e12, 3e13, 1e15, 1e18])
def test_sized_specs_are_valid_near_the_target_and_their_proofs_small(rate: float) -> None:
    spec = spec_for(rate, 1.0)
    spec.check()
    seconds = spec_flops(spec) / max(rate, 1e9)
    if 1e10 <= rate <= 1e15:
        # Tile rounding of a near-square grid: within a factor 2 either way.
        assert 0.5 <= seconds <= 2.0
    assert proof_size(DEFAULT_SAMPLES, spec.depth) <= 64 * KiB
    assert deadline_s(spec, rate) > seconds


def test_largest_possible_proof_is_within_the_bandwidth_target() -> None:
    assert 256 * KiB >= MAX_PROOF_BYTES
    assert proof_size(DEFAULT_SAMPLES, spec_for(1e18, 10.0).depth) <= 64 * KiB


def test_k_grows_with_the_target_duration_and_block_times_k_is_the_same_for_all() -> None:
    assert spec_for(3e13, 2.0).k == 2 * spec_for(3e13, 1.0).k
    cpu, gpu = spec_for(1e11, 1.0), spec_for(3e13, 1.0)
    assert (cpu.block, gpu.block) == (16, 8)
    # The verifier's work per sample is proportional to block x k: equal for both.
    assert cpu.block * cpu.k == gpu.block * gpu.k == 8 * 8192
    assert spec_for(3e13, 1.0, block=4).k == 2 * gpu.k
    with pytest.raises(ValueError):
        spec_for(float("nan"), 1.0)
