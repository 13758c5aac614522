"""Multiplier events: announced in advance, factors multiply, never above 3x at any moment."""

from __future__ import annotations

from fractions import Fraction
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.game import (
    EventError,
    MultiplierEvent,
    active,
    combined_factor,
    default_rules,
    peak_factor,
    upcoming,
    validate_new_event,
)

H = 3600.0
NOW = 1_790_000_000.0
DAY = 24 * H


def event(
    eid: str,
    factor: Fraction | int,
    start: float,
    end: float,
    kind: str = "stress-test",
    announced_at: float = NOW,
) -> MultiplierEvent:
    return MultiplierEvent(eid, kind, f"Event {eid}", Fraction(factor), start, end, announced_at)


def test_combined_factor_multiplies_active_events() -> None:
    a = event("a", Fraction(3, 2), NOW + DAY, NOW + 3 * DAY)
    b = event("b", 2, NOW + 2 * DAY, NOW + 4 * DAY)
    events = [a, b]
    assert combined_factor(events, NOW) == 1
    assert combined_factor(events, NOW + DAY) == Fraction(3, 2)
    assert combined_factor(events, NOW + 2 * DAY) == 3
    assert combined_factor(events, NOW + 3 * DAY) == 2  # a ended (end is exclusive)
    assert combined_factor(events, NOW + 4 * DAY) == 1
    assert active(events, NOW + 2.5 * DAY) == [a, b]
    assert upcoming(events, NOW) == [a, b]
    assert upcoming(events, NOW + 1.5 * DAY) == [b]
    assert peak_factor(events, NOW, NOW + 5 * DAY) == 3


def test_valid_event_is_accepted() -> None:
    validate_new_event([], event("launch", 2, NOW + DAY, NOW + 2 * DAY, "model-launch"), NOW)


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (event("e", 2, NOW + H, NOW + DAY), "announced at least 24 h before"),
        (event("e", 2, NOW - H, NOW + DAY), "announced at least 24 h before"),
        (event("e", 2, NOW + 2 * DAY, NOW + 2 * DAY), "ends"),
        (event("e", 2, NOW + 3 * DAY, NOW + 2 * DAY), "before it starts"),
        (event("e", Fraction(1, 2), NOW + 2 * DAY, NOW + 3 * DAY), "below 1"),
        (event("e", 4, NOW + 2 * DAY, NOW + 3 * DAY), "maximum is x3"),
        (event("e", 2, NOW + 2 * DAY, NOW + 3 * DAY, kind="birthday"), "not one of"),
        (event("e", 2, NOW + 2 * DAY, NOW + 3 * DAY, announced_at=NOW + 1), "in the future"),
        (event("bad id", 2, NOW + 2 * DAY, NOW + 3 * DAY), "event id"),
    ],
)
def test_refusals_have_reasons(new: MultiplierEvent, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        validate_new_event([], new, NOW)


def test_duplicate_id_refused() -> None:
    a = event("a", 2, NOW + 2 * DAY, NOW + 3 * DAY)
    with pytest.raises(EventError, match="already exists"):
        validate_new_event([a], a, NOW)


def test_cap_checked_at_every_overlap() -> None:
    # The new event starts while x1.5 is active (x3: fine), but later in its window an x2
    # starts: x4 there. Checking the start alone would miss it.
    existing = [
        event("early", Fraction(3, 2), NOW + 2 * DAY, NOW + 3 * DAY),
        event("late", 2, NOW + 5 * DAY, NOW + 6 * DAY),
    ]
    new = event("long", 2, NOW + 2 * DAY, NOW + 7 * DAY)
    with pytest.raises(EventError) as info:
        validate_new_event(existing, new, NOW)
    assert "x4 " in str(info.value) and "late x2" in str(info.value)
    # Exactly 3x is allowed: early x1.5 with x2.
    validate_new_event(existing, event("short", 2, NOW + 2 * DAY, NOW + 3 * DAY), NOW)
    # Touching windows do not overlap ([start, end)).
    validate_new_event(existing, event("after", 3, NOW + 3 * DAY, NOW + 5 * DAY), NOW)


def test_cap_counts_events_starting_before_the_new_one() -> None:
    existing = [event("running", 3, NOW + DAY, NOW + 10 * DAY)]
    with pytest.raises(EventError, match="maximum is x3"):
        validate_new_event(
            existing, event("new", Fraction(11, 10), NOW + 5 * DAY, NOW + 6 * DAY), NOW
        )


def test_combined_factor_clamps_a_bad_hand_built_set() -> None:
    events = [event("a", 2, NOW, NOW + DAY), event("b", 2, NOW, NOW + DAY)]
    assert combined_factor(events, NOW) == 3


FACTORS = st.sampled_from([Fraction(1), Fraction(5, 4), Fraction(3, 2), Fraction(2), Fraction(3)])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(FACTORS, st.integers(0, 40), st.integers(1, 15)), min_size=1, max_size=12)
)
def test_accepted_events_never_combine_above_3x(
    candidates: list[tuple[Fraction, int, int]],
) -> None:
    rules = default_rules()
    notice = rules.multipliers.min_notice_s
    accepted: list[MultiplierEvent] = []
    for index, (factor, start_h, length_h) in enumerate(candidates):
        start = NOW + notice + start_h * H
        new = event(f"e{index}", factor, start, start + length_h * H)
        try:
            validate_new_event(accepted, new, NOW, rules)
        except EventError:
            continue
        accepted.append(new)
    # Check the raw product (not the clamped one) at every start, end and midpoint.
    moments = {e.start for e in accepted} | {e.end for e in accepted}
    moments |= {(e.start + e.end) / 2 for e in accepted}
    for moment in moments:
        product = reduce(
            lambda acc, e: acc * e.factor if e.active_at(moment) else acc, accepted, Fraction(1)
        )
        assert product <= 3
    assert accepted  # the first candidate is always acceptable alone
