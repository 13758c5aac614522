"""The coordinator's inference desk on a real SQLite store: commit, reveal, judge, pay.

Messages are fed to the desk directly (the wire is covered by the integration test); every
attack is a worker's message the desk must refuse, and every job must either be delivered
and charged once or refunded in full.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.coordinator.game_store import GameService
from core.coordinator.inference import InferenceDesk
from core.coordinator.job_book import JobBook, JobRefused
from core.coordinator.pricing import MODEL, job_fee, split_fee
from core.coordinator.state import CoordinatorSettings, CoordinatorState
from core.coordinator.store import CoordinatorStore
from core.protocol import InferCommit, InferReveal, InferTask, Receipt, RevealCall
from kernels.inference.poi import commitment, pack_embeddings

A, B, C, D, REQ = (f"{c}" * 64 for c in "abcde")
DIM = 384


class Sent:
    """What the desk published, by type."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []

    async def __call__(self, topic: str, kind: str, data: Any, retain: bool) -> None:
        self.items.append((topic, kind, data))

    def of(self, kind: type) -> list[Any]:
        return [d for _t, _k, d in self.items if isinstance(d, kind)]


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[tuple[InferenceDesk, Sent]]:
    store = CoordinatorStore(tmp_path / "c.db")
    await store.connect()
    game = GameService(store)
    sent = Sent()
    state = CoordinatorState(
        settings=CoordinatorSettings(data_dir=tmp_path, broker_url="mqtt://127.0.0.1:1"),
        node_id="f" * 64,
        store=store,
        game=game,
        publish=sent,
        is_connected=lambda: True,
    )
    desk = InferenceDesk(state, JobBook(game))
    for node_id in (A, B, C, D):
        node = state.node(node_id)
        node.online, node.last_traffic, node.models = True, 1e12, frozenset({MODEL})
    await desk.jobs.grant_starter(REQ, 10**10, 0.0)
    try:
        yield desk, sent
    finally:
        await store.close()


def honest(texts: list[str]) -> np.ndarray:
    """Deterministic unit vectors standing in for the model's: one per text."""
    rows = []
    for text in texts:
        seed = int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        rows.append(v / np.linalg.norm(v))
    return np.asarray(rows, dtype=np.float32)


class Worker:
    """A worker's side of a task: commit to vectors, reveal them when called."""

    def __init__(self, desk: InferenceDesk, node_id: str) -> None:
        self.desk, self.node_id = desk, node_id
        self.salt = secrets.token_bytes(32)
        self.raw = b""

    async def commit(self, task: InferTask, vectors: np.ndarray, now: float = 1.0) -> None:
        self.raw = pack_embeddings(vectors)
        digest = commitment(self.node_id, task.task_id, self.salt, self.raw)
        await self.desk.handle(
            self.node_id, InferCommit(task_id=task.task_id, commitment=digest), now
        )

    async def reveal(self, task: InferTask, raw: bytes | None = None, now: float = 2.0) -> None:
        raw = self.raw if raw is None else raw
        count = len(raw) // (4 * DIM)
        await self.desk.handle(
            self.node_id,
            InferReveal(
                task_id=task.task_id,
                salt=self.salt.hex(),
                count=count,
                dim=DIM,
                embeddings_b64=base64.b64encode(raw).decode(),
            ),
            now,
        )


def tasks_for(sent: Sent, node_id: str) -> list[InferTask]:
    return [t for t in sent.of(InferTask) if t.recipient == node_id]


async def ledger(desk: InferenceDesk, kind: str) -> list[tuple[str, int, str]]:
    async with desk.state.store.db.execute(
        "SELECT account, amount, reason FROM ledger WHERE kind = ? ORDER BY id", (kind,)
    ) as cur:
        return [(r[0], int(r[1]), r[2]) for r in await cur.fetchall()]


async def run_task(desk: InferenceDesk, sent: Sent, behaviours: dict[str, Any]) -> None:
    """Every seated worker commits what its behaviour gives, then reveals when called."""
    workers: dict[str, tuple[Worker, InferTask]] = {}
    for _round in range(3):
        for node_id, behave in behaviours.items():
            for task in tasks_for(sent, node_id):
                if (node_id, task.task_id) in {(w.node_id, t.task_id) for w, t in workers.values()}:
                    continue
                worker = Worker(desk, node_id)
                workers[f"{node_id}{task.task_id}"] = (worker, task)
                await worker.commit(task, behave(task.texts))
        await desk.tick(3.0)  # every seat committed: reveal calls go out
        called = {(c.recipient, c.task_id) for c in sent.of(RevealCall)}
        for worker, task in workers.values():
            if (worker.node_id, task.task_id) in called:
                await worker.reveal(task)
        await desk.tick(4.0)
        if not desk.tasks:
            return


