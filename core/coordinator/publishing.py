"""What the coordinator publishes, built from the game's state: events, quest board, season.

These turn ``core.game`` objects into ``core.protocol.game`` payloads (and back, for events);
the wire types themselves know nothing of the game rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec

from core.coordinator.game_base import OFFERED_KINDS
from core.coordinator.state import CoordinatorState
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
from core.game.boards import BOARDS, board_period
from core.game.rules import SCALED_KINDS
from core.protocol import DEFAULT_TOPICS, Leaderboard, LeaderboardEntry
from core.protocol.game import (
    AwardRecord,
    BoardInfo,
    EventInfo,
    MultiplierEvents,
    QuestBoard,
    QuestInfo,
    QuestView,
    SeasonInfo,
    parse_fraction,
)


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
        factor=parse_fraction(info.factor, "factor"),
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


class Publisher:
    """Retained, signed network state: multiplier events, the calendar, the leaderboards.

    Each is re-sent only when it changed, so a late joiner always finds the latest and the
    broker is not flooded.
    """

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        self._events_published: tuple[str, ...] | None = None
        self._calendar_published: tuple[str, str, str | None] | None = None

    async def publish_calendar(self) -> None:
        """Retained and signed: the quest board and the season, re-sent when a period turns."""
        now = time.time()
        last = await self.state.game.last_awarded()
        season = season_message(now, last)
        key = (season.season, season.month, last)
        if key == self._calendar_published:
            return
        await self.state.publish(DEFAULT_TOPICS.season, SeasonInfo.TYPE, season, True)
        board = quest_board_message(now)
        offered = [q for q in board.quests if q.kind in OFFERED_KINDS]
        await self.state.publish(
            DEFAULT_TOPICS.quests,
            QuestBoard.TYPE,
            msgspec.structs.replace(board, quests=offered),
            True,
        )
        self._calendar_published = key

    async def publish_events(self) -> None:
        """Retained and signed: announced multiplier events, re-sent when they change."""
        now = time.time()
        events = await self.state.game.events()
        message = events_message(events, now)
        key = tuple(sorted(e.id for e in message.events))
        if key == self._events_published:
            return
        await self.state.publish(DEFAULT_TOPICS.events, MultiplierEvents.TYPE, message, True)
        self._events_published = key

    async def publish_boards(self) -> None:
        for category in BOARDS:
            period = board_period(category, time.time())
            rows, _ = await self.state.store.leaderboard(category, period, limit=100)
            board = Leaderboard(
                category=category,
                season=period,
                entries=[
                    LeaderboardEntry(
                        rank=r.rank, node_id=r.node_id, name=r.name[:64], amount_base_units=r.amount
                    )
                    for r in rows
                ],
                updated_ts=time.time(),
            )
            await self.state.publish(
                DEFAULT_TOPICS.leaderboard(category), Leaderboard.TYPE, board, True
            )
