"""Game payloads survive the signed wire unchanged (fractions as text, money as integers)."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest

from core.coordinator.publishing import (
    award_message,
    event_from_info,
    events_message,
    quest_board_message,
    quest_view,
    season_message,
)
from core.errors import ProtocolError
from core.game import (
    MultiplierEvent,
    ProgressEvent,
    accept,
    default_rules,
    offer,
    record_progress,
    season_awards,
    season_by_id,
)
from core.identity import Identity
from core.protocol import MESSAGE_TYPES, Payload, Response, decode, encode, raw_json
from core.protocol.game import AwardRecord, MultiplierEvents, QuestBoard, QuestView, SeasonInfo

T0 = 1_795_000_000.0
RULES = default_rules()


def round_trip(identity: Identity, payload: Payload) -> Payload:
    wire = encode(identity, 1, type(payload).TYPE, payload, ts=T0)
    message = decode(wire)
    assert message.sender == identity.node_id
    return message.data


def test_types_are_registered() -> None:
    for cls in (MultiplierEvents, QuestBoard, SeasonInfo, AwardRecord):
        assert MESSAGE_TYPES[cls.TYPE] is cls


def test_events_round_trip() -> None:
    identity = Identity.generate()
    events = [
        MultiplierEvent("launch", "model-launch", "Launch", Fraction(3, 2), T0 + 10, T0 + 99, T0),
        MultiplierEvent("old", "stress-test", "Old", Fraction(2), T0 - 99, T0 - 10, T0 - 999),
    ]
    message = events_message(events, T0, RULES)
    assert [e.id for e in message.events] == ["launch"]  # ended events are not shown
    back = round_trip(identity, message)
    assert isinstance(back, MultiplierEvents) and back == message
    assert event_from_info(back.events[0]) == events[0]
    assert back.max_combined == "3"


def test_bad_events_are_refused_by_receivers() -> None:
    identity = Identity.generate()
    bad = events_message(
        [MultiplierEvent("e", "stress-test", "E", Fraction(1, 2), T0 + 10, T0 + 99, T0)], T0, RULES
    )
    with pytest.raises(ValueError, match="bad factor"):
        encode(identity, 1, MultiplierEvents.TYPE, bad, ts=T0)
    with pytest.raises(ProtocolError):
        bad.validate()


def test_quest_board_and_views() -> None:
    identity = Identity.generate()
    board = quest_board_message(T0, RULES)
    assert round_trip(identity, board) == board
    assert {q.id for q in board.quests} == {q.id for q in RULES.quests}
    state = accept(offer(RULES.quest("weekly-compute"), 0.2, T0, RULES), T0)
    state = record_progress(state, ProgressEvent.work(0.2, 3600, T0 + 3600), T0 + 3600)
    view = quest_view(state, T0 + 3600)
    assert view.progress_text == "0.2 of 2.4 TFLOP-hours"
    assert view.reward_text == "0.15 OMNIT + badge weekly-contributor"
    response = Response(request_id="r1", recipient="ab" * 32, ok=True, result=raw_json([view]))
    back = round_trip(identity, response)
    assert isinstance(back, Response)
    assert back.result_as(list[QuestView]) == [view]
    # A quest past its deadline shows as expired.
    assert quest_view(state, T0 + 100 * 3600).status == "expired"


def test_season_and_award_records() -> None:
    identity = Identity.generate()
    season = season_message(T0, last_awarded="2026-Q3", rules=RULES)
    assert season.season == "2026-Q4" and season.month == "2026-11"
    assert {b.period_id for b in season.boards} == {"2026-Q4", "2026-11"}
    assert round_trip(identity, season) == season
    q3 = season_by_id("2026-Q3")
    awards = season_awards({"gpu-contributors": [("ab" * 32, 10**12)]}, RULES, q3, q3.end)
    record = award_message(awards[0], entry_id=42)
    back = round_trip(identity, record)
    assert isinstance(back, AwardRecord) and back == record
    assert back.bonus_base_units == 1000 * 10**9 and back.award_id == awards[0].award_id
    assert msgspec.json.decode(msgspec.json.encode(record))["rank"] == 1
