"""Inference as network work over a real Mosquitto: a coordinator, three nodes, real model.

One job end to end (vectors equal to a local encode, the requester charged once, provenance),
a cheating worker outvoted and not paid (random vectors, then perturbed weights), and the
``omnitensor infer --network`` command as a user runs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from core.api.commands import GetJobResult, GetJobs, GetLeaderboard, GetWallet, SubmitJob
from core.api.network import JobResult
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.coordinator.store import CoordinatorStore
from core.errors import CommandError
from core.node.service import Node
from core.transport.mqtt import cancel_and_wait
from kernels.backend import numpy_backend
from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model
from tests.helpers.broker import MosquittoProcess
from tests.helpers.cli import ROOT, cli_env
from tests.integration.test_network import node_for, wait_until
from tui.cli.output import format_status
from tui.console.widgets.node.summary import model_text

pytestmark = pytest.mark.broker

TEXTS = [
    f"{who} {verb} the {what} in the {where}"
    for who in ("A man", "The team", "My sister", "A robot")
    for verb in ("repairs", "paints", "sells", "photographs")
    for what in ("old bicycle", "red door", "garden fence", "wooden boat", "kitchen table")
    for where in ("morning",)
]  # 80 sentences: two tasks (64 + 16)


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    try:
        path = find_model_dir(None, {})
    except ModelMissing as err:
        pytest.skip(f"model package not installed ({err})")
    return SentenceEncoder(load_model(path, numpy_backend()), workers=1)


@contextlib.asynccontextmanager
async def network(
    tmp_path: Path, url: str, quality_interval_s: float = 1e9
) -> AsyncIterator[tuple[Coordinator, list[Node]]]:
    settings = CoordinatorSettings(
        data_dir=tmp_path / "coord",
        broker_url=url,
        task_interval_s=5.0,  # GEMM units stay light: the CPU is for the encoders
        unit_seconds=0.2,
        board_interval_s=0.2,
        starter_grants=True,
        quality_interval_s=quality_interval_s,
    )
    async with Coordinator(settings) as coordinator:
        task = asyncio.create_task(coordinator.run())
        try:
            await asyncio.wait_for(coordinator.connected.wait(), 10)
            async with contextlib.AsyncExitStack() as stack:
                # No first benchmarks: three at once would take GiBs here (a 300 MiB L3).
                nodes = [
                    await stack.enter_async_context(
                        node_for(tmp_path / name, url, name=name, first_benchmark=False)
                    )
                    for name in ("alice", "bob", "carol")
                ]

                def serving() -> bool:
                    return len(coordinator.desk.eligible(0.0)) == 3

                await wait_until(serving, within=30, what="three nodes serving the model")
                yield coordinator, nodes
        finally:
            coordinator.close()
            await cancel_and_wait(task)


async def run_job(node: Node, texts: Sequence[str]) -> tuple[str, JobResult]:
    submitted = await node.command(SubmitJob(texts=list(texts)))
    result: JobResult | None = None

    async def finished() -> bool:
        nonlocal result
        result = await node.command(GetJobResult(job_id=submitted.job_id))
        return result.state != "running"

    await wait_until(finished, within=120, what=f"job {submitted.job_id}")
    assert result is not None
    return submitted.job_id, result


def vectors_of(result: JobResult) -> np.ndarray:
    raw = base64.b64decode(result.embeddings_b64)
    return np.frombuffer(raw, dtype="<f4").reshape(result.count, result.dim)


async def ledger(store: CoordinatorStore, kind: str, ref_prefix: str) -> list[tuple[str, int]]:
    async with store.db.execute(
        "SELECT account, amount FROM ledger WHERE kind = ? AND ref LIKE ? ORDER BY id",
        (kind, ref_prefix + "%"),
    ) as cur:
        return [(r[0], int(r[1])) for r in await cur.fetchall()]


async def test_jobs_are_verified_by_redundancy_and_cheats_are_not_paid(
    mosquitto: MosquittoProcess, tmp_path: Path, encoder: SentenceEncoder
) -> None:
    reference = encoder.encode(TEXTS)
    async with network(tmp_path, mosquitto.url) as (coordinator, (alice, bob, carol)):
        store = coordinator.store
        assert store is not None and carol.link is not None
        rng = np.random.default_rng(7)

        async def random_vectors(texts: Sequence[str]) -> np.ndarray:
            v = rng.standard_normal((len(texts), 384)).astype(np.float32)
            unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
            return unit

        carol.link.inference.encode = random_vectors  # type: ignore[method-assign]
        before = (await alice.command(GetWallet())).balance

        job_id, result = await run_job(alice, TEXTS)
        assert result.state == "delivered", result.reason
        got = vectors_of(result)
        cosines = np.sum(got * reference, axis=1)
        assert got.shape == reference.shape and cosines.min() >= 0.9999
        # Carol sat on at least one task (the least busy node gets the next one) and lost it.
        assert any(carol.node_id in t.rejected for t in result.tasks)
        assert all(carol.node_id not in t.workers for t in result.tasks)
        assert all(len(t.workers) >= 2 for t in result.tasks)
        fees = await ledger(store, "job-fee", job_id)
        assert sum(a for _n, a in fees) == result.fee
        assert carol.node_id not in {n for n, _a in fees}

        # Carol's console and status say what she lost and why.
        async def told() -> bool:
            view = (await carol.snapshot()).inference
            return view is not None and view.rejected >= 1

        await wait_until(told, what="carol's rejection receipt")
        snap = await carol.snapshot()
        assert snap.inference is not None
        assert "Proof of Inference" in snap.inference.last_rejection
        assert "rejected" in model_text(snap).plain
        assert "last rejection: Proof of Inference" in format_status(snap)
        lost = (await carol.command(GetWallet())).rejected
        assert any("Proof of Inference" in r.reason for r in lost)
        # Charged exactly once: one escrow of the fee, no refund.
        wallet = await alice.command(GetWallet())
        escrows = [e for e in wallet.entries if e.kind == "escrow"]
        assert [(e.amount, e.ref) for e in escrows] == [(-result.fee, job_id)]
        assert not [e for e in wallet.entries if e.kind == "refund"]
        assert wallet.balance < before + sum(e.amount for e in wallet.entries if e.amount > 0)

        # Perturbed weights: one layer's weights plus noise of 10% of their spread (lowest
        # cosine 0.997 on these sentences): close to the model, not close enough (docs/poi.md).
        model = load_model(find_model_dir(None, {}), numpy_backend())
        weights = model.layers[2].w_in
        noise = np.random.default_rng(3).standard_normal(weights.shape).astype(np.float32)
        weights += 0.1 * weights.std() * noise
        tampered = SentenceEncoder(model, workers=1)

        async def perturbed(texts: Sequence[str]) -> np.ndarray:
            vectors: np.ndarray = await asyncio.to_thread(tampered.encode, list(texts))
            return vectors

        carol.link.inference.encode = perturbed  # type: ignore[method-assign]
        job2, result2 = await run_job(bob, TEXTS[:40])
        tampered.close()
        assert result2.state == "delivered", result2.reason
        np.testing.assert_allclose(vectors_of(result2), reference[:40], atol=2e-5)
        seated = [t for t in result2.tasks if carol.node_id in t.rejected]
        if seated:  # one task: carol was seated with probability 2/3
            assert "Proof of Inference" in seated[0].rejected[carol.node_id]
        assert carol.node_id not in {n for n, _a in await ledger(store, "job-fee", job2)}
        listing = await bob.command(GetJobs())
        assert [(j.job_id, j.state) for j in listing.jobs] == [(job2, "delivered")]
        with pytest.raises(CommandError, match="no job"):
            await bob.command(GetJobResult(job_id=job_id))  # alice's job is hers alone


async def test_infer_network_command_and_quality_rounds(
    mosquitto: MosquittoProcess, tmp_path: Path, encoder: SentenceEncoder
) -> None:
    texts = ["The cat sleeps on the sofa.", "Stocks fell sharply on Monday."]
    async with network(tmp_path, mosquitto.url, quality_interval_s=2.0) as (coordinator, nodes):
        # Rounds go to nodes with verified work on record; these are minutes old.
        rules = coordinator.state.game.rules
        coordinator.state.game.rules = dataclasses.replace(
            rules, quest_rules=dataclasses.replace(rules.quest_rules, min_verified_units=0)
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui",
            "infer",
            "--network",
            "--json",
            "--broker",
            mosquitto.url,
            "--trust-first-use",
            "--data-dir",
            str(tmp_path / "requester"),
            *texts,
            cwd=ROOT,
            env=cli_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 180)

        # Quality rounds: every serving node is tested and lands on the model-testers board.
        async def tested() -> bool:
            board = await nodes[0].command(GetLeaderboard(category="model-testers", limit=10))
            return board.total >= 3

        await wait_until(tested, within=60, what="three nodes on the model-testers board")
        assert coordinator.store is not None
        async with coordinator.store.db.execute(
            "SELECT node_id, known, correct FROM quality_rounds WHERE state = 'scored'"
        ) as cur:
            scored = await cur.fetchall()
        assert scored and all(known == correct == 6 for _n, known, correct in scored)
        assert {coordinator.state.nodes[n].tier for n, _k, _c in scored} == {2}
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["text"] for r in rows] == texts
    got = np.asarray([r["embedding"] for r in rows])
    assert np.sum(got * encoder.encode(texts), axis=1).min() >= 0.9999
    assert "delivered: charged" in err.decode()
