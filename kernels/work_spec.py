"""Work specs: the few numbers a coordinator issues, their geometry, FLOPs, sizing and deadlines.

A spec is ``(seed, m, n, k, block)``: multiply the seeded A (m x k) by B = Bt.T (Bt is
n x k) and commit to C (m x n) cut into ``block`` x ``block`` blocks. Blocks are grouped
into tiles of 32 x 32 blocks (1024 leaves, a complete subtree of height 10); tiles are
numbered row-major over the tile grid and blocks row-major inside a tile, which is the leaf
order. Tiles let a node recompute the few it is challenged on instead of keeping every
leaf digest of a large unit.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass

from kernels.merkle import depth_for
from kernels.operands import K_ALIGN

__all__ = [
    "BLOCKS",
    "K_MAX",
    "K_PER_SECOND",
    "MN_MAX",
    "TILE_BLOCKS",
    "TILE_HEIGHT",
    "WorkSpec",
    "deadline_s",
    "spec_flops",
    "spec_for",
]

BLOCKS = (4, 8, 16)  # allowed block sizes (8 is the default: see docs/work-units.md)
TILE_BLOCKS = 32  # a tile is 32 x 32 blocks
TILE_HEIGHT = 10  # log2(32 * 32): a tile's subtree height
# 4k <= 2**24 keeps every partial sum exact in fp32; 2**20 leaves a margin of 4 bits.
K_MAX = 1 << 20
MN_MAX = 1 << 18  # m and n each; bounds the tree to 2**32 leaves
# The verifier's work per unit grows with k (it regenerates 2 * block rows of length k per
# sampled block); tying k to the unit's duration keeps verification a fixed share of it.
K_PER_SECOND = 8192
MIN_RATE = 1e9  # flop/s assumed for a node never measured (a slow CPU core)
CPU_CLASS_RATE = 1e12  # below this a node hashes on the CPU: bigger blocks, fewer hashlib calls


@dataclass(frozen=True)
class WorkSpec:
    """One work unit, fully determined by the coordinator."""

    seed: bytes  # 32 random bytes, never reused
    m: int
    n: int
    k: int
    block: int = 8

    def check(self) -> None:
        """Raise ValueError when the spec is outside the supported bounds."""
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise ValueError("seed must be 32 bytes")
        for name in ("m", "n", "k", "block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int")
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block}")
        for name, value in (("m", self.m), ("n", self.n)):
            if not 0 < value <= MN_MAX or value % self.tile:
                raise ValueError(f"{name} must be a multiple of {self.tile} up to {MN_MAX}")
        if not 0 < self.k <= K_MAX or self.k % K_ALIGN:
            raise ValueError(f"k must be a multiple of {K_ALIGN} up to {K_MAX}, got {self.k}")

    @property
    def tile(self) -> int:
        """Side of a tile in entries of C."""
        return TILE_BLOCKS * self.block

    @property
    def tiles_n(self) -> int:
        """Tiles across C (tile columns)."""
        return self.n // self.tile

    @property
    def n_tiles(self) -> int:
        """Tiles in C."""
        return (self.m // self.tile) * self.tiles_n

    @property
    def n_leaves(self) -> int:
        """Blocks of C, the leaves of the tree."""
        return (self.m // self.block) * (self.n // self.block)

    @property
    def depth(self) -> int:
        """Sibling digests in a Merkle path."""
        return depth_for(self.n_leaves)

    @property
    def spec_id(self) -> bytes:
        """32-byte digest naming this spec (bound into the root and the challenge)."""
        fields = b"".join(v.to_bytes(4, "little") for v in (self.m, self.n, self.k, self.block))
        return hashlib.sha256(b"OTS1" + self.seed + fields).digest()

    def block_origin(self, leaf: int) -> tuple[int, int]:
        """(row, col) of the top-left entry of leaf ``leaf``'s block in C."""
        tile, inside = divmod(leaf, TILE_BLOCKS * TILE_BLOCKS)
        tile_row, tile_col = divmod(tile, self.tiles_n)
        block_row, block_col = divmod(inside, TILE_BLOCKS)
        return (
            tile_row * self.tile + block_row * self.block,
            tile_col * self.tile + block_col * self.block,
        )


def spec_flops(spec: WorkSpec) -> int:
    """Operations credited for a verified unit: one multiply and one add per term."""
    return 2 * spec.m * spec.n * spec.k


def spec_for(
    flops_per_s: float,
    target_s: float = 1.0,
    *,
    block: int | None = None,
    k_per_second: int = K_PER_SECOND,
    seed: bytes | None = None,
) -> WorkSpec:
    """A spec of about ``target_s`` seconds for a node measured at ``flops_per_s``.

    k is tied to ``target_s`` (verification cost per unit is proportional to k), then m x n
    is sized to the FLOPs, as square as the tile grid allows. Tiny budgets get one tile and
    a shorter k; huge ones are capped at MN_MAX x MN_MAX. ``block`` defaults to 16 below
    CPU_CLASS_RATE (hashlib's per-call cost dominates there) and 8 above; the verifier's
    work is proportional to block x k, so k scales by 8 / block.
    """
    if not math.isfinite(flops_per_s) or not math.isfinite(target_s) or target_s <= 0:
        raise ValueError("flops_per_s and target_s must be finite, target_s positive")
    work = max(flops_per_s, MIN_RATE) * target_s
    if block is None:
        block = 16 if flops_per_s < CPU_CLASS_RATE else 8
    tile = TILE_BLOCKS * block
    k = _align(min(k_per_second * target_s * 8 / block, K_MAX))
    tiles = work / (2.0 * tile * tile * k)
    if tiles < 1:
        k = _align(work / (2.0 * tile * tile))
        tiles = 1.0
    side_max = MN_MAX // tile
    rows = max(1, min(side_max, math.isqrt(max(1, round(tiles)))))
    cols = max(1, min(side_max, round(tiles / rows)))
    spec = WorkSpec(
        seed=secrets.token_bytes(32) if seed is None else seed,
        m=rows * tile,
        n=cols * tile,
        k=k,
        block=block,
    )
    spec.check()
    return spec


def deadline_s(
    spec: WorkSpec, flops_per_s: float, *, slack: float = 4.0, floor: float = 30.0
) -> float:
    """Seconds from issue to answer a node gets: ``floor`` plus ``slack`` x the expected time."""
    rate = max(flops_per_s, MIN_RATE)
    return floor + slack * spec_flops(spec) / rate


def _align(k: float) -> int:
    return max(K_ALIGN, min(K_MAX, int(k) // K_ALIGN * K_ALIGN))
