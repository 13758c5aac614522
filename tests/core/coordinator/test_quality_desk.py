"""Quality rounds on the coordinator: issued to nodes serving the model, scored on known
answers only, credited on the model-testers board, and setting the node's tier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.coordinator.game_store import GameService
from core.coordinator.pricing import MODEL
from core.coordinator.quality import QualityDesk, tier_for
from core.coordinator.state import CoordinatorSettings, CoordinatorState
from core.coordinator.store import CoordinatorStore
from core.game import default_rules
from core.game.rules import GameRules
from core.protocol import QualityAnswer, QualityRound
from tests.core.coordinator.test_inference_desk import A, B, Sent


def rules(min_verified_units: int) -> GameRules:
    base = default_rules()
    gate = replace(base.quest_rules, min_verified_units=min_verified_units)
    return replace(base, quest_rules=gate)


@pytest.fixture
async def quality(tmp_path: Path) -> AsyncIterator[tuple[QualityDesk, Sent]]:
    store = CoordinatorStore(tmp_path / "c.db")
    await store.connect()
    sent = Sent()
    state = CoordinatorState(
        settings=CoordinatorSettings(data_dir=tmp_path, broker_url="mqtt://127.0.0.1:1"),
        node_id="f" * 64,
        store=store,
        game=GameService(store, rules(0)),
        publish=sent,
        is_connected=lambda: True,
    )
    for node_id in (A, B):
        node = state.node(node_id)
        node.online, node.last_traffic = True, 1e12
    state.node(A).models = frozenset({MODEL})
    try:
        yield QualityDesk(state), sent
    finally:
        await store.close()


async def board(desk: QualityDesk) -> list[tuple[str, int]]:
    async with desk.state.store.db.execute(
        "SELECT account, MAX(total) FROM board WHERE category = 'model-testers' GROUP BY account"
    ) as cur:
        return [(r[0], int(r[1])) for r in await cur.fetchall()]


async def test_rounds_go_to_serving_nodes_and_right_answers_count(
    quality: tuple[QualityDesk, Sent],
) -> None:
    desk, sent = quality
    await desk.tick(1.0)  # first seen: scheduled, not sent at once
    assert not sent.of(QualityRound)
    await desk.tick(1e9)
    (round_,) = sent.of(QualityRound)
    assert round_.recipient == A  # B serves no model
    assert all("answer" not in q.__struct_fields__ for q in round_.questions)
    questions = desk.open[round_.round_id].questions
    right = [q.answer if q.answer is not None else 0 for q in questions]
    # Another node's answer to A's round changes nothing.
    await desk.score(B, QualityAnswer(round_id=round_.round_id, answers=right, elapsed_s=0), 1e9)
    assert await board(desk) == []
    await desk.score(A, QualityAnswer(round_id=round_.round_id, answers=right, elapsed_s=0), 1e9)
    known = sum(q.answer is not None for q in questions)
    rules = desk.state.game.rules.inference
    assert await board(desk) == [(A, rules.quality_reward * known)]
    assert desk.state.node(A).tier == 2
    # Scored once: the same answer again is not paid again.
    await desk.score(A, QualityAnswer(round_id=round_.round_id, answers=right, elapsed_s=0), 1e9)
    assert await board(desk) == [(A, rules.quality_reward * known)]


async def test_wrong_answers_lower_the_tier_and_late_rounds_close(
    quality: tuple[QualityDesk, Sent],
) -> None:
    desk, _sent = quality
    round_id = await desk.issue(A, 10.0)
    questions = desk.open[round_id].questions
    wrong = [((q.answer or 0) + 1) % len(q.candidates) for q in questions]
    await desk.score(A, QualityAnswer(round_id=round_id, answers=wrong, elapsed_s=0), 11.0)
    assert desk.state.node(A).tier == 0 and await board(desk) == []
    late = await desk.issue(A, 20.0)
    await desk.tick(20.0 + 3600)
    assert late not in desk.open and desk.state.node(A).quality_open != late
    async with desk.state.store.db.execute(
        "SELECT state FROM quality_rounds WHERE round_id = ?", (late,)
    ) as cur:
        assert (await cur.fetchone()) == ("missed",)


async def test_no_round_without_verified_work_on_record(
    quality: tuple[QualityDesk, Sent],
) -> None:
    desk, sent = quality
    desk.state.game.rules = rules(10)  # the quests' sybil gate: ten verified units
    await desk.tick(1.0)
    await desk.tick(1e9)
    assert not sent.of(QualityRound)


def test_tiers() -> None:
    from fractions import Fraction

    assert [tier_for(Fraction(n, 6)) for n in range(7)] == [0, 0, 0, 1, 1, 2, 2]
