"""The coordinator's ingest without a broker: abuse cases found in review stay fixed."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np

from core.coordinator.service import Coordinator, CoordinatorSettings
from core.identity import Identity
from core.money import parse_omnit
from core.protocol import DEFAULT_TOPICS, Message, WorkResult, decode, encode
from kernels.backend import numpy_backend
from kernels.gemm_task import run_work_unit

N = 32


def result_message(
    node: Identity,
    seq: int,
    work_id: str,
    task_id: str,
    seed: int,
    *,
    corrupt: bool = False,
    ts: float | None = None,
) -> tuple[Message, str]:
    product = run_work_unit(numpy_backend(), N, "float32", seed)
    data = product.result
    commitment = product.commitment
    if corrupt:
        from kernels.freivalds import commit

        matrix = np.frombuffer(data, dtype="<f4").reshape(N, N).copy()
        matrix[3, 4] += 100.0
        data, commitment = matrix.tobytes(), commit(matrix)
    work = WorkResult(
        work_id=work_id,
        task_id=task_id,
        kind="gemm",
        seed=seed,
        n=N,
        dtype="float32",
        commitment=commitment,
        result_b64=base64.b64encode(data).decode(),
        elapsed_s=0.001,
        tflops=0.01,
    )
    raw = encode(node, seq, WorkResult.TYPE, work, ts=ts)
    return decode(raw), DEFAULT_TOPICS.node_work(node.node_id)


async def started(tmp_path: Path) -> Coordinator:
    settings = CoordinatorSettings(data_dir=tmp_path / "c", broker_url="mqtt://127.0.0.1:1")
    return await Coordinator(settings).__aenter__()


async def test_one_task_is_paid_once_whatever_the_work_id(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    store, game = coordinator.store, coordinator.game
    assert store is not None and game is not None
    node = Identity.generate()
    await store.add_task(
        "t1", node.node_id, seed=7, n=N, dtype="float32", deadline_ts=time.time() + 600
    )
    first = result_message(node, 1, "w1", "t1", 7)
    again = result_message(node, 2, "w1-again", "t1", 7)
    # The same message twice in one batch, then the same task under another work id.
    await coordinator.ingest.process_batch([first, first])
    await coordinator.ingest.process_batch([again])
    rewards = [e for e in await store.entries(node.node_id) if e.kind == "reward"]
    assert len(rewards) == 1
    [rejected] = await store.rejected_work(node.node_id)
    assert rejected["reason"] == "task already answered"
    # Side effects once: one verified result on the node's record.
    reputation = (await game.reputations([node.node_id]))[node.node_id]
    assert reputation.verified == 1
    await coordinator.__aexit__(None, None, None)


async def test_an_old_timestamp_does_not_reach_an_old_multiplier(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    store = coordinator.store
    assert store is not None
    node = Identity.generate()
    await store.add_task(
        "t1", node.node_id, seed=3, n=N, dtype="float32", deadline_ts=time.time() - 3600
    )  # long past
    late = result_message(node, 1, "w1", "t1", 3, ts=1500.0)  # dated before the task
    await coordinator.ingest.process_batch([late])
    [rejected] = await store.rejected_work(node.node_id)
    assert rejected["reason"] == "deadline missed"
    await coordinator.__aexit__(None, None, None)


async def test_wrong_work_is_slashed_once(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    store, game = coordinator.store, coordinator.game
    assert store is not None and game is not None
    node = Identity.generate()
    await store.add_entry(
        account=node.node_id, amount=parse_omnit(100), kind="award", reason="seed"
    )
    await game.stake(node.node_id, parse_omnit(50))
    await store.add_task(
        "t1", node.node_id, seed=5, n=N, dtype="float32", deadline_ts=time.time() + 600
    )
    bad = result_message(node, 1, "w1", "t1", 5, corrupt=True)
    await coordinator.ingest.process_batch([bad, bad])
    await coordinator.ingest.process_batch([bad])
    account = await game.account(node.node_id)
    burned = [e for e in await store.entries(node.node_id) if e.kind == "slash"]
    assert len(burned) == 1 and burned[0].amount == -parse_omnit(5)
    assert account.staked == parse_omnit(45)
    assert account.balance == parse_omnit(100) - parse_omnit(5) - parse_omnit(45)
    assert account.reputation.consecutive == 0
    await coordinator.__aexit__(None, None, None)


async def test_replay_protection_survives_a_restart(tmp_path: Path) -> None:
    from core.protocol import Request

    node = Identity.generate()
    raw = encode(
        node, 5, Request.TYPE, Request(request_id="r1", method="stake", params={"amount": 1})
    )
    topic = DEFAULT_TOPICS.node_request(node.node_id)
    coordinator = await started(tmp_path)
    assert coordinator._filter.accept(decode(raw), topic=topic) is None
    await coordinator.__aexit__(None, None, None)  # stores the high-water marks
    restarted = await started(tmp_path)
    reason = restarted._filter.accept(decode(raw), topic=topic)
    assert reason is not None and "replay" in reason
    # A new request from the same node still gets through.
    fresh = encode(
        node, 6, Request.TYPE, Request(request_id="r2", method="stake", params={"amount": 1})
    )
    assert restarted._filter.accept(decode(fresh), topic=topic) is None
    await restarted.__aexit__(None, None, None)
