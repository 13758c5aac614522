"""The coordinator's ingest without a broker: units committed, challenged, proved and judged.

Abuse cases stay fixed: another node's unit is never touched, a unit is paid once, a unit
keeps its first root, wrong work is slashed once, a late unit is forfeited without a slash,
replay marks survive a restart.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from core.coordinator.service import Coordinator, CoordinatorSettings
from core.coordinator.work_records import Unit
from core.identity import Identity
from core.money import parse_omnit
from core.protocol import (
    DEFAULT_TOPICS,
    Challenge,
    Message,
    Receipt,
    WorkCommit,
    WorkProof,
    decode,
    encode,
)
from kernels.backend import numpy_backend
from kernels.work_proof import encode_proof
from kernels.work_spec import WorkSpec
from kernels.work_unit import UnitResult, answer, compute_unit


class Sent:
    """What the coordinator published, instead of a broker."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.messages: list[tuple[str, str, Any]] = []

        async def publish(topic: str, kind: str, data: Any, retain: bool) -> None:
            self.messages.append((topic, kind, data))

        coordinator.state.publish = publish

    def of(self, kind: type[Any]) -> list[Any]:
        return [data for _t, _k, data in self.messages if isinstance(data, kind)]


_running: list[Coordinator] = []


@pytest.fixture(autouse=True)
async def _close_coordinators() -> AsyncIterator[None]:
    # A failed assertion must not leave a coordinator's threads running: the interpreter
    # would wait for them forever at exit.
    yield
    while _running:
        await close(_running[-1])


async def started(tmp_path: Path) -> Coordinator:
    settings = CoordinatorSettings(data_dir=tmp_path / "c", broker_url="mqtt://127.0.0.1:1")
    coordinator = await Coordinator(settings).__aenter__()
    _running.append(coordinator)
    return coordinator


async def close(coordinator: Coordinator) -> None:
    _running.remove(coordinator)
    await coordinator.__aexit__(None, None, None)


async def issued(
    coordinator: Coordinator, node: Identity, *, deadline_s: float = 600, purpose: str = "work"
) -> Unit:
    """A small unit for ``node``, as the scheduler issues it."""
    await coordinator.state.store.upsert_node(node.node_id, name="n", online=True)
    state = coordinator.state.node(node.node_id)
    state.online, state.last_traffic = True, time.time()
    unit = await coordinator.scheduler.issue(node.node_id, state, purpose, time.time())
    if deadline_s != 600:
        await coordinator.state.store.discard_unit(unit.task_id)
        unit = Unit(**{**unit.__dict__, "deadline_ts": time.time() + deadline_s})
        await coordinator.state.store.add_unit(unit)
    return unit


def spec_of(unit: Unit) -> WorkSpec:
    return WorkSpec(unit.seed, unit.m, unit.n, unit.k, unit.block)


def message(node: Identity, seq: int, data: WorkCommit | WorkProof) -> tuple[Message, Any]:
    raw = encode(node, seq, data.TYPE, data)
    return decode(raw), data


def commit_msg(node: Identity, seq: int, unit: Unit, result: UnitResult) -> tuple[Message, Any]:
    return message(node, seq, WorkCommit(task_id=unit.task_id, root=result.root.hex(), elapsed_s=1))


def proof_msg(
    node: Identity, seq: int, unit: Unit, result: UnitResult, challenge: Challenge
) -> tuple[Message, Any]:
    proof = encode_proof(answer(result, challenge.indices))
    data = WorkProof(
        task_id=unit.task_id,
        root=result.root.hex(),
        proof_b64=base64.b64encode(proof).decode(),
    )
    return message(node, seq, data)


