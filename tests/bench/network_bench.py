"""Network benchmarks through a real Mosquitto: coordinator ingest rate and end-to-end latency.

Run ``python -m tests.bench.network_bench [--messages 5000] [--n 64] [--latency-units 200]``.

1. Ingest: a publisher *process* (pinned to the other core) signs ``work.result`` messages
   for many synthetic nodes and publishes them as fast as it can; the coordinator runs in
   this process pinned to ONE core and does everything it does in production: decode, check
   the envelope and signature, Freivalds-verify each product against its task (regenerating
   A and B from the seed), write verdicts and ledger credits in batched transactions, and
   publish a signed receipt for each. Reported: verified messages per second, measured at the
   coordinator from the first to the last verdict.
2. Latency: a real node (NumPy kernels) and the coordinator on the broker, one task per
   ``--interval`` seconds; from the node's store: submission (result written to the outbox)
   to receipt (the coordinator's signed verdict applied), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from core.config import load_config
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.identity import Identity
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.protocol import DEFAULT_TOPICS, WorkResult, encode
from kernels.backend import numpy_backend
from kernels.gemm_task import run_work_unit
from tests.helpers.broker import MosquittoProcess, free_port

SENDERS = 50


def _pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def _make_messages(
    identities: list[Identity], tasks: list[tuple[int, str, int]], n: int
) -> list[tuple[str, bytes]]:
    backend = numpy_backend()
    out = []
    seqs = dict.fromkeys(range(len(identities)), 0)
    for who, task_id, seed in tasks:
        identity = identities[who]
        product = run_work_unit(backend, n, "float32", seed)
        seqs[who] += 1
        result = WorkResult(
            work_id=f"w-{task_id}",
            task_id=task_id,
            kind="gemm",
            seed=seed,
            n=n,
            dtype="float32",
            commitment=product.commitment,
            result_b64=base64.b64encode(product.result).decode(),
            elapsed_s=product.elapsed_s,
            tflops=product.tflops,
        )
        payload = encode(identity, seqs[who], WorkResult.TYPE, result)
        out.append((DEFAULT_TOPICS.node_work(identity.node_id), payload))
    return out


def _publisher(port: int, messages: list[tuple[str, bytes]], ready: Any) -> None:
    _pin(1)

    async def go() -> None:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="bench-publisher", max_inflight_messages=1000
        ) as client:
            ready.wait()
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1)

    asyncio.run(go())


async def ingest(count: int, n: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        MosquittoProcess(Path(tmp) / "m", port=free_port()) as broker,
    ):
        identities = [Identity.generate() for _ in range(SENDERS)]
        rng = np.random.default_rng(1)
        tasks = [(i % SENDERS, f"t{i:08d}", int(rng.integers(0, 2**62))) for i in range(count)]
        print(f"ingest: preparing {count} signed {n}x{n} float32 results ...", file=sys.stderr)
        messages = _make_messages(identities, tasks, n)
        size = sum(len(p) for _, p in messages) / len(messages)
        settings = CoordinatorSettings(
            data_dir=Path(tmp) / "coord", broker_url=broker.url, task_n=n, board_interval_s=3600
        )
        _pin(0)
        async with Coordinator(settings) as coordinator:
            assert coordinator.store is not None
            for who, task_id, seed in tasks:
                await coordinator.store.add_task(
                    task_id,
                    identities[who].node_id,
                    seed=seed,
                    n=n,
                    dtype="float32",
                    deadline_ts=time.time() + 3600,
                )
            runner = asyncio.create_task(coordinator.run())
            await asyncio.wait_for(coordinator.connected.wait(), 10)
            ready = multiprocessing.Event()
            proc = multiprocessing.Process(target=_publisher, args=(broker.port, messages, ready))
            proc.start()
            await asyncio.sleep(1.0)
            cpu0 = time.process_time()
            ready.set()
            first: float | None = None
            while True:
                done = coordinator.stats["verified"] + coordinator.stats["rejected"]
                if done and first is None:
                    first = time.perf_counter()
                if done >= count:
                    break
                await asyncio.sleep(0.005)
            last = time.perf_counter()
            cpu = time.process_time() - cpu0
            proc.join(30)
            coordinator.close()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            stats = dict(coordinator.stats)
    assert first is not None
    return {
        "messages": count,
        "n": n,
        "message_bytes": round(size),
        "verified": stats["verified"],
        "rejected": stats["rejected"],
        "seconds": round(last - first, 3),
        "verified_per_s": round(stats["verified"] / (last - first), 1),
        "coordinator_cpu_s": round(cpu, 2),
    }


async def latency(units: int, interval: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        MosquittoProcess(Path(tmp) / "m", port=free_port()) as broker,
    ):
        settings = CoordinatorSettings(
            data_dir=Path(tmp) / "coord",
            broker_url=broker.url,
            task_interval_s=interval,
            task_n=128,
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
                "SELECT receipt_ts - ts FROM work WHERE receipt_ts IS NOT NULL ORDER BY ts"
            ).fetchall()
    # The first units overlap the node's first-run benchmark: measure the steady state.
    values = sorted(r[0] * 1000 for r in rows[10:])
    return {
        "units": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
        "max_ms": round(values[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--latency-units", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    print("ingest ", asyncio.run(ingest(args.messages, args.n)))
    print("latency", asyncio.run(latency(args.latency_units, args.interval)))


if __name__ == "__main__":
    main()
