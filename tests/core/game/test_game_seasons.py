"""Seasons and months, season-end awards (deterministic, unique), and achievements."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.calendar import month_id, season_id
from core.game import (
    GameError,
    NodeStats,
    award_id,
    check_milestones,
    days_left,
    default_rules,
    earn,
    ended_periods,
    month_at,
    monthly_awards,
    next_period,
    period_awards,
    previous_period,
    season_at,
    season_awards,
    season_by_id,
    week_at,
)
from core.money import parse_omnit

RULES = default_rules()
T0 = 1_795_000_000.0  # 2026-11-18


def ts(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=UTC).timestamp()


def node(n: int) -> str:
    return f"{n:064x}"


def test_season_calendar() -> None:
    season = season_at(T0)
    assert (season.id, season.start, season.end) == ("2026-Q4", ts(2026, 10, 1), ts(2027, 1, 1))
    assert season.contains(T0) and season.kind == "season"
    assert days_left(season, T0) == 44  # 43.x days, counting the started one
    assert days_left(season, season.end) == 0
    assert days_left(season, season.end - 1) == 1
    assert days_left(season, season.start - 86_400) == 92  # before it: its whole length
    assert next_period(season).id == "2027-Q1"
    assert previous_period(season).id == "2026-Q3"
    assert season_by_id("2026-Q4") == season
    with pytest.raises(ValueError, match="bad season id"):
        season_by_id("2026-Q5")
    month = month_at(T0)
    assert (month.id, month.start, month.end) == ("2026-11", ts(2026, 11, 1), ts(2026, 12, 1))
    assert next_period(month_at(ts(2026, 12, 5))).id == "2027-01"
    week = week_at(T0)
    assert (week.id, week.start, week.end) == ("2026-W47", ts(2026, 11, 16), ts(2026, 11, 23))


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1.6e9, max_value=2.2e9))
def test_calendar_agrees_with_the_ledger(now: float) -> None:
    season, month, week = season_at(now), month_at(now), week_at(now)
    assert season.id == season_id(now) and season.contains(now)
    assert month.id == month_id(now) and month.contains(now)
    assert week.contains(now)
    for period in (season, month, week):
        assert next_period(period).start == period.end
        assert previous_period(period).end == period.start


def test_ended_periods_catch_up_after_downtime() -> None:
    assert [p.id for p in ended_periods("season", None, T0)] == ["2026-Q3"]
    assert [p.id for p in ended_periods("season", "2025-Q4", T0)] == [
        "2026-Q1",
        "2026-Q2",
        "2026-Q3",
    ]
    assert ended_periods("season", "2026-Q3", T0) == []
    assert [p.id for p in ended_periods("month", "2026-09", T0)] == ["2026-10"]


def test_season_roll_over() -> None:
    end = season_by_id("2026-Q4").end
    assert season_at(end - 0.001).id == "2026-Q4"
    assert season_at(end).id == "2027-Q1"
    assert [p.id for p in ended_periods("season", "2026-Q3", end)] == ["2026-Q4"]


BOARD = [(node(i), parse_omnit(1000 - 10 * i)) for i in range(1, 15)]


def test_season_awards_top_n_of_each_board() -> None:
    season = season_by_id("2026-Q3")
    boards = {
        "gpu-contributors": BOARD,
        "data-validators": [(node(99), parse_omnit(5)), (node(98), parse_omnit(7)), (node(97), 0)],
    }
    awards = season_awards(boards, RULES, season, season.end)
    gpu = [a for a in awards if a.category == "gpu-contributors"]
    assert len(gpu) == 10  # top_n
    assert [a.rank for a in gpu] == list(range(1, 11))
    assert gpu[0].node_id == node(1) and gpu[0].bonus == parse_omnit(1000)
    assert gpu[0].governance_weight == 10
    assert gpu[0].collectible == "2026-Q3 Season Top GPU Contributor #1"
    assert gpu[9].bonus == parse_omnit(50)
    validators = [a for a in awards if a.category == "data-validators"]
    # Ranked by amount; a zero total wins nothing.
    assert [(a.rank, a.node_id) for a in validators] == [(1, node(98)), (2, node(99))]
    assert all(isinstance(a.bonus, int) for a in awards)
    assert validators[0].reason.startswith("season award: 2026-Q3 Season Top Data Validator #1")


def test_awards_are_deterministic_and_unique() -> None:
    season = season_by_id("2026-Q3")
    boards = {"gpu-contributors": BOARD, "model-testers": list(reversed(BOARD))}
    first = season_awards(boards, RULES, season, season.end + 5)
    again = season_awards(dict(reversed(boards.items())), RULES, season, season.end + 999)
    assert first == again
    ids = [a.award_id for a in first]
    assert len(set(ids)) == len(ids)
    assert ids[0] == award_id("2026-Q3", "gpu-contributors", 1, node(1))
    # Other season, same ranking: other ids.
    other = season_awards(boards, RULES, season_by_id("2026-Q2"), season.end)
    assert not set(ids) & {a.award_id for a in other}
    assert first[0].signing_bytes() == again[0].signing_bytes()
    assert b'"domain":"omnitensor-award/v1"' in first[0].signing_bytes()


def test_ties_rank_by_node_id_like_the_ledger() -> None:
    season = season_by_id("2026-Q3")
    rows = [(node(5), parse_omnit(10)), (node(2), parse_omnit(10)), (node(9), parse_omnit(20))]
    awards = season_awards({"gpu-contributors": rows}, RULES, season, season.end)
    assert [a.node_id for a in awards] == [node(9), node(2), node(5)]


def test_award_refusals() -> None:
    season = season_by_id("2026-Q4")
    with pytest.raises(GameError, match="has not ended yet"):
        season_awards({"gpu-contributors": BOARD}, RULES, season, T0)
    with pytest.raises(GameError, match="per month, not per season"):
        season_awards({"data-validators-monthly": BOARD}, RULES, season, season.end)
    with pytest.raises(GameError, match="no award rules"):
        season_awards({"karma": BOARD}, RULES, season, season.end)
    with pytest.raises(GameError, match="appears twice"):
        season_awards({"gpu-contributors": [*BOARD, BOARD[0]]}, RULES, season, season.end)
    with pytest.raises(GameError, match="is not a season"):
        season_awards({}, RULES, month_at(T0), T0 + 40 * 86_400)


def test_data_validators_of_the_month() -> None:
    month = month_at(T0)
    awards = monthly_awards({"data-validators-monthly": BOARD}, RULES, month, month.end)
    assert [(a.rank, a.bonus, a.period) for a in awards] == [
        (1, parse_omnit(200), "2026-11"),
        (2, parse_omnit(100), "2026-11"),
        (3, parse_omnit(50), "2026-11"),
    ]
    assert awards[0].collectible == "2026-11 Data Validator of the Month #1"
    assert period_awards({}, month, month.end, RULES) == []


def test_milestones() -> None:
    assert check_milestones(NodeStats(), RULES) == []
    first = check_milestones(NodeStats(verified_results=1), RULES)
    assert first == ["first-work"]
    many = check_milestones(
        NodeStats(
            verified_results=150,
            tflop_hours=Fraction(3, 2),
            consecutive_verified=20,
            season_top10=1,
            quests_claimed=1,
        ),
        RULES,
        earned=["first-work"],
    )
    assert many == ["centurion", "first-tflop-hour", "trusted", "quester", "season-top-10"]
    assert check_milestones(NodeStats(tflop_hours=Fraction(99, 100)), RULES) == []
    records = earn(["centurion", "benchmarked"], T0, RULES)
    assert [(r.id, r.name, r.earned_at) for r in records] == [
        ("centurion", "Centurion", T0),
        ("benchmarked", "Benchmarked", T0),
    ]