async def test_an_honest_unit_is_verified_and_paid_once(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    node = Identity.generate()
    unit = await issued(coordinator, node)
    result = compute_unit(numpy_backend(), spec_of(unit))
    commit = commit_msg(node, 1, unit, result)
    await coordinator.ingest.process_batch([commit, commit])  # a duplicate in the batch: one
    await coordinator.ingest.process_batch([commit])  # re-sent: the same challenge again
    [challenge, again] = sent.of(Challenge)
    assert challenge == again and challenge.recipient == node.node_id
    assert challenge.root == result.root.hex() and len(challenge.indices) == 32
    proof = proof_msg(node, 2, unit, result, challenge)
    await coordinator.ingest.process_batch([proof])
    await coordinator.ingest.process_batch([proof])  # re-sent: the stored receipt again
    first, second = sent.of(Receipt)
    assert first == second and first.accepted and first.recipient == node.node_id
    assert first.flops == unit.flops > 0 and first.credited_base_units > 0
    rewards = [e for e in await coordinator.state.store.entries(node.node_id) if e.kind == "reward"]
    assert len(rewards) == 1 and rewards[0].amount == first.credited_base_units
    reputation = (await coordinator.state.game.reputations([node.node_id]))[node.node_id]
    assert reputation.verified == 1
    # Capability is measured: the node's rate now comes from this unit, not from any claim.
    assert await coordinator.state.store.node_rate(node.node_id) > 0
    await close(coordinator)


async def test_messages_about_another_nodes_unit_change_nothing(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    honest, thief = Identity.generate(), Identity.generate()
    unit = await issued(coordinator, honest)
    result = compute_unit(numpy_backend(), spec_of(unit))
    # The thief names the honest node's unit: no challenge, no receipt, the unit untouched.
    await coordinator.ingest.process_batch([commit_msg(thief, 1, unit, result)])
    assert sent.of(Challenge) == [] and sent.of(Receipt) == []
    [stored] = (await coordinator.state.store.units([unit.task_id])).values()
    assert stored.state == "issued" and stored.root is None
    # The honest node still gets its unit verified.
    await coordinator.ingest.process_batch([commit_msg(honest, 1, unit, result)])
    [challenge] = sent.of(Challenge)
    await coordinator.ingest.process_batch([proof_msg(honest, 2, unit, result, challenge)])
    [receipt] = sent.of(Receipt)
    assert receipt.accepted
    await close(coordinator)


async def test_a_unit_keeps_its_first_root(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    node = Identity.generate()
    unit = await issued(coordinator, node)
    honest = compute_unit(numpy_backend(), spec_of(unit))
    other = compute_unit(numpy_backend(), WorkSpec(bytes(32), unit.m, unit.n, unit.k, unit.block))
    await coordinator.ingest.process_batch([commit_msg(node, 1, unit, other)])
    # A second, different root (e.g. after seeing the challenge) is ignored.
    await coordinator.ingest.process_batch([commit_msg(node, 2, unit, honest)])
    [challenge] = sent.of(Challenge)
    assert challenge.root == other.root.hex()
    await close(coordinator)


async def test_wrong_work_is_slashed_once(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    store, game = coordinator.state.store, coordinator.state.game
    node = Identity.generate()
    await store.add_entry(account=node.node_id, amount=parse_omnit(100), kind="award", reason="s")
    await game.stake(node.node_id, parse_omnit(50))
    unit = await issued(coordinator, node)
    # Work on other operands (a node that skipped the real work) committed as this unit's.
    fake = compute_unit(numpy_backend(), WorkSpec(bytes(32), unit.m, unit.n, unit.k, unit.block))
    await coordinator.ingest.process_batch([commit_msg(node, 1, unit, fake)])
    [challenge] = sent.of(Challenge)
    bad = proof_msg(node, 2, unit, fake, challenge)
    await coordinator.ingest.process_batch([bad, bad])
    await coordinator.ingest.process_batch([bad])
    receipts = sent.of(Receipt)
    assert receipts and not any(r.accepted for r in receipts)
    assert receipts[0].reason.startswith("verification failed")
    account = await game.account(node.node_id)
    burned = [e for e in await store.entries(node.node_id) if e.kind == "slash"]
    assert len(burned) == 1 and burned[0].amount == -parse_omnit(5)
    assert account.staked == parse_omnit(45)
    assert account.balance == parse_omnit(100) - parse_omnit(5) - parse_omnit(45)
    assert account.reputation.consecutive == 0
    await close(coordinator)


async def test_only_a_verified_benchmark_unit_progresses_a_benchmark_quest(
    tmp_path: Path,
) -> None:
    # The v2 form of the old "verified is True" guard on benchmark reports: a benchmark
    # quest moves on the coordinator's verdict on a benchmark unit, and only an accepted one.
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    game = coordinator.state.game
    node = Identity.generate()
    await coordinator.state.store.upsert_node(node.node_id, name="n", online=True)
    offers = await game.quests(node.node_id, 0.0, time.time())
    bench = next(q for q in offers if q.kind == "benchmark")
    await game.accept_quest(node.node_id, bench.quest_id, time.time())

    async def quest_state() -> tuple[str, Fraction]:
        [state] = [
            q
            for q in await game.quests(node.node_id, 0.0, time.time())
            if q.quest_id == bench.quest_id
        ]
        return state.status, state.progress

    # A benchmark unit answered with work on other operands: rejected, and no progress.
    unit = await issued(coordinator, node, purpose="benchmark")
    fake = compute_unit(numpy_backend(), WorkSpec(bytes(32), unit.m, unit.n, unit.k, unit.block))
    await coordinator.ingest.process_batch([commit_msg(node, 1, unit, fake)])
    [challenge] = sent.of(Challenge)
    await coordinator.ingest.process_batch([proof_msg(node, 2, unit, fake, challenge)])
    [rejected] = sent.of(Receipt)
    assert not rejected.accepted
    assert await quest_state() == ("accepted", Fraction(0))
    # A work unit, verified, is not a benchmark: still no progress.
    work = await issued(coordinator, node)
    result = compute_unit(numpy_backend(), spec_of(work))
    await coordinator.ingest.process_batch([commit_msg(node, 3, work, result)])
    await coordinator.ingest.process_batch(
        [proof_msg(node, 4, work, result, sent.of(Challenge)[-1])]
    )
    assert sent.of(Receipt)[-1].accepted
    assert await quest_state() == ("accepted", Fraction(0))
    # The same quest with a benchmark unit the coordinator verified: complete.
    unit = await issued(coordinator, node, purpose="benchmark")
    result = compute_unit(numpy_backend(), spec_of(unit))
    await coordinator.ingest.process_batch([commit_msg(node, 5, unit, result)])
    await coordinator.ingest.process_batch(
        [proof_msg(node, 6, unit, result, sent.of(Challenge)[-1])]
    )
    assert sent.of(Receipt)[-1].accepted
    status, progress = await quest_state()
    assert status == "completed" and progress >= 1
    await close(coordinator)


async def test_a_trusted_record_buys_no_unchecked_unit(tmp_path: Path) -> None:
    # Every unit is verified, whatever the node's record: a node well past trusted_after
    # verified units in a row that sends garbage is caught every time. The record is
    # restored before each unit (a failure resets it), so a skip for trusted nodes of any
    # frequency would let one of these through.
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    store = coordinator.state.store
    node = Identity.generate()
    record = 5 * coordinator.state.game.rules.reputation.trusted_after
    for seq in range(1, 21, 2):
        async with store.transaction() as db:
            await db.execute(
                "INSERT INTO accounts (node_id, consecutive, verified) VALUES (?, ?, ?)"
                " ON CONFLICT (node_id) DO UPDATE SET consecutive = excluded.consecutive,"
                " verified = excluded.verified",
                (node.node_id, record, record),
            )
        reputation = (await coordinator.state.game.reputations([node.node_id]))[node.node_id]
        assert reputation.consecutive == record
        unit = await issued(coordinator, node)
        fake = compute_unit(
            numpy_backend(), WorkSpec(bytes(32), unit.m, unit.n, unit.k, unit.block)
        )
        await coordinator.ingest.process_batch([commit_msg(node, seq, unit, fake)])
        challenge = sent.of(Challenge)[-1]
        assert challenge.task_id == unit.task_id
        await coordinator.ingest.process_batch([proof_msg(node, seq + 1, unit, fake, challenge)])
        receipt = sent.of(Receipt)[-1]
        assert receipt.task_id == unit.task_id
        assert not receipt.accepted and receipt.credited_base_units == 0
        assert receipt.reason.startswith("verification failed")
    assert [e for e in await store.entries(node.node_id) if e.kind == "reward"] == []
    await close(coordinator)


async def test_a_late_unit_is_forfeited_without_a_slash(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    store, game = coordinator.state.store, coordinator.state.game
    node = Identity.generate()
    await store.add_entry(account=node.node_id, amount=parse_omnit(10), kind="award", reason="s")
    await game.stake(node.node_id, parse_omnit(10))
    unit = await issued(coordinator, node, deadline_s=-3600)  # long past
    result = compute_unit(numpy_backend(), spec_of(unit))
    await coordinator.ingest.process_batch([commit_msg(node, 1, unit, result)])
    [receipt] = sent.of(Receipt)
    assert not receipt.accepted and receipt.reason == "deadline missed"
    assert sent.of(Challenge) == []
    assert (await game.account(node.node_id)).staked == parse_omnit(10)
    # The sizing rate was halved (never below the floor), so the next unit is smaller.
    assert coordinator.state.node(node.node_id).slot(0).missed == 1
    await close(coordinator)


async def test_expired_units_are_forfeited_by_the_deadline_check(tmp_path: Path) -> None:
    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    node = Identity.generate()
    await issued(coordinator, node, deadline_s=-3600)
    assert await coordinator.ingest.expire() == 1
    [receipt] = sent.of(Receipt)
    assert receipt.reason == "deadline missed"
    assert await coordinator.ingest.expire() == 0  # judged once
    await close(coordinator)


async def test_replay_protection_survives_a_restart(tmp_path: Path) -> None:
    from core.protocol import Request

    node = Identity.generate()
    raw = encode(
        node, 5, Request.TYPE, Request(request_id="r1", method="stake", params={"amount": 1})
    )
    topic = DEFAULT_TOPICS.node_request(node.node_id)
    coordinator = await started(tmp_path)
    assert coordinator._filter.accept(decode(raw), topic=topic) is None
    await close(coordinator)  # stores the high-water marks
    restarted = await started(tmp_path)
    reason = restarted._filter.accept(decode(raw), topic=topic)
    assert reason is not None and "replay" in reason
    # A new request from the same node still gets through.
    fresh = encode(
        node, 6, Request.TYPE, Request(request_id="r2", method="stake", params={"amount": 1})
    )
    assert restarted._filter.accept(decode(fresh), topic=topic) is None
    await close(restarted)


def test_covered_seconds_is_the_union_inside_the_window() -> None:
    from core.coordinator.service import covered_seconds

    assert covered_seconds([], 0, 100) == 0
    assert covered_seconds([(10, 20), (15, 30), (50, 60)], 0, 100) == 30
    assert covered_seconds([(-10, 5), (95, 200)], 0, 100) == 10


async def test_one_unit_an_hour_is_not_an_hour_online(tmp_path: Path) -> None:
    """Liveness pays for the time verified work covered, not for the whole window."""
    from core.game import liveness_reward

    coordinator = await started(tmp_path)
    sent = Sent(coordinator)
    node = Identity.generate()
    unit = await issued(coordinator, node)
    result = compute_unit(numpy_backend(), spec_of(unit))
    await coordinator.ingest.process_batch([commit_msg(node, 1, unit, result)])
    [challenge] = sent.of(Challenge)
    await coordinator.ingest.process_batch([proof_msg(node, 2, unit, result, challenge)])
    end = time.time() + 1
    assert await coordinator.credit_liveness(end - 3600, end) == 1
    [entry] = [
        e for e in await coordinator.state.store.entries(node.node_id) if e.kind == "liveness"
    ]
    full_hour = liveness_reward(3600, coordinator.state.game.rules)
    assert 0 < entry.amount < full_hour / 10
    assert await coordinator.credit_liveness(end - 3600, end) == 0  # once per window
    await close(coordinator)
