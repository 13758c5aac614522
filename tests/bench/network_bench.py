"""Network benchmarks: the coordinator's ingest of verified units, and end-to-end latency.

Run ``python -m tests.bench.network_bench [--units 200] [--nodes 50] [--unit-seconds 0.1]``.

1. Ingest, on one coordinator core: the real coordinator (its store, its ingest, its
   verification) issues ``--units`` units to ``--nodes`` identities; honest nodes compute
   them beforehand in a process pool (not timed); then the coordinator is pinned to ONE core
   and handles every commitment (storing roots, drawing challenges) and every proof
   (recomputing the sampled blocks, writing verdicts and ledger credits, building receipts)
   in batches, as it does in production. Publishing is counted, not sent (the broker's share
   is in part 2). Reported: verified units per second and coordinator CPU per unit, bytes on
   the wire per unit (commitment + proof). Units are sized for this CPU's rate: the
   verification cost of GPU-sized units (which does not depend on the node's speed) is
   ``python -m tests.bench.work_bench``'s figure.
2. Latency: a real node (NumPy kernels) and the coordinator on a real Mosquitto; from the
   node's store: unit received to receipt applied (compute, commit, challenge, prove,
   verify), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from core.config import load_config
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.coordinator.work_records import Unit
from core.identity import Identity
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.protocol import Challenge, Message, Receipt, WorkCommit, WorkProof, decode, encode
from kernels.backend import numpy_backend
from kernels.work_proof import encode_proof
from kernels.work_spec import WorkSpec
from kernels.work_unit import UnitResult, answer, compute_unit
from tests.helpers.broker import MosquittoProcess, free_port


def _pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def _compute(spec: WorkSpec) -> UnitResult:
    # The backend holds a module, which does not pickle: the parent puts its own back.
    return dataclasses.replace(compute_unit(numpy_backend(), spec), backend=None)  # type: ignore[arg-type]


def _spec(unit: Unit) -> WorkSpec:
    return WorkSpec(unit.seed, unit.m, unit.n, unit.k, unit.block)


async def ingest(units: int, nodes: int, unit_seconds: float, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = CoordinatorSettings(
            data_dir=Path(tmp) / "coord",
            broker_url="mqtt://127.0.0.1:1",
            unit_seconds=unit_seconds,
            task_interval_s=0.0,
        )
        async with Coordinator(settings) as coordinator:
            sent: list[tuple[str, Any]] = []
            wire_bytes = {"challenge": 0, "receipt": 0}

            async def publish(topic: str, kind: str, data: Any, retain: bool) -> None:
                sent.append((kind, data))

            coordinator.state.publish = publish
            identities = [Identity.generate() for _ in range(nodes)]
            issued: list[tuple[Identity, Unit]] = []
            for i in range(units):
                who = identities[i % nodes]
                state = coordinator.state.node(who.node_id)
                state.slot(0).sizing_rate = rate
                state.online, state.last_traffic = True, time.time()
                await coordinator.state.store.upsert_node(who.node_id, name=f"n{i % nodes}")
                issued.append(
                    (
                        who,
                        await coordinator.scheduler.issue(who.node_id, state, "work", time.time()),
                    )
                )
            # The nodes' work, done before the clock starts (two processes).
            with ProcessPoolExecutor(max_workers=2) as pool:
                computed = pool.map(_compute, [_spec(u) for _w, u in issued])
                results = [dataclasses.replace(r, backend=numpy_backend()) for r in computed]
            _pin(0)
            seqs = dict.fromkeys((w.node_id for w in identities), 0)

            def signed(who: Identity, data: WorkCommit | WorkProof) -> tuple[Message, Any]:
                seqs[who.node_id] += 1
                raw = encode(who, seqs[who.node_id], data.TYPE, data)
                return decode(raw), data

            commits = [
                signed(w, WorkCommit(task_id=u.task_id, root=r.root.hex(), elapsed_s=1.0))
                for (w, u), r in zip(issued, results, strict=True)
            ]
            commit_bytes = sum(m.size for m, _ in commits)
            batch = coordinator.state.settings.batch_max
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for start in range(0, len(commits), batch):
                await coordinator.ingest.process_batch(commits[start : start + batch])
            cpu1, wall1 = time.process_time(), time.perf_counter()
            challenges = {c.task_id: c for kind, c in sent if isinstance(c, Challenge)}
            proofs = []
            for (who, unit), result in zip(issued, results, strict=True):
                challenge = challenges[unit.task_id]
                proof = encode_proof(answer(result, challenge.indices))
                data = WorkProof(
                    task_id=unit.task_id,
                    root=result.root.hex(),
                    proof_b64=base64.b64encode(proof).decode(),
                )
                proofs.append(signed(who, data))
            proof_bytes = sum(m.size for m, _ in proofs)
            cpu2, wall2 = time.process_time(), time.perf_counter()
            for start in range(0, len(proofs), batch):
                await coordinator.ingest.process_batch(proofs[start : start + batch])
            cpu3, wall3 = time.process_time(), time.perf_counter()
            receipts = [r for kind, r in sent if isinstance(r, Receipt)]
            for kind, data in sent:
                if isinstance(data, Challenge | Receipt):
                    key = "challenge" if isinstance(data, Challenge) else "receipt"
                    wire_bytes[key] += len(encode(Identity.generate(), 1, kind, data))
    accepted = sum(r.accepted for r in receipts)
    cpu = (cpu1 - cpu0) + (cpu3 - cpu2)
    wall = (wall1 - wall0) + (wall3 - wall2)
    spec = _spec(issued[0][1])
    return {
        "units": units,
        "accepted": accepted,
        "unit": f"{spec.m}x{spec.k}x{spec.n} block {spec.block}",
        "verified_units_per_s_one_core": round(accepted / wall, 1),
        "coordinator_cpu_ms_per_unit": round(1000 * cpu / max(accepted, 1), 2),
        "commit_cpu_ms_per_unit": round(1000 * (cpu1 - cpu0) / units, 2),
        "proof_cpu_ms_per_unit": round(1000 * (cpu3 - cpu2) / units, 2),
        "bytes_in_per_unit": round((commit_bytes + proof_bytes) / units),
        "bytes_out_per_unit": round(sum(wire_bytes.values()) / units),
    }


async def latency(units: int, interval: float, unit_seconds: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        MosquittoProcess(Path(tmp) / "m", port=free_port()) as broker,
    ):
        settings = CoordinatorSettings(
            data_dir=Path(tmp) / "coord",
            broker_url=broker.url,
            task_interval_s=interval,
            unit_seconds=unit_seconds,
        )
        config = load_config(
            {"data_dir": str(Path(tmp) / "node"), "name": "bench", "broker.trust_first_use": True}
        )
        async with Coordinator(settings) as coordinator:
            runner = asyncio.create_task(coordinator.run())
            async with Node(config, nvml=FakeNvml.with_gpus(1), network_url=broker.url) as node:
                assert node.store is not None
                while (await node.store.work_counters())["work.acknowledged"] < units:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            coordinator.close()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        with sqlite3.connect(Path(tmp) / "node" / "node.db") as db:
            rows = db.execute(
                "SELECT receipt_ts - received_ts, status FROM units WHERE receipt_ts IS NOT NULL"
                " ORDER BY received_ts"
            ).fetchall()
    # The first units overlap the node's first-run benchmark and the size ramp: skip them.
    steady: Sequence[Any] = rows[10:] or rows
    values = sorted(r[0] * 1000 for r in steady)
    return {
        "units": len(values),
        "accepted": sum(r[1] == "accepted" for r in steady),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
        "max_ms": round(values[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--unit-seconds", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=5e10, help="node FLOP/s units are sized for")
    parser.add_argument("--latency-units", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args()
    print("ingest ", asyncio.run(ingest(args.units, args.nodes, args.unit_seconds, args.rate)))
    print("latency", asyncio.run(latency(args.latency_units, args.interval, args.unit_seconds)))


if __name__ == "__main__":
    main()