async def test_honest_job_is_delivered_and_charged_once(
    desk: tuple[InferenceDesk, Sent],
) -> None:
    desk_, sent = desk
    texts = [f"sentence number {i}" for i in range(100)]
    job = await desk_.submit(REQ, texts, 0.0)
    assert job["tasks"] == 2 and job["fee"] == job_fee(100, desk_.rules.fee_per_1000)
    assert {t.recipient for t in sent.of(InferTask)} <= {A, B, C, D}
    await run_task(desk_, sent, dict.fromkeys((A, B, C, D), honest))
    record = await desk_.jobs.job(job["job_id"])
    assert record is not None and record.state == "delivered"
    escrow = await ledger(desk_, "escrow")
    fees = await ledger(desk_, "job-fee")
    assert escrow == [(REQ, -job["fee"], escrow[0][2])]
    assert sum(amount for _a, amount, _r in fees) == job["fee"]  # every base unit goes to workers
    assert await ledger(desk_, "refund") == []
    # The delivered vectors are the agreed ones, in input order.
    dim, count, b64 = await desk_.jobs.vectors(job["job_id"], 0, 256)
    got = np.frombuffer(base64.b64decode(b64), "<f4").reshape(count, dim)
    np.testing.assert_array_equal(got, honest(texts))
    accepted = [r for r in sent.of(Receipt) if r.accepted]
    assert len(accepted) == 4 and all(r.credited_base_units > 0 for r in accepted)


async def test_a_random_worker_is_outvoted_rejected_and_not_paid(
    desk: tuple[InferenceDesk, Sent],
) -> None:
    desk_, sent = desk
    rng = np.random.default_rng(1)

    def garbage(texts: list[str]) -> np.ndarray:
        v = rng.standard_normal((len(texts), DIM))
        unit: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return unit

    # Only the cheat and one honest node serve: a tie, then a third node breaks it.
    for node_id in (C, D):
        desk_.state.node(node_id).models = frozenset()
    job = await desk_.submit(REQ, ["one", "two", "three"], 0.0)
    desk_.state.node(C).models = frozenset({MODEL})
    await run_task(desk_, sent, {A: honest, B: garbage, C: honest})
    record = await desk_.jobs.job(job["job_id"])
    assert record is not None and record.state == "delivered"
    rejected = [r for r in sent.of(Receipt) if not r.accepted]
    assert [r.recipient for r in rejected] == [B]
    assert "Proof of Inference" in rejected[0].reason
    paid = {account for account, _amount, _r in await ledger(desk_, "job-fee")}
    assert paid == {A, C}
    assert desk_.stats["ties"] == 1


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("copied commitment", "does not open its commitment"),
        ("reveal other vectors", "does not open its commitment"),
        ("wrong dim", "the task needs 2 x 384"),
        ("non-finite", "bad embeddings"),
        ("before commit", "revealed before committing"),
    ],
)
async def test_dishonest_reveals_forfeit_the_seat(
    desk: tuple[InferenceDesk, Sent], attack: str, reason: str
) -> None:
    desk_, sent = desk
    for node_id in (C, D):
        desk_.state.node(node_id).models = frozenset()
    await desk_.submit(REQ, ["alpha", "beta"], 0.0)
    (task,) = tasks_for(sent, A)
    honest_a, cheat = Worker(desk_, A), Worker(desk_, B)
    await honest_a.commit(task, honest(task.texts))
    dim = DIM
    if attack == "copied commitment":
        # B copies A's commitment, then A's revealed bytes and salt: bound to A's id.
        copied = commitment(A, task.task_id, honest_a.salt, honest_a.raw)
        await desk_.handle(B, InferCommit(task_id=task.task_id, commitment=copied), 1.0)
        cheat.salt, cheat.raw = honest_a.salt, honest_a.raw
    elif attack == "before commit":
        cheat.raw = honest_a.raw
    else:
        if attack == "wrong dim":
            dim = DIM // 2
            cheat.raw = np.ones((2, dim), np.float32).tobytes()
        elif attack == "non-finite":
            bad = honest(task.texts)
            bad[1, 7] = np.nan
            cheat.raw = bad.tobytes()
        else:
            cheat.raw = honest_a.raw
        digest = commitment(B, task.task_id, cheat.salt, cheat.raw)
        await desk_.handle(B, InferCommit(task_id=task.task_id, commitment=digest), 1.0)
        if attack == "reveal other vectors":
            cheat.raw = honest_a.raw[: 4 * DIM] + pack_embeddings(honest(["x"]))
    if attack != "before commit":
        await desk_.tick(3.0)  # both committed: the reveal calls
    await desk_.handle(
        B,
        InferReveal(
            task_id=task.task_id,
            salt=cheat.salt.hex(),
            count=2,
            dim=dim,
            embeddings_b64=base64.b64encode(cheat.raw).decode(),
        ),
        2.0,
    )
    await honest_a.reveal(task)
    await desk_.tick(100.0)
    await desk_.tick(1e6)
    receipts = [r for r in sent.of(Receipt) if r.recipient == B]
    assert len(receipts) == 1 and not receipts[0].accepted
    assert reason in receipts[0].reason
    assert await ledger(desk_, "job-fee") == []  # nobody paid: no second honest answer


