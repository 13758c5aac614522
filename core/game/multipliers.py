"""Reward multiplier events: announced in advance, combined by product, capped at 3x.

An event is active on ``[start, end)``. Factors of simultaneously active events multiply.
The combined factor can only rise when an event starts, so checking the product at the start
of the new event and at every start of an event overlapping its window covers every moment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Final

from core.game.errors import EventError
from core.game.rates import MAX_MULTIPLIER
from core.game.rules import GameRules
from core.game.rules_file import default_rules

EVENT_KINDS: Final = ("early-participation", "network-expansion", "stress-test", "model-launch")
_EVENT_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class MultiplierEvent:
    """A reward multiplier for everyone's verified work while it is active."""

    id: str
    kind: str
    name: str
    factor: Fraction
    start: float
    end: float
    announced_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.factor, Fraction | int) or isinstance(self.factor, bool):
            raise TypeError("factor is a Fraction (floats are not exact)")
        for value in (self.start, self.end, self.announced_at):
            if not math.isfinite(value):
                raise ValueError("event times must be finite")

    def active_at(self, now: float) -> bool:
        return self.start <= now < self.end


def active(events: Iterable[MultiplierEvent], now: float) -> list[MultiplierEvent]:
    """The events active at ``now``, by start."""
    return sorted((e for e in events if e.active_at(now)), key=lambda e: (e.start, e.id))


def upcoming(events: Iterable[MultiplierEvent], now: float) -> list[MultiplierEvent]:
    """The announced events that have not started yet, soonest first."""
    return sorted((e for e in events if e.start > now), key=lambda e: (e.start, e.id))


def _product(events: Iterable[MultiplierEvent], now: float) -> Fraction:
    factor = Fraction(1)
    for event in events:
        if event.active_at(now):
            factor *= event.factor
    return factor


def combined_factor(events: Iterable[MultiplierEvent], now: float) -> Fraction:
    """The multiplier for work done at ``now``: the product of the active events' factors.

    Accepted events never combine above the cap; the clamp only keeps a hand-built bad set
    from making the reward arithmetic (which refuses more than 3x) raise mid-credit.
    """
    return min(_product(events, now), MAX_MULTIPLIER)


def peak_factor(events: Iterable[MultiplierEvent], start: float, end: float) -> Fraction:
    """The highest combined factor at any moment of ``[start, end)``."""
    events = list(events)
    moments = {start} | {e.start for e in events if start < e.start < end}
    return max(_product(events, t) for t in moments)


def validate_new_event(
    existing: Iterable[MultiplierEvent],
    new: MultiplierEvent,
    now: float,
    rules: GameRules | None = None,
) -> None:
    """Refuse (EventError with the reason) an event the rules do not allow; None when fine."""
    rules = default_rules() if rules is None else rules
    mrules = rules.multipliers
    existing = list(existing)
    if not _EVENT_ID_RE.fullmatch(new.id):
        raise EventError(f"event id {new.id!r}: use letters, digits, '.', '_', ':' or '-'")
    if any(e.id == new.id for e in existing):
        raise EventError(f"event {new.id!r} already exists")
    if new.kind not in mrules.kinds:
        raise EventError(f"event kind {new.kind!r} is not one of {', '.join(mrules.kinds)}")
    if not new.name.strip():
        raise EventError("an event needs a name")
    if new.factor < 1:
        raise EventError(f"factor {new.factor} is below 1: a multiplier event cannot cut rewards")
    if new.end <= new.start:
        raise EventError(f"event {new.id!r} ends ({_when(new.end)}) before it starts")
    if new.announced_at > now:
        raise EventError(f"event {new.id!r} says it was announced in the future")
    # It is announced now (published), so notice is counted from now.
    if new.start - now < mrules.min_notice_s:
        hours = mrules.min_notice_s / 3600
        raise EventError(
            f"event {new.id!r} starts {_when(new.start)}: events must be announced at least "
            f"{hours:g} h before they start"
        )
    cap = mrules.max_combined
    moments = {new.start} | {e.start for e in existing if new.start < e.start < new.end}
    for moment in sorted(moments):
        overlapping = [e for e in existing if e.active_at(moment)]
        total = _product(overlapping, moment) * new.factor
        if total > cap:
            others = ", ".join(f"{e.id} x{e.factor}" for e in overlapping)
            raise EventError(
                f"event {new.id!r} x{new.factor} would make the combined multiplier "
                f"x{total} at {_when(moment)} (with {others}); the maximum is x{cap}"
            )
