"""Message payloads of the game: quest board, season, multiplier events, awards, quest views.

Registered with the protocol on import (``import core.game_messages``). Fractions travel as
``"n/d"`` strings and money as integer base units, so nothing is rounded on the wire. The
``net.*`` payloads are published retained by the coordinator; ``QuestView`` is the shape of
one quest in a ``Response.result`` (decode with ``Response.result_as(list[QuestView])``).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Annotated, Final

import msgspec

from core.errors import ProtocolError
from core.game import (
    Award,
    GameRules,
    MultiplierEvent,
    Period,
    QuestState,
    default_rules,
    describe_reward,
    expire,
    month_at,
    season_at,
    upcoming,
)
from core.game import active as active_events
from core.game.rules import SCALED_KINDS
from core.protocol.envelope import (
    BaseUnits,
    Category,
    Ident,
    Name,
    NodeId,
    NonNegFloat,
    Payload,
    Rank,
    Text,
    register_message_type,
)

FractionText = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{1,24}(/[1-9][0-9]{0,23})?$", max_length=49)
]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]

# Request methods a node sends the coordinator for the game (params in comments).
METHOD_QUESTS: Final = "quests"  # {} -> list[QuestView]
METHOD_QUEST_ACCEPT: Final = "quest.accept"  # {"quest_id": str} -> QuestView
METHOD_QUEST_CLAIM: Final = "quest.claim"  # {"quest_id": str} -> QuestView
METHOD_STAKE: Final = "stake"  # {"amount": int base units}
METHOD_UNSTAKE: Final = "unstake"  # {"amount": int base units}
GAME_METHODS: Final = (
    METHOD_QUESTS,
    METHOD_QUEST_ACCEPT,
    METHOD_QUEST_CLAIM,
    METHOD_STAKE,
    METHOD_UNSTAKE,
)


def _fraction(value: str, field: str) -> Fraction:
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ProtocolError("bad-payload", f"{field}: {value!r} is not a fraction") from None


# --------------------------------------------------------------------------------------------
# Multiplier events (net.events)


class EventInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: Ident
    kind: Category
    name: Name
    factor: FractionText
    start: NonNegFloat
    end: NonNegFloat
    announced_at: NonNegFloat


@register_message_type
class MultiplierEvents(Payload, frozen=True, kw_only=True):
    """The announced multiplier events, active and upcoming (retained)."""

    TYPE = "game.events"
    TOPIC_KINDS = frozenset({"net.events"})

    events: Annotated[list[EventInfo], msgspec.Meta(max_length=256)]
    max_combined: FractionText
    updated_ts: NonNegFloat

    def validate(self) -> None:
        for event in self.events:
            if _fraction(event.factor, "factor") < 1 or event.end <= event.start:
                raise ProtocolError("bad-payload", f"event {event.id}: bad factor or window")
            if event.announced_at > event.start:
                raise ProtocolError("bad-payload", f"event {event.id}: announced after its start")


def event_info(event: MultiplierEvent) -> EventInfo:
    return EventInfo(
        id=event.id,
        kind=event.kind,
        name=event.name,
        factor=str(event.factor),
        start=event.start,
        end=event.end,
        announced_at=event.announced_at,
    )


def event_from_info(info: EventInfo) -> MultiplierEvent:
    return MultiplierEvent(
        id=info.id,
        kind=info.kind,
        name=info.name,
        factor=_fraction(info.factor, "factor"),
        start=info.start,
        end=info.end,
        announced_at=info.announced_at,
    )


def events_message(
    events: Iterable[MultiplierEvent], now: float, rules: GameRules | None = None
) -> MultiplierEvents:
    """The retained events board: what is active at ``now`` and what is coming."""
    rules = default_rules() if rules is None else rules
    events = list(events)
    shown = active_events(events, now) + upcoming(events, now)
    return MultiplierEvents(
        events=[event_info(e) for e in shown],
        max_combined=str(rules.multipliers.max_combined),
        updated_ts=now,
    )


# --------------------------------------------------------------------------------------------
# Quest board (net.quests) and per-node quest views (responses)


class QuestInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A quest definition as published; goals and rewards are for the reference capability."""

    id: Ident
    kind: Category
    title: Name
    description: Text
    unit: Name
    goal: FractionText
    scales_with_capability: bool
    period: Name
    duration_s: Count
    reward_base_units: BaseUnits
    achievement: Ident | None = None
    min_uptime: FractionText | None = None
    action: Name | None = None


@register_message_type
class QuestBoard(Payload, frozen=True, kw_only=True):
    """The quests on offer this period (retained); a node's own goals come with QuestView."""

    TYPE = "game.quests"
    TOPIC_KINDS = frozenset({"net.quests"})

    reference_tflops: FractionText
    quests: Annotated[list[QuestInfo], msgspec.Meta(max_length=256)]
    updated_ts: NonNegFloat