async def test_no_agreement_refunds_the_whole_fee(desk: tuple[InferenceDesk, Sent]) -> None:
    desk_, sent = desk
    for node_id in (C, D):
        desk_.state.node(node_id).models = frozenset()
    job = await desk_.submit(REQ, ["a", "b"], 0.0)
    (task,) = tasks_for(sent, A)
    await Worker(desk_, A).commit(task, honest(task.texts))
    # B never commits; no third node: the job fails and is refunded, nobody is charged.
    await desk_.tick(1e6)
    await desk_.tick(2e6)
    record = await desk_.jobs.job(job["job_id"])
    assert record is not None and record.state == "failed"
    assert await ledger(desk_, "refund") == [
        (REQ, job["fee"], (await ledger(desk_, "refund"))[0][2])
    ]
    balance = await desk_.state.store.balance(REQ)
    assert balance == 10**10  # the starter grant, untouched


async def test_submit_refusals(
    desk: tuple[InferenceDesk, Sent], monkeypatch: pytest.MonkeyPatch
) -> None:
    desk_, _sent = desk
    with pytest.raises(JobRefused, match="over this network's limit"):
        await desk_.submit(REQ, ["x"] * (desk_.rules.max_job_sentences + 1), 0.0)
    with pytest.raises(JobRefused, match="sentence 2 is empty"):
        await desk_.submit(REQ, ["x", "  "], 0.0)
    with pytest.raises(JobRefused, match="too little OMNIT"):
        await desk_.submit("9" * 64, ["x"], 0.0)
    for i in range(4):
        await desk_.submit(REQ, [f"job {i}"], 0.0)
    with pytest.raises(JobRefused, match="4 jobs of this node are running"):
        await desk_.submit(REQ, ["one too many"], 0.0)
    monkeypatch.setattr("core.coordinator.inference.MAX_RUNNING_JOBS_TOTAL", 4)
    with pytest.raises(JobRefused, match="the network is busy"):
        await desk_.submit("9" * 64, ["x"], 0.0)
    monkeypatch.undo()
    for node_id in (B, C, D):
        desk_.state.node(node_id).models = frozenset()
    with pytest.raises(JobRefused, match="a job needs 2"):
        await desk_.submit("8" * 64, ["x"], 0.0)
    # Only the four jobs taken hold a fee; no refusal charged anything.
    fee = job_fee(1, desk_.rules.fee_per_1000)
    assert await desk_.state.store.balance(REQ) == 10**10 - 4 * fee


def test_fee_split_is_exact() -> None:
    assert job_fee(1, 10**9) == 10**6
    assert job_fee(3, 1) == 1  # rounded up to a base unit
    for fee, sizes in ((10, [3, 3, 3]), (7, [64, 36]), (10**9 + 1, [1, 1])):
        assert sum(split_fee(fee, sizes)) == fee


async def test_a_lost_seat_is_listed_in_the_wallet_with_its_reason(
    desk: tuple[InferenceDesk, Sent],
) -> None:
    desk_, _sent = desk
    for node_id in (C, D):
        desk_.state.node(node_id).models = frozenset()
    await desk_.submit(REQ, ["a"], 0.0)
    await desk_.tick(1e6)  # nobody committed
    rejected = await desk_.state.store.rejected_work(A)
    assert [r["reason"] for r in rejected] == ["no commitment by the deadline"]


async def test_a_colluding_pair_fails_the_audit_and_the_task_goes_to_others(
    desk: tuple[InferenceDesk, Sent],
) -> None:
    desk_, sent = desk
    desk_.audit_encode = honest  # the coordinator's own encoder (here: the honest stand-in)
    for node_id in (C, D):
        desk_.state.node(node_id).models = frozenset()

    def made_up(texts: list[str]) -> np.ndarray:  # the same fake vectors from both
        return honest([t[::-1] + "?" for t in texts])

    job = await desk_.submit(REQ, ["one", "two", "three"], 0.0)
    for node_id in (C, D):
        desk_.state.node(node_id).models = frozenset({MODEL})
    await run_task(desk_, sent, {A: made_up, B: made_up, C: honest, D: honest})
    record = await desk_.jobs.job(job["job_id"])
    assert record is not None and record.state == "delivered"
    rejected = {r.recipient: r.reason for r in sent.of(Receipt) if not r.accepted}
    assert set(rejected) == {A, B} and all("audit" in why for why in rejected.values())
    assert {a for a, _amount, _r in await ledger(desk_, "job-fee")} == {C, D}
    assert desk_.stats["audits_failed"] == 1
    assert desk_.state.node(A).tier == 0
