"""Message payloads of the game: quest board, season, multiplier events, awards, quest views.

Registered with the protocol on import (``core.protocol`` imports this module). Fractions travel as
``"n/d"`` strings and money as integer base units, so nothing is rounded on the wire. The
``net.*`` payloads are published retained by the coordinator; ``QuestView`` is the shape of
one quest in a ``Response.result`` (decode with ``Response.result_as(list[QuestView])``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated

import msgspec

from core.errors import ProtocolError
from core.protocol.envelope import Payload, register_message_type
from core.protocol.fields import (
    BaseUnits,
    Category,
    Count,
    FractionText,
    Ident,
    Name,
    NodeId,
    NonNegFloat,
    Rank,
    Text,
)


def parse_fraction(value: str, field: str) -> Fraction:
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
            if parse_fraction(event.factor, "factor") < 1 or event.end <= event.start:
                raise ProtocolError("bad-payload", f"event {event.id}: bad factor or window")
            if event.announced_at > event.start:
                raise ProtocolError("bad-payload", f"event {event.id}: announced after its start")


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
