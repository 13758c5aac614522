"""Quests and challenges: per-node state machines driven by verified events only.

offered -> accepted -> in_progress -> completed -> claimed (or expired). Every transition is
a pure function returning a new frozen :class:`QuestState`; a refused action raises
:class:`QuestError` with the reason. The state carries its own goal, reward and deadline, so
a rules change never moves the goalposts of a quest a node already holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Final, Literal, get_args

from core.calendar import period_at
from core.game.amounts import Exact, exact, number_text
from core.game.capability import goal_for, quest_reward_for
from core.game.errors import QuestError
from core.game.rules import QUEST_UNITS, GameRules, QuestDef, QuestKind
from core.game.rules_file import default_rules
from core.money import omnit_text

QuestStatus = Literal["offered", "accepted", "in_progress", "completed", "claimed", "expired"]
ProgressKind = Literal["work", "benchmark", "uptime", "records", "quality-round"]

# Which verified event advances which kind of quest.
PROGRESS_FOR: Final[dict[ProgressKind, QuestKind]] = {
    "work": "tflop-hours",
    "benchmark": "benchmark",
    "uptime": "uptime",
    "records": "validate-records",
    "quality-round": "quality-rounds",
}
OPEN_STATUSES: Final = frozenset({"accepted", "in_progress"})


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class ProgressEvent:
    """Something a node did that the coordinator verified; build with the class methods.

    ``verified`` False (a rejected result, a failed check) never advances a quest.
    """

    kind: ProgressKind
    at: float  # when it happened (the work's time, the end of an uptime sample)
    verified: bool = True
    tflops: Fraction = Fraction(0)
    seconds: Fraction = Fraction(0)  # work: time covered; uptime: time observed
    online_seconds: Fraction = Fraction(0)
    count: int = 0
    ref: str = ""  # work id, benchmark id... for logs

    def __post_init__(self) -> None:
        if self.kind not in PROGRESS_FOR:
            raise ValueError(f"unknown progress kind {self.kind!r}")
        if not math.isfinite(self.at):
            raise ValueError("event time must be finite")
        if min(self.tflops, self.seconds, self.online_seconds) < 0 or self.count < 0:
            raise ValueError("progress amounts cannot be negative")
        if self.online_seconds > self.seconds:
            raise ValueError("a node cannot be online longer than it was observed")

    @classmethod
    def work(
        cls, tflops: Exact, seconds: Exact, at: float, *, verified: bool = True, ref: str = ""
    ) -> ProgressEvent:
        """Verified work: ``tflops`` credited for ``seconds`` of sharing."""
        return cls("work", at, verified, tflops=exact(tflops), seconds=exact(seconds), ref=ref)

    @classmethod
    def benchmark(cls, at: float, *, verified: bool = True, ref: str = "") -> ProgressEvent:
        """A verified run of the benchmark suite."""
        return cls("benchmark", at, verified, count=1, ref=ref)

    @classmethod
    def uptime(
        cls, online_seconds: Exact, observed_seconds: Exact, at: float, *, verified: bool = True
    ) -> ProgressEvent:
        """The coordinator watched the node for ``observed_seconds``; it was online this long."""
        return cls(
            "uptime",
            at,
            verified,
            seconds=exact(observed_seconds),
            online_seconds=exact(online_seconds),
        )

    @classmethod
    def records(
        cls, count: int, at: float, *, verified: bool = True, ref: str = ""
    ) -> ProgressEvent:
        """``count`` data records validated (and the validation accepted)."""
        return cls("records", at, verified, count=count, ref=ref)

    @classmethod
    def quality_round(cls, at: float, *, verified: bool = True, ref: str = "") -> ProgressEvent:
        """Took part in one quality round (answered in time)."""
        return cls("quality-round", at, verified, count=1, ref=ref)


@dataclass(frozen=True)
class QuestReward:
    """What a claim credits: base units (ledger kind ``quest``, ref ``ref``) and a badge."""

    quest_id: str
    base_units: int
    achievement: str | None
    ref: str
    reason: str


@dataclass(frozen=True)
class QuestState:
    """One node's instance of a quest (``quest_id`` is ``<def id>:<period id>``)."""

    quest_id: str
    def_id: str
    kind: QuestKind
    title: str
    status: QuestStatus
    goal: Fraction
    reward: int  # base units
    achievement: str | None
    offered_at: float
    accept_by: float
    duration_s: int
    min_uptime: Fraction | None = None
    action: str | None = None
    progress: Fraction = Fraction(0)  # in the unit; uptime: hours observed
    online_s: Fraction = Fraction(0)  # uptime quests
    observed_s: Fraction = Fraction(0)
    accepted_at: float | None = None
    deadline: float | None = None
    completed_at: float | None = None
    claimed_at: float | None = None

    @property
    def unit(self) -> str:
        return QUEST_UNITS[self.kind]

    @property
    def uptime_ratio(self) -> Fraction:
        return self.online_s / self.observed_s if self.observed_s else Fraction(0)

    @property
    def goal_met(self) -> bool:
        if self.progress < self.goal:
            return False
        if self.kind == "uptime":
            return self.min_uptime is None or self.uptime_ratio >= self.min_uptime
        return True

    def progress_text(self) -> str:
        """``"3.2 of 10 TFLOP-hours"``; uptime adds the ratio and its threshold."""
        text = f"{number_text(self.progress)} of {number_text(self.goal)} {self.unit}"
        if self.kind == "uptime" and self.min_uptime is not None:
            text += (
                f" at {number_text(self.uptime_ratio * 100, 1)}% uptime"
                f" (needs {number_text(self.min_uptime * 100, 1)}%)"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (fractions as ``"n/d"`` strings), for the store and the wire."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = str(value) if isinstance(value, Fraction) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuestState:
        fractions = {"goal", "progress", "online_s", "observed_s", "min_uptime"}
        values: dict[str, Any] = {
            key: (Fraction(value) if key in fractions and value is not None else value)
            for key, value in data.items()
        }
        if values.get("status") not in get_args(QuestStatus):
            raise ValueError(f"bad quest status {values.get('status')!r}")
        if values.get("kind") not in QUEST_UNITS:
            raise ValueError(f"bad quest kind {values.get('kind')!r}")
        return cls(**values)


def quest_instance_id(quest: QuestDef, now: float) -> str:
    """``weekly-compute:2026-W47``: one instance per quest and period (a protocol-safe id)."""
    return f"{quest.id}:{period_at(quest.period, now).id}"


def offer(
    quest: QuestDef,
    capability_tflops: float | Fraction | int,
    now: float,
    rules: GameRules | None = None,
) -> QuestState:
    """Offer ``quest`` to a node of this measured capability: goal and reward fixed now.

    The offer stays open until the end of the quest's period.
    """
    rules = default_rules() if rules is None else rules
    period = period_at(quest.period, now)
    return QuestState(
        quest_id=f"{quest.id}:{period.id}",
        def_id=quest.id,
        kind=quest.kind,
        title=quest.title,
        status="offered",
        goal=goal_for(quest, capability_tflops, rules.quest_rules),
        reward=quest_reward_for(quest, capability_tflops, rules.quest_rules),
        achievement=quest.achievement,
        offered_at=now,
        accept_by=period.end,
        duration_s=quest.duration_s,
        min_uptime=quest.min_uptime,
        action=quest.action,
    )


def offers_for(
    capability_tflops: float | Fraction | int,
    now: float,
    held: Iterable[str] = (),
    rules: GameRules | None = None,
) -> list[QuestState]:
    """New offers for a node: every quest of the rules whose instance it does not hold yet."""
    rules = default_rules() if rules is None else rules
    have = set(held)
    return [
        offer(quest, capability_tflops, now, rules)
        for quest in rules.quests
        if quest_instance_id(quest, now) not in have
    ]


def accept(state: QuestState, now: float) -> QuestState:
    """Accept an offered quest; its deadline is ``duration`` from now."""
    if state.status == "claimed":
        raise QuestError(f"quest {state.quest_id}: already claimed")
    if state.status in ("accepted", "in_progress", "completed"):
        raise QuestError(f"quest {state.quest_id}: already accepted")
    if state.status == "expired" or now >= state.accept_by:
        raise QuestError(
            f"quest {state.quest_id}: expired (the offer closed {_when(state.accept_by)})"
        )
    if now < state.offered_at:
        raise QuestError(f"quest {state.quest_id}: not offered yet")
    return replace(state, status="accepted", accepted_at=now, deadline=now + state.duration_s)


def record_progress(state: QuestState, event: ProgressEvent, now: float) -> QuestState:
    """Advance the quest by one verified event; the same state when the event does not count.

    It counts when: the quest is accepted or in progress, the event is verified, it is of the
    quest's kind, and it happened between acceptance and the deadline.
    """
    if state.status not in OPEN_STATUSES or not event.verified:
        return state
    if PROGRESS_FOR[event.kind] != state.kind:
        return state
    assert state.accepted_at is not None and state.deadline is not None
    if not state.accepted_at <= event.at <= state.deadline:
        return state
    if state.kind == "tflop-hours":
        if event.tflops == 0 or event.seconds == 0:
            return state
        new = replace(state, progress=state.progress + event.tflops * event.seconds / 3600)
    elif state.kind == "uptime":
        if event.seconds == 0:
            return state
        observed = state.observed_s + event.seconds
        new = replace(
            state,
            observed_s=observed,
            online_s=state.online_s + event.online_seconds,
            progress=observed / 3600,
        )
    else:
        if event.count == 0:
            return state
        new = replace(state, progress=state.progress + event.count)
    if new.goal_met:
        return replace(new, status="completed", completed_at=now)
    return replace(new, status="in_progress")


def expire(state: QuestState, now: float) -> QuestState:
    """The state at ``now``: an open offer or unfinished quest past its time becomes expired."""
    if state.status == "offered" and now >= state.accept_by:
        return replace(state, status="expired")
    if state.status in OPEN_STATUSES and state.deadline is not None and now > state.deadline:
        return replace(state, status="expired")
    return state


def claim(state: QuestState, now: float) -> tuple[QuestState, QuestReward]:
    """Claim a completed quest's reward, exactly once."""
    qid = state.quest_id
    if state.status == "claimed":
        raise QuestError(f"quest {qid}: already claimed")
    if state.status == "offered":
        raise QuestError(f"quest {qid}: not accepted")
    if state.status == "expired":
        raise QuestError(f"quest {qid}: expired, not completed: {state.progress_text()}")
    if state.status != "completed":
        late = ""
        if state.deadline is not None and now > state.deadline:
            late = f" (the deadline {_when(state.deadline)} has passed)"
        raise QuestError(f"quest {qid}: not completed: {state.progress_text()}{late}")
    reason = f"quest completed: {state.title} ({qid})"
    reward = QuestReward(qid, state.reward, state.achievement, ref=qid, reason=reason)
    return replace(state, status="claimed", claimed_at=now), reward


def describe_reward(state: QuestState) -> str:
    """``"15 OMNIT + badge weekly-contributor"`` for listings."""
    parts = [omnit_text(state.reward)] if state.reward else []
    if state.achievement:
        parts.append(f"badge {state.achievement}")
    return " + ".join(parts)


def status_of(state: QuestState, now: float) -> QuestStatus:
    return expire(state, now).status
