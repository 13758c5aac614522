"""Measure verifiable work units: wire bytes, coordinator CPU per unit, node cost split, skip pay.

Run ``python -m tests.bench.work_bench [--units 2000] [--target 1.0]``. Sections:

1. bytes per result (the proof a node sends, plus its 32-byte root) for units sized from
   10 GFLOPS to 1 PFLOPS-seconds;
2. the node's cost split (generate / GEMM / hash / tree / answer) of a real unit sized to
   this CPU's measured NumPy GEMM rate for ``--target`` seconds;
3. the coordinator's CPU time to verify one unit (process CPU time, all threads), for that
   real CPU unit and for GPU-sized units. The GPU-sized proofs come from a SPARSE PROVER:
   it computes only the challenged blocks honestly and puts one placeholder digest on every
   other leaf, so it can build the root and paths of a unit with 2**25 leaves in
   milliseconds. The verifier does exactly what it does for a real unit (it cannot tell);
   only the node's work is skipped. The sparse prover is checked against the real tree of
   a small unit first;
4. the skip-fraction table: catch probability and expected pay vs honest, analytic and
   simulated through the real challenge sampler.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import secrets
import statistics
import time
from collections.abc import Callable

import numpy as np

from kernels.backend import numpy_backend
from kernels.gemm import benchmark_gemm
from kernels.merkle import EMPTY, bind_root, leaf_digest, node_digest
from kernels.work_economics import simulate_skipping, skip_outcome
from kernels.work_proof import DEFAULT_SAMPLES, Proof, expected_blocks, proof_size
from kernels.work_spec import WorkSpec, spec_flops, spec_for
from kernels.work_unit import (
    answer,
    challenge_indices,
    compute_unit,
    encode_proof,
    unit_from_leaf_digests,
    verify,
)

KiB = 1024
SECRET = secrets.token_bytes(32)
F_TABLE = (0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0)


def sparse_proof(spec: WorkSpec, indices: tuple[int, ...]) -> tuple[bytes, bytes]:
    """SPARSE PROVER (benchmark only): root and proof with only ``indices`` computed honestly."""
    n = spec.n_leaves
    known = dict(
        zip(indices, (leaf_digest(b) for b in expected_blocks(spec, indices)), strict=True)
    )
    marks = sorted(known)
    placeholder = leaf_digest(np.zeros((spec.block, spec.block), dtype=np.int32))
    clean = [placeholder]
    counts = [n]
    for _ in range(spec.depth):
        clean.append(node_digest(clean[-1], clean[-1]))
        counts.append((counts[-1] + 1) // 2)
    memo: dict[tuple[int, int], bytes] = {}

    def node(level: int, j: int) -> bytes:
        if j >= counts[level]:
            return EMPTY
        if level == 0:
            return known.get(j, placeholder)
        lo, hi = j << level, (j + 1) << level
        at = bisect.bisect_left(marks, lo)
        if hi <= n and (at == len(marks) or marks[at] >= hi):
            return clean[level]  # a full subtree of placeholders
        if (level, j) not in memo:
            memo[level, j] = node_digest(node(level - 1, 2 * j), node(level - 1, 2 * j + 1))
        return memo[level, j]

    paths = [[node(lv, (i >> lv) ^ 1) for lv in range(spec.depth)] for i in indices]
    root = bind_root(spec.spec_id, node(spec.depth, 0))
    return root, encode_proof(Proof(spec_id=spec.spec_id, indices=indices, paths=paths))


def _check_sparse_prover() -> None:
    spec = WorkSpec(seed=b"\x05" * 32, m=768, n=512, k=64)
    unit = compute_unit(numpy_backend(), spec)
    indices = tuple(range(spec.n_leaves))[:: max(1, spec.n_leaves // 40)][:DEFAULT_SAMPLES]
    # With every leaf "known" the sparse prover must rebuild the real tree exactly.
    full = unit_from_leaf_digests(spec, unit.levels[0])
    assert full.root == unit.root
    root, proof = sparse_proof(spec, indices)
    assert verify(spec, root, indices, proof).ok, "sparse prover self-check failed"


def _cpu_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median process CPU time and wall time of ``fn`` over ``repeats`` runs."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def section_bytes() -> None:
    print(f"\n== 1. Bytes per result (root 32 B + proof, s = {DEFAULT_SAMPLES} samples) ==")
    print(
        f"{'rate':>10} {'target':>7} {'m x n x k':>26} {'block':>5} {'leaves':>11}"
        f" {'depth':>5} {'bytes':>8}"
    )
    for rate in (1e10, 8.5e10, 1e12, 3e13, 3e14, 1e15):
        for target in (1.0, 10.0):
            spec = spec_for(rate, target, seed=bytes(32))
            size = 32 + proof_size(DEFAULT_SAMPLES, spec.depth)
            dims = f"{spec.m} x {spec.n} x {spec.k}"
            print(
                f"{rate / 1e12:>7.3g} TF {target:>6.0f}s {dims:>26} {spec.block:>5}"
                f" {spec.n_leaves:>11,}"
                f" {spec.depth:>5} {size / KiB:>6.1f}Ki"
            )
    print(f"largest possible proof: {proof_size(64, 32) / KiB:.1f} KiB (64 samples, depth 32)")


def section_node(target: float) -> tuple[WorkSpec, float, float]:
    backend = numpy_backend()
    rate = benchmark_gemm(backend, 2048, "float32", trials=3).tflops * 1e12
    spec = spec_for(rate, target)
    t0 = time.perf_counter()
    unit = compute_unit(backend, spec)
    elapsed = time.perf_counter() - t0
    indices = challenge_indices(SECRET, spec, unit.root)
    t1 = time.perf_counter()
    proof = encode_proof(answer(unit, indices))
    answer_s = time.perf_counter() - t1
    print(f"\n== 2. Node cost split on this CPU (NumPy GEMM measured {rate / 1e9:.1f} GFLOPS) ==")
    print(f"unit {spec.m} x {spec.n} x {spec.k}, block {spec.block}, {spec.n_leaves:,} leaves")
    print(f"total {elapsed:.3f} s = {spec_flops(spec) / elapsed / 1e9:.1f} effective GFLOPS")
    for stage, seconds in unit.timings.items():
        print(f"  {stage:<9} {seconds:7.3f} s  {100 * seconds / elapsed:5.1f} %")
    print(f"  answer    {answer_s:7.3f} s  (after the challenge; {len(proof):,} bytes)")
    hashing = unit.timings["hash"] + unit.timings["tree"]
    print(f"hashing / GEMM = {hashing / unit.timings['gemm']:.2f} (hasher: {unit.hasher})")
    lean = compute_unit(backend, spec, keep_leaves_max=0)
    t2 = time.perf_counter()
    answer(lean, indices)
    print(f"answer when only tile roots are kept: {time.perf_counter() - t2:.3f} s")
    verdict = verify(spec, unit.root, indices, proof)
    assert verdict.ok, verdict.reason
    return spec, elapsed, rate


def section_verify(cpu_spec: WorkSpec, cpu_node_s: float, cpu_rate: float) -> None:
    print("\n== 3. Coordinator CPU per verified unit (process CPU time, median) ==")
    print(
        f"{'unit':>34} {'node s':>7} {'verify CPU':>11} {'wall':>8} {'share':>7}"
        f" {'units/s/core':>12} {'nodes/core':>10}"
    )
    rows: list[tuple[str, WorkSpec, float, bool]] = [
        (f"real CPU unit ({cpu_rate / 1e9:.0f} GF)", cpu_spec, cpu_node_s, True)
    ]
    for rate, target in ((3e13, 1.0), (3e13, 10.0), (3e14, 1.0)):
        label = f"SPARSE {rate / 1e12:.0f} TF x {target:.0f} s"
        rows.append((label, spec_for(rate, target, seed=secrets.token_bytes(32)), target, False))
    for label, spec, node_s, real in rows:
        if real:
            unit = compute_unit(numpy_backend(), spec)
            root = unit.root
            indices = challenge_indices(SECRET, spec, root)
            proof = encode_proof(answer(unit, indices))
        else:
            # The indices must exist before the sparse root; any uniform draw times the same.
            indices = challenge_indices(SECRET, spec, secrets.token_bytes(32))
            root, proof = sparse_proof(spec, indices)
        assert verify(spec, root, indices, proof).ok
        cpu, wall = _cpu_seconds(lambda: verify(spec, root, indices, proof), 7)  # noqa: B023
        shape = f"{spec.m}x{spec.n}x{spec.k}"
        print(
            f"{label + ' ' + shape:>34} {node_s:>7.2f} {cpu * 1e3:>9.2f}ms {wall * 1e3:>6.2f}ms"
            f" {100 * cpu / node_s:>6.3f}% {1 / cpu:>12.0f} {node_s / cpu:>10.0f}"
        )
    print("share = verify CPU / node-seconds credited; nodes/core = busy nodes one core keeps up")


def section_skip(units: int) -> None:
    print("\n== 4. Skipping a fraction f of each unit: caught probability and pay vs honest ==")
    print("pay ratio = expected pay per node-second / honest; slash sigma in units of the pay")
    spec = WorkSpec(seed=bytes(32), m=1024, n=1024, k=64)
    rng = np.random.default_rng(2024)
    for s in (8, 32):
        for sigma in (0.0, 1.0):
            print(f"-- s = {s}, sigma = {sigma:g}, check every unit (N = {spec.n_leaves})")
            print(f"{'f':>6} {'p bound':>8} {'p exact':>8} {'p sim':>8} {'ratio':>9} {'sim':>9}")
            for f in F_TABLE:
                bound = skip_outcome(f, s, sigma)
                exact = skip_outcome(f, s, sigma, n_leaves=spec.n_leaves)
                sim = simulate_skipping(f, s, sigma, units=units, rng=rng, spec=spec)
                print(
                    f"{f:>6.2f} {bound.p_caught:>8.4f} {exact.p_caught:>8.4f} {sim.p_caught:>8.4f}"
                    f" {_ratio(exact.pay_rate_ratio):>9} {_ratio(sim.pay_rate_ratio):>9}"
                )
    print("-- spot checks (q = 1/10, as the game rules do for trusted nodes), s = 32, sigma = 1")
    for f in F_TABLE:
        out = skip_outcome(f, 32, 1.0, check_probability=0.1)
        print(f"{f:>6.2f} p {out.p_caught:.4f} ratio {_ratio(out.pay_rate_ratio)}")


def _ratio(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else ("-inf" if value < 0 else "+inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000, help="simulated units per table row")
    parser.add_argument("--target", type=float, default=1.0, help="CPU unit length, seconds")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    _check_sparse_prover()
    section_bytes()
    spec, node_s, rate = section_node(args.target)
    section_verify(spec, node_s, rate)
    section_skip(args.units)


if __name__ == "__main__":
    main()
