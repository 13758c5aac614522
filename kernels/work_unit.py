"""The node's side of a verifiable work unit: generate, multiply, hash, commit, answer challenges.

Flow (docs/work-units.md has the design and the math)::

    unit = compute_unit(backend, spec)          # node: C = A @ Bt.T, Merkle root over blocks
    -> send unit.root                           # commitment
    indices = challenge_indices(secret, spec, unit.root)   # coordinator, after the root
    proof = answer(unit, indices)               # node: Merkle paths of the sampled blocks
    -> send encode_proof(proof)                 # <= 64 KiB whatever the unit size
    verify(spec, root, indices, proof_bytes)    # coordinator: recompute those blocks only

Everything on the node runs on ``backend.xp`` (CuPy or NumPy): operands are generated on the
device in panels, multiplied there, cut into blocks and hashed there; only digests reach
the host. A unit with more than ``keep_leaves_max`` blocks keeps only its tile roots and
recomputes the challenged tiles when answering (a few GEMMs of 256 x 256 x k).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import Array, Backend, numpy_backend
from kernels.merkle import (
    LEAF_TAG,
    bind_root,
    build_levels,
    digest_bytes,
    parent_level,
    path_from_levels,
)
from kernels.operands import host_rows, operand_key, operand_rows
from kernels.sha256 import Hasher, select_hasher
from kernels.work_proof import (
    MAX_SAMPLES,
    Proof,
    Verdict,
    challenge_indices,
    decode_proof,
    encode_proof,
    verify,
)
from kernels.work_spec import TILE_BLOCKS, TILE_HEIGHT, WorkSpec, spec_flops, spec_for

__all__ = [
    "PRECISIONS",
    "Proof",
    "UnitResult",
    "Verdict",
    "answer",
    "challenge_indices",
    "compute_unit",
    "decode_proof",
    "encode_proof",
    "exact_gemm",
    "spec_flops",
    "spec_for",
    "tile_leaves",
    "unit_from_leaf_digests",
    "verify",
    "warm_up",
]

PRECISIONS = ("float32", "float16")
# fp16 products of {-2,..,2} summed over 512 terms stay within +-2048, where every integer
# is an fp16: exact even with fp16 accumulation. Chunks are then summed in fp32.
FP16_CHUNK = 512
LEAVES_PER_TILE = TILE_BLOCKS * TILE_BLOCKS
BT_CACHE_BYTES = 256 << 20
# The smallest unit at the usual block: one tile, k = 64 (a few MFLOP).
WARM_UP_SPEC = WorkSpec(bytes(32), 32 * 8, 32 * 8, 64, 8)
_WARM: set[tuple[int, str, int | None, str]] = set()


@dataclass
class UnitResult:
    """What a node keeps between committing and answering: the tree (host) and how to redo it."""

    spec: WorkSpec
    root: bytes
    levels: list[npt.NDArray[np.uint32]]  # host digests, from level ``base_level`` to the top
    base_level: int  # 0: every leaf digest kept; TILE_HEIGHT: tile roots and above only
    backend: Backend
    precision: str
    hasher: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per node-side stage


def exact_gemm(xp: Any, a: Array, bt: Array, precision: str) -> Array:
    """``a @ bt.T`` as int32, exact for the unit's small-integer operands in either precision."""
    if precision == "float32":
        return xp.matmul(a, bt.T).astype(xp.int32)
    acc = xp.zeros((a.shape[0], bt.shape[0]), dtype=xp.float32)
    for start in range(0, a.shape[1], FP16_CHUNK):
        part = xp.matmul(a[:, start : start + FP16_CHUNK], bt[:, start : start + FP16_CHUNK].T)
        acc += part.astype(xp.float32)
    return acc.astype(xp.int32)


def tile_leaves(xp: Any, c: Array, block: int, tile_rows: int, tile_cols: int) -> Array:
    """Cut a panel of C (tile_rows x tile_cols tiles) into leaves, in leaf order per tile."""
    t = TILE_BLOCKS
    six = c.reshape(tile_rows, t, block, tile_cols, t, block).transpose(0, 3, 1, 4, 2, 5)
    return xp.ascontiguousarray(six).reshape(tile_rows * tile_cols * t * t, block * block)


def warm_up(backend: Backend, precision: str = "float32") -> None:
    """Run the smallest unit once per thread, device and precision (later calls return).

    The first unit in a thread pays for CuPy compiling its kernels, the thread's cuBLAS
    handle and the hasher's self-check; :func:`compute_unit` calls this first so none of
    it is timed, and a worker may call it at start so its first unit is not slower.
    """
    key = (threading.get_ident(), backend.name, backend.index, precision)
    if key in _WARM:
        return
    _compute(
        backend, WARM_UP_SPEC, precision=precision, keep_leaves_max=1 << 20, panel=None, hasher=None
    )
    _WARM.add(key)


