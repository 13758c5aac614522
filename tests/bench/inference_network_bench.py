"""Inference as network work: a job end to end vs the same sentences on one node.

Run ``python -m tests.bench.inference_network_bench [--sentences 512] [--nodes 3]``.

A real Mosquitto, the real coordinator in its own process (``omnitensor coordinator``, so
its CPU can be read from /proc) and ``--nodes`` real nodes in this process, each serving
the installed all-MiniLM-L6-v2. The first node submits a warm-up job (the nodes load the
model on their first task), then the measured job. Reported:

- end-to-end sentences/s of the network job (submit to delivered: every task encoded by two
  nodes, committed, revealed and compared) and of a local encode of the same sentences on
  one node (``SentenceEncoder``, the model already loaded);
- the coordinator's CPU (user + system, its whole process) per 1,000 verified sentences;
- Proof of Inference's false-accept and false-reject rates, from the committed calibration
  (``kernels/inference/data/poi_calibration.json``, ``python -m tests.bench.poi_calibration``).

All nodes share this machine's cores: on one machine the network job does twice the
encoding of a local run (two workers per task), so it cannot be faster; the figure shows
what the protocol costs on top.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from core.api.commands import GetJobResult, SubmitJob
from core.config import load_config
from core.coordinator.store import CoordinatorStore
from core.errors import CommandError
from core.identity import load_or_create_identity
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from kernels.backend import numpy_backend
from kernels.inference import SentenceEncoder, find_model_dir, load_model
from tests.helpers.broker import MosquittoProcess
from tests.helpers.cli import ROOT, cli_env

CALIBRATION = ROOT / "kernels" / "inference" / "data" / "poi_calibration.json"
SUBJECTS = ("The engineer", "A child", "My neighbour", "The old captain", "A nurse", "Our team")
VERBS = ("repairs", "describes", "photographs", "sells", "paints", "forgets", "finds")
OBJECTS = ("a broken radio", "the harbour at dawn", "three green apples", "the final exam")
PLACES = ("in Lisbon", "after the storm", "before lunch", "near the old bridge", "at night")


def sentences(count: int) -> list[str]:
    out = []
    for i in range(count):
        out.append(
            f"{SUBJECTS[i % 6]} {VERBS[i // 6 % 7]} {OBJECTS[i // 42 % 4]} "
            f"{PLACES[i // 168 % 5]} (case {i})"
        )
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def node(data_dir: Path, url: str, name: str) -> Node:
    config = load_config(
        {
            "data_dir": str(data_dir),
            "name": name,
            "broker_url": url,
            "broker.trust_first_use": True,
            "telemetry_interval": 5.0,
            "first_benchmark": False,
        }
    )
    return Node(config, nvml=FakeNvml.with_gpus(1), network_url=url)


async def run_job(requester: Node, texts: list[str]) -> tuple[float, int]:
    """Submit (retrying while the nodes register), wait for delivery: (seconds, fee)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            started = time.perf_counter()
            job = await requester.command(SubmitJob(texts=texts))
            break
        except CommandError:
            # The coordinator may still be starting, or the nodes registering.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    while True:
        result = await requester.command(GetJobResult(job_id=job.job_id, limit=1))
        if result.state != "running":
            break
        await asyncio.sleep(0.15)  # under the 10 requests/s a node may send
    elapsed = time.perf_counter() - started
    if result.state != "delivered":
        raise SystemExit(f"job {job.job_id} failed: {result.reason}")
    return elapsed, job.fee


async def bench(args: argparse.Namespace) -> None:
    texts = sentences(args.sentences)
    with tempfile.TemporaryDirectory() as tmp, MosquittoProcess(Path(tmp) / "broker") as broker:
        root = Path(tmp)
        requester_dir = root / "node0"
        requester_dir.mkdir(mode=0o700)
        requester_id = load_or_create_identity(requester_dir)[0].node_id
        coordinator_dir = root / "coordinator"
        coordinator_dir.mkdir(mode=0o700)
        store = CoordinatorStore(coordinator_dir / "coordinator.db")
        await store.connect()
        await store.add_entry(
            account=requester_id,
            amount=1000 * 10**9,
            kind="grant",
            reason="benchmark requester's balance",
            ref="starter",
        )
        await store.close()
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tui", "coordinator", "--broker", broker.url),
            *("--data-dir", str(coordinator_dir), "--task-interval", "3600"),
            cwd=ROOT,
            env=cli_env(),
            stdout=(root / "coordinator.log").open("w"),
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                nodes = [
                    await stack.enter_async_context(node(root / f"node{i}", broker.url, f"n{i}"))
                    for i in range(args.nodes)
                ]
                warm, _ = await run_job(nodes[0], sentences(16))
                # Its idle cost (loops, heartbeats, a GEMM unit now and then), to subtract.
                idle_from = cpu_seconds(proc.pid)
                await asyncio.sleep(args.idle)
                idle_rate = (cpu_seconds(proc.pid) - idle_from) / args.idle
                before = cpu_seconds(proc.pid)
                elapsed, fee = await run_job(nodes[0], texts)
                coordinator_cpu = cpu_seconds(proc.pid) - before
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
            if args.log:
                print((root / "coordinator.log").read_text()[-3000:])
    encoder = SentenceEncoder(load_model(find_model_dir(None, {}), numpy_backend()))
    encoder.encode(texts[:16])  # warm
    started = time.perf_counter()
    encoder.encode(texts)
    local = time.perf_counter() - started
    encoder.close()
    calibration = json.loads(CALIBRATION.read_text())
    rates = calibration["rates"]
    n = len(texts)
    print(f"machine: {os.cpu_count()} cores, NumPy backend; {args.nodes} nodes in one process")
    print(f"warm-up job (16 sentences, model loads): {warm:.2f} s")
    print(f"network job: {n} sentences in {elapsed:.2f} s = {n / elapsed:,.1f} sentences/s")
    print(f"local encode on one node: {n / local:,.1f} sentences/s ({local:.2f} s)")
    print(f"network / local: {local / elapsed:.2f}x (each task is encoded by two nodes)")
    net = max(0.0, coordinator_cpu - idle_rate * elapsed)
    print(
        f"coordinator CPU: {coordinator_cpu * 1000:.0f} ms during the job ({idle_rate * 1000:.1f}"
        f" ms/s when idle); net of idle {net * 1000:.0f} ms = {net * 1e6 / n:.0f} ms per 1,000 "
        "verified sentences"
    )
    print(f"fee charged: {fee} base units")
    print(
        f"PoI at threshold {calibration['threshold']} (calibration, {calibration['model']}): "
        f"false reject {rates['false_reject_per_sentence']:.1%} per sentence, "
        f"{rates['false_reject_per_batch64']:.1%} per batch of 64; false accept "
        f"{rates['false_accept_per_sentence']:.1%} per sentence (all of it 1% weight noise), "
        f"{rates['false_accept_per_batch64']:.1%} per batch of 64"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds to measure idle CPU")
    parser.add_argument("--log", action="store_true", help="print the coordinator's log tail")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