def quest_board_message(now: float, rules: GameRules | None = None) -> QuestBoard:
    rules = default_rules() if rules is None else rules
    return QuestBoard(
        reference_tflops=str(rules.quest_rules.reference_tflops),
        quests=[
            QuestInfo(
                id=q.id,
                kind=q.kind,
                title=q.title[:64],
                description=q.description[:512],
                unit=q.unit,
                goal=str(q.goal),
                scales_with_capability=q.kind in SCALED_KINDS,
                period=q.period,
                duration_s=q.duration_s,
                reward_base_units=q.reward,
                achievement=q.achievement,
                min_uptime=None if q.min_uptime is None else str(q.min_uptime),
                action=q.action,
            )
            for q in rules.quests
        ],
        updated_ts=now,
    )


class QuestView(msgspec.Struct, frozen=True, kw_only=True):
    """One node's quest as the console shows it (a ``Response.result`` item)."""

    quest_id: Ident
    def_id: Ident
    kind: Category
    title: Name
    status: Name
    goal: FractionText
    progress: FractionText
    unit: Name
    progress_text: Text
    reward_base_units: BaseUnits
    reward_text: Text
    achievement: Ident | None
    action: Name | None
    accept_by: NonNegFloat
    deadline: NonNegFloat | None
    completed_at: NonNegFloat | None
    claimed_at: NonNegFloat | None


def quest_view(state: QuestState, now: float) -> QuestView:
    """The view of ``state`` at ``now`` (expired quests shown as expired)."""
    state = expire(state, now)
    return QuestView(
        quest_id=state.quest_id,
        def_id=state.def_id,
        kind=state.kind,
        title=state.title[:64],
        status=state.status,
        goal=str(state.goal),
        progress=str(state.progress),
        unit=state.unit,
        progress_text=state.progress_text()[:512],
        reward_base_units=state.reward,
        reward_text=describe_reward(state)[:512],
        achievement=state.achievement,
        action=state.action,
        accept_by=state.accept_by,
        deadline=state.deadline,
        completed_at=state.completed_at,
        claimed_at=state.claimed_at,
    )


# --------------------------------------------------------------------------------------------
# Season (net.season)


class BoardInfo(msgspec.Struct, frozen=True, kw_only=True):
    category: Category
    title: Name
    period: Name  # "season" or "month"
    period_id: Name  # "2026-Q4" or "2026-11"
    top_n: Rank


@register_message_type
class SeasonInfo(Payload, frozen=True, kw_only=True):
    """The current season and month, their boards and the last awarded season (retained)."""

    TYPE = "game.season"
    TOPIC_KINDS = frozenset({"net.season"})

    season: Name
    start: NonNegFloat
    end: NonNegFloat
    month: Name
    month_start: NonNegFloat
    month_end: NonNegFloat
    boards: Annotated[list[BoardInfo], msgspec.Meta(max_length=64)]
    last_awarded: Name | None = None
    updated_ts: NonNegFloat


def season_message(
    now: float, last_awarded: str | None = None, rules: GameRules | None = None
) -> SeasonInfo:
    rules = default_rules() if rules is None else rules
    season: Period = season_at(now)
    month: Period = month_at(now)
    return SeasonInfo(
        season=season.id,
        start=season.start,
        end=season.end,
        month=month.id,
        month_start=month.start,
        month_end=month.end,
        boards=[
            BoardInfo(
                category=b.category,
                title=b.title[:64],
                period=b.period,
                period_id=month.id if b.period == "month" else season.id,
                top_n=b.top_n,
            )
            for b in rules.boards
        ],
        last_awarded=last_awarded,
        updated_ts=now,
    )


# --------------------------------------------------------------------------------------------
# Awards (to the awarded node; the signed envelope is the signed award record)


@register_message_type
class AwardRecord(Payload, frozen=True, kw_only=True):
    """A season (or monthly) award: bonus, collectible and governance weight for one node."""

    TYPE = "game.award"
    TOPIC_KINDS = frozenset({"node.receipt"})

    award_id: Ident
    period: Name
    category: Category
    rank: Rank
    node_id: NodeId
    amount_base_units: BaseUnits
    bonus_base_units: BaseUnits
    governance_weight: Count
    collectible: Text
    entry_id: Annotated[int, msgspec.Meta(ge=0)] | None = None


def award_message(award: Award, entry_id: int | None = None) -> AwardRecord:
    return AwardRecord(
        award_id=award.award_id,
        period=award.period,
        category=award.category,
        rank=award.rank,
        node_id=award.node_id,
        amount_base_units=award.amount,
        bonus_base_units=award.bonus,
        governance_weight=award.governance_weight,
        collectible=award.collectible[:512],
        entry_id=entry_id,
    )
