"""Quests: the offered -> accepted -> in_progress -> completed -> claimed flow, its refusals,
progress from verified events only, and goals that any node can reach."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.game import (
    QUEST_KINDS,
    ProgressEvent,
    QuestDef,
    QuestError,
    QuestState,
    accept,
    claim,
    default_rules,
    expire,
    goal_for,
    offer,
    offers_for,
    quest_instance_id,
    quest_reward_for,
    record_progress,
    sharing_hours_needed,
    status_of,
    week_at,
)
from core.money import parse_omnit

H = 3600.0
T0 = 1_795_000_000.0  # 2026-11-18 (a Wednesday), inside week 2026-W47 and season 2026-Q4
RULES = default_rules()


def quest(def_id: str) -> QuestDef:
    return RULES.quest(def_id)


def accepted(def_id: str, capability: float = 20.0, at: float = T0) -> QuestState:
    return accept(offer(quest(def_id), capability, at, RULES), at)


def test_offer_fixes_goal_reward_and_period() -> None:
    state = offer(quest("weekly-compute"), 20, T0, RULES)
    assert state.status == "offered"
    assert (
        state.quest_id
        == "weekly-compute:2026-W47"
        == quest_instance_id(quest("weekly-compute"), T0)
    )
    assert state.goal == 240 and state.unit == "TFLOP-hours"
    assert state.reward == parse_omnit(15) and state.achievement == "weekly-contributor"
    assert state.accept_by == week_at(T0).end
    season = offer(quest("season-marathon"), 20, T0, RULES)
    assert season.quest_id == "season-marathon:2026-Q4"


def test_full_flow_credits_once() -> None:
    state = accepted("compute-sprint", capability=20)
    assert state.status == "accepted" and state.deadline == T0 + 24 * H
    state = record_progress(state, ProgressEvent.work(20, 2 * H, T0 + 2 * H, ref="w1"), T0 + 2 * H)
    assert state.status == "in_progress" and state.progress == 40
    state = record_progress(state, ProgressEvent.work(20, 2 * H, T0 + 4 * H, ref="w2"), T0 + 4 * H)
    assert state.status == "completed" and state.completed_at == T0 + 4 * H
    # Completed: further work changes nothing.
    assert record_progress(state, ProgressEvent.work(20, H, T0 + 5 * H), T0 + 5 * H) is state
    claimed, reward = claim(state, T0 + 5 * H)
    assert claimed.status == "claimed" and claimed.claimed_at == T0 + 5 * H
    assert reward.base_units == parse_omnit(5) and reward.ref == state.quest_id
    assert reward.reason.startswith("quest completed: Compute sprint")
    with pytest.raises(QuestError, match="already claimed"):
        claim(claimed, T0 + 6 * H)
    with pytest.raises(QuestError, match="already claimed"):
        accept(claimed, T0 + 6 * H)


def test_claiming_unfinished_says_how_far() -> None:
    # 2.5 TFLOPS scales the 80 TFLOP-hour sprint to 10; 3.2 done.
    state = accepted("compute-sprint", capability=2.5)
    assert state.goal == 10
    state = record_progress(state, ProgressEvent.work(2.5, 4608, T0 + 4608), T0 + 4608)
    with pytest.raises(QuestError) as info:
        claim(state, T0 + 5000)
    assert str(info.value) == f"quest {state.quest_id}: not completed: 3.2 of 10 TFLOP-hours"
    assert info.value.reason == str(info.value)
    with pytest.raises(QuestError, match=r"deadline .* has passed"):
        claim(state, T0 + 25 * H)


def test_accept_refusals() -> None:
    offered = offer(quest("weekly-compute"), 20, T0, RULES)
    with pytest.raises(QuestError, match="expired"):
        accept(offered, offered.accept_by)
    with pytest.raises(QuestError, match="expired"):
        accept(expire(offered, offered.accept_by + 1), T0)
    state = accept(offered, T0)
    with pytest.raises(QuestError, match="already accepted"):
        accept(state, T0 + 1)
    with pytest.raises(QuestError, match="not offered yet"):
        accept(offered, T0 - 10)


def test_claim_refusals() -> None:
    offered = offer(quest("benchmark-suite"), 20, T0, RULES)
    with pytest.raises(QuestError, match="not accepted"):
        claim(offered, T0)
    state = accept(offered, T0)
    with pytest.raises(QuestError, match="not completed: 0 of 1 benchmark runs"):
        claim(state, T0 + 1)
    gone = expire(state, T0 + 25 * H)
    assert gone.status == "expired" and status_of(state, T0 + 25 * H) == "expired"
    with pytest.raises(QuestError, match="expired, not completed"):
        claim(gone, T0 + 25 * H)


def test_progress_only_from_verified_matching_timely_events() -> None:
    state = accepted("weekly-compute")
    deadline = state.deadline
    assert deadline is not None
    ignored = [
        ProgressEvent.work(20, H, T0 + H, verified=False, ref="rejected"),
        ProgressEvent.benchmark(T0 + H),  # another kind
        ProgressEvent.records(10, T0 + H),
        ProgressEvent.work(20, H, T0 - 1),  # before accepting
        ProgressEvent.work(20, H, deadline + 1),  # after the deadline
        ProgressEvent.work(0, H, T0 + H),  # nothing done
    ]
    for event in ignored:
        assert record_progress(state, event, T0 + 2 * H) is state
    offered = offer(quest("weekly-compute"), 20, T0, RULES)
    assert record_progress(offered, ProgressEvent.work(20, H, T0 + H), T0 + H) is offered
    # Work delivered late but done before the deadline counts.
    late = record_progress(state, ProgressEvent.work(20, H, deadline), deadline + 60)
    assert late.progress == 20


def test_uptime_quest_needs_hours_and_ratio() -> None:
    state = accepted("steady-uptime")
    assert state.goal == 24 and state.min_uptime == Fraction(95, 100)
    # 24 h observed at 90%: not enough uptime yet.
    state = record_progress(
        state, ProgressEvent.uptime(0.9 * 24 * H, 24 * H, T0 + 24 * H), T0 + 24 * H
    )
    assert state.status == "in_progress"
    with pytest.raises(
        QuestError, match=r"not completed: 24 of 24 hours at 90% uptime \(needs 95%\)"
    ):
        claim(state, T0 + 24 * H)
    # 24 more hours fully online: 46.8 / 48 = 97.5%.
    state = record_progress(state, ProgressEvent.uptime(24 * H, 24 * H, T0 + 48 * H), T0 + 48 * H)
    assert state.status == "completed"
    with pytest.raises(ValueError, match="online longer"):
        ProgressEvent.uptime(2, 1, T0)


def test_counted_quests() -> None:
    bench = accepted("benchmark-suite")
    assert bench.action == "bench"
    bench = record_progress(bench, ProgressEvent.benchmark(T0 + 600, ref="b1"), T0 + 600)
    assert bench.status == "completed"
    _, reward = claim(bench, T0 + 700)
    assert reward.achievement == "benchmarked"
    rounds = accepted("quality-rounds")
    for i in range(11):
        rounds = record_progress(rounds, ProgressEvent.quality_round(T0 + i * H), T0 + i * H)
    assert rounds.status == "in_progress" and rounds.progress == 11
    rounds = record_progress(rounds, ProgressEvent.quality_round(T0 + 11 * H), T0 + 11 * H)
    assert rounds.status == "completed"


def test_state_round_trips_through_dict() -> None:
    state = accepted("steady-uptime", capability=0.2)
    state = record_progress(state, ProgressEvent.uptime(100, 120, T0 + 120), T0 + 120)
    data = state.to_dict()
    assert data["online_s"] == "100" and data["min_uptime"] == "19/20"
    assert QuestState.from_dict(data) == state
    with pytest.raises(ValueError, match="bad quest status"):
        QuestState.from_dict({**data, "status": "won"})


def test_offers_for_skips_held_instances() -> None:
    offers = offers_for(20, T0, rules=RULES)
    assert {o.def_id for o in offers} == {q.id for q in RULES.quests}
    held = [o.quest_id for o in offers[:2]]
    assert len(offers_for(20, T0, held, RULES)) == len(offers) - 2
    # Next week: new instances of the weekly quests, not of the seasonal ones.
    next_week = offers_for(20, T0 + 7 * 24 * H, [o.quest_id for o in offers], RULES)
    assert {o.def_id for o in next_week} == {q.id for q in RULES.quests if q.period == "week"}


# -- goals scale with capability -----------------------------------------------------------


def test_goal_formula() -> None:
    qr = RULES.quest_rules
    weekly, records = quest("weekly-compute"), quest("data-validation")
    assert goal_for(weekly, 20, qr) == 240  # reference card: the goal as written
    assert goal_for(weekly, 0.2, qr) == Fraction(12, 5)  # 240 x 0.2 / 20
    assert goal_for(weekly, 60, qr) == 720
    assert goal_for(weekly, 0, qr) == Fraction(6, 5)  # unknown: 0.1 TFLOPS assumed
    assert goal_for(weekly, 0.123456, qr) == Fraction(148, 100)  # rounded down to 0.01
    assert goal_for(records, 0.2, qr) == 5
    assert goal_for(records, 0.001, qr) == 1  # never below one record
    assert goal_for(quest("steady-uptime"), 0.2, qr) == 24  # not capability-bound
    assert goal_for(quest("quality-rounds"), 0.2, qr) == 12
    assert quest_reward_for(weekly, 20, qr) == parse_omnit(15)
    assert quest_reward_for(weekly, 0.2, qr) == parse_omnit("0.15")
    no_scaling = replace(qr, reward_scales_with_capability=False)
    assert quest_reward_for(weekly, 0.2, no_scaling) == parse_omnit(15)


@settings(max_examples=200, deadline=None)
@given(st.fractions(min_value=Fraction(1, 20), max_value=2000))
def test_every_quest_fits_its_window_for_any_capability(capability: Fraction) -> None:
    for q in RULES.quests:
        needed = sharing_hours_needed(q, capability, RULES.quest_rules)
        assert needed <= Fraction(q.duration_s, 3600) * RULES.quest_rules.max_fill, q.id


def full_time_events(
    state: QuestState, capability: Fraction, start: float
) -> Iterator[ProgressEvent]:
    """What a node sharing full-time produces, as the coordinator verifies it."""
    qr = RULES.quest_rules
    t = start
    while True:
        if state.kind == "tflop-hours":
            t += 60
            yield ProgressEvent.work(capability, 60, t)
        elif state.kind == "uptime":
            t += 300
            yield ProgressEvent.uptime(300, 300, t)
        elif state.kind == "benchmark":
            t += qr.benchmark_s
            yield ProgressEvent.benchmark(t)
        elif state.kind == "validate-records":
            t += float(3600 / (qr.records_per_tflop_hour * capability))  # one record each
            yield ProgressEvent.records(1, t)
        else:
            t += qr.quality_round_interval_s
            yield ProgressEvent.quality_round(t)


@pytest.mark.parametrize("def_id", [q.id for q in RULES.quests])
def test_a_cpu_finishes_every_quest_within_its_window(def_id: str) -> None:
    cpu = Fraction(1, 5)  # 0.2 TFLOPS
    state = accepted(def_id, capability=0.2)
    deadline = state.deadline
    assert deadline is not None
    for event in full_time_events(state, cpu, T0):
        if event.at > deadline:
            break
        state = record_progress(state, event, event.at)
        if state.status == "completed":
            break
    assert state.status == "completed", state.progress_text()
    assert state.completed_at is not None and state.completed_at <= deadline
    claimed, reward = claim(state, state.completed_at)
    assert claimed.status == "claimed" and reward.base_units >= 0


def test_all_kinds_are_covered() -> None:
    assert {q.kind for q in RULES.quests} == set(QUEST_KINDS)