def compute_unit(
    backend: Backend,
    spec: WorkSpec,
    *,
    precision: str = "float32",
    keep_leaves_max: int = 1 << 20,
    panel: int | None = None,
    hasher: Hasher | None = None,
) -> UnitResult:
    """Do the unit's GEMM on ``backend`` and commit to it (``panel``: panel side, entries).

    Runs on the backend's device and stream, after a one-off :func:`warm_up`.
    """
    spec.check()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    warm_up(backend, precision)
    return _compute(
        backend,
        spec,
        precision=precision,
        keep_leaves_max=keep_leaves_max,
        panel=panel,
        hasher=hasher,
    )


def _compute(
    backend: Backend,
    spec: WorkSpec,
    *,
    precision: str,
    keep_leaves_max: int,
    panel: int | None,
    hasher: Hasher | None,
) -> UnitResult:
    with backend.activate():
        return _compute_active(
            backend,
            spec,
            precision=precision,
            keep_leaves_max=keep_leaves_max,
            panel=panel,
            hasher=hasher,
        )


def _compute_active(
    backend: Backend,
    spec: WorkSpec,
    *,
    precision: str,
    keep_leaves_max: int,
    panel: int | None,
    hasher: Hasher | None,
) -> UnitResult:
    xp = backend.xp
    hasher = hasher or select_hasher(backend)
    dtype = xp.float32 if precision == "float32" else xp.float16
    tile = spec.tile
    side = max(1, (panel or (4096 if backend.is_cupy else 2048)) // tile)
    tiles_m, tiles_n = spec.m // tile, spec.n // tile
    keep = spec.n_leaves <= keep_leaves_max
    kept = range(TILE_HEIGHT + 1) if keep else range(TILE_HEIGHT, TILE_HEIGHT + 1)
    levels = {lv: np.empty((spec.n_tiles << (TILE_HEIGHT - lv), 8), np.uint32) for lv in kept}
    timings = dict.fromkeys(("generate", "gemm", "hash", "tree"), 0.0)
    key_a, key_b = operand_key(spec.seed, "A"), operand_key(spec.seed, "Bt")
    # Bt is needed once per row panel: keep its panels when it is small, else regenerate.
    itemsize = 4 if precision == "float32" else 2
    cache_bt = tiles_m > side and spec.n * spec.k * itemsize <= BT_CACHE_BYTES
    bt_panels: dict[int, Array] = {}

    def timed(stage: str, fn: Callable[..., Array], *args: Any) -> Array:
        out: list[Array] = []
        timings[stage] += backend.time_call(lambda: out.append(fn(*args)))
        return out[0]

    for tr in range(0, tiles_m, side):
        pr = min(side, tiles_m - tr)
        rows_a = xp.arange(tr * tile, (tr + pr) * tile)
        a = timed("generate", _rows, backend, key_a, rows_a, spec.k, dtype)
        for tc in range(0, tiles_n, side):
            pc = min(side, tiles_n - tc)
            bt = bt_panels.get(tc)
            if bt is None:
                rows_b = xp.arange(tc * tile, (tc + pc) * tile)
                bt = timed("generate", _rows, backend, key_b, rows_b, spec.k, dtype)
                if cache_bt:
                    bt_panels[tc] = bt
            c = timed("gemm", exact_gemm, xp, a, bt, precision)
            leaves = tile_leaves(xp, c, spec.block, pr, pc)
            level = timed("hash", hasher.hash, leaves.view(xp.uint32), LEAF_TAG, True)
            tiles = [(tr + i) * tiles_n + tc + j for i in range(pr) for j in range(pc)]
            for lv in range(TILE_HEIGHT + 1):
                if lv in levels:
                    _scatter(levels[lv], backend.to_host(level), tiles, TILE_HEIGHT - lv)
                if lv < TILE_HEIGHT:
                    level = timed("tree", parent_level, hasher, level)
    top_levels = _upper_levels(levels[TILE_HEIGHT], timings)
    stored = [levels[lv] for lv in sorted(levels)] + top_levels[1:]
    return UnitResult(
        spec=spec,
        root=bind_root(spec.spec_id, digest_bytes(stored[-1][0])),
        levels=stored,
        base_level=0 if keep else TILE_HEIGHT,
        backend=backend,
        precision=precision,
        hasher=hasher.name,
        timings=timings,
    )


def unit_from_leaf_digests(spec: WorkSpec, digests: npt.NDArray[np.uint32]) -> UnitResult:
    """Commit to given leaf digests ((n_leaves, 8) words) on the host; for tests and tools."""
    spec.check()
    if digests.shape != (spec.n_leaves, 8):
        raise ValueError(f"expected {spec.n_leaves} leaf digests, got shape {digests.shape}")
    host = select_hasher(numpy_backend())
    levels = [np.asarray(lv, dtype=np.uint32) for lv in build_levels(host, digests)]
    return UnitResult(
        spec=spec,
        root=bind_root(spec.spec_id, digest_bytes(levels[-1][0])),
        levels=levels,
        base_level=0,
        backend=numpy_backend(),
        precision="float32",
        hasher=host.name,
    )


def answer(unit: UnitResult, indices: Sequence[int]) -> Proof:
    """The Merkle paths of the challenged blocks, in the challenge's order.

    Raises ValueError for a challenge that is not one (wrong count, index out of range):
    the node should report it, not crash.
    """
    spec = unit.spec
    if not 0 < len(indices) <= MAX_SAMPLES:
        raise ValueError(f"a challenge has 1..{MAX_SAMPLES} indices, got {len(indices)}")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ValueError("challenge indices must be integers")
        if not 0 <= int(index) < spec.n_leaves:
            raise ValueError(f"challenge index {index} is outside 0..{spec.n_leaves - 1}")
    if unit.base_level == 0:
        paths = [path_from_levels(unit.levels, int(i)) for i in indices]
        return Proof(spec_id=spec.spec_id, indices=tuple(int(i) for i in indices), paths=paths)
    subtrees: dict[int, list[npt.NDArray[np.uint32]]] = {}
    paths = []
    for index in (int(i) for i in indices):
        tile, inside = divmod(index, LEAVES_PER_TILE)
        if tile not in subtrees:
            subtrees[tile] = _tile_subtree(unit, tile)
        paths.append(path_from_levels(subtrees[tile], inside) + path_from_levels(unit.levels, tile))
    return Proof(spec_id=spec.spec_id, indices=tuple(int(i) for i in indices), paths=paths)


def _tile_subtree(unit: UnitResult, tile: int) -> list[npt.NDArray[np.uint32]]:
    with unit.backend.activate():
        return _tile_subtree_active(unit, tile)


def _tile_subtree_active(unit: UnitResult, tile: int) -> list[npt.NDArray[np.uint32]]:
    backend, spec = unit.backend, unit.spec
    xp = backend.xp
    dtype = xp.float32 if unit.precision == "float32" else xp.float16
    tile_row, tile_col = divmod(tile, spec.tiles_n)
    rows_a = xp.arange(tile_row * spec.tile, (tile_row + 1) * spec.tile)
    rows_b = xp.arange(tile_col * spec.tile, (tile_col + 1) * spec.tile)
    a = _rows(backend, operand_key(spec.seed, "A"), rows_a, spec.k, dtype)
    bt = _rows(backend, operand_key(spec.seed, "Bt"), rows_b, spec.k, dtype)
    leaves = tile_leaves(xp, exact_gemm(xp, a, bt, unit.precision), spec.block, 1, 1)
    hasher = select_hasher(backend)
    digests = hasher.hash(leaves.view(xp.uint32), LEAF_TAG, True)
    return [backend.to_host(lv) for lv in build_levels(hasher, digests)]


def _rows(backend: Backend, key: int, rows: Array, k: int, dtype: Any) -> Array:
    # Same values either way (tested); the host path is several times faster on NumPy.
    if backend.is_cupy:
        return operand_rows(backend.xp, key, rows, k, dtype)
    return host_rows(key, rows, k).astype(dtype, copy=False)


def _scatter(dest: npt.NDArray[np.uint32], src: Any, tiles: list[int], height: int) -> None:
    # The panel's digests are in panel tile order; each tile owns 2**height slots of dest.
    per = 1 << height
    slots = (np.asarray(tiles, dtype=np.int64)[:, None] * per + np.arange(per)).reshape(-1)
    dest[slots] = np.asarray(src, dtype=np.uint32)


def _upper_levels(
    tile_roots: npt.NDArray[np.uint32], timings: dict[str, float]
) -> list[npt.NDArray[np.uint32]]:
    host = numpy_backend()
    out: list[npt.NDArray[np.uint32]] = []
    timings["tree"] += host.time_call(
        lambda: out.extend(build_levels(select_hasher(host), tile_roots))
    )
    return out
