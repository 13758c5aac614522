"""The calendar of the network, in UTC: quarterly seasons (``2026-Q4``), months, ISO weeks.

One place for period ids and bounds: the ledger's boards, the game's quests and awards and
the console all read them from here, so a board's period and the calendar always agree.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

PeriodKind = Literal["season", "month", "week"]


def season_id(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def month_id(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return f"{moment.year}-{moment.month:02d}"


def season_bounds(season: str) -> tuple[float, float]:
    """Start and end (exclusive) of a season id, as unix timestamps."""
    year_text, _, quarter_text = season.partition("-Q")
    year, quarter = int(year_text), int(quarter_text)
    if not 1 <= quarter <= 4:
        raise ValueError(f"bad season id {season!r}")
    start = datetime(year, 3 * (quarter - 1) + 1, 1, tzinfo=UTC)
    end = datetime(year + (quarter == 4), (3 * quarter) % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


_SEASON_RE: Final = re.compile(r"(\d{4})-Q([1-4])")
_MONTH_RE: Final = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_WEEK_RE: Final = re.compile(r"(\d{4})-W(\d{2})")
SECONDS_PER_DAY: Final = 86_400


@dataclass(frozen=True)
class Period:
    """A span of the calendar, ``[start, end)`` in unix seconds."""

    id: str
    start: float
    end: float
    kind: PeriodKind = "season"

    def contains(self, now: float) -> bool:
        return self.start <= now < self.end


# A season is the quarterly period; the name reads better at call sites.
Season = Period


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def season_at(now: float) -> Period:
    """The season containing ``now``."""
    return season_by_id(season_id(now))


def season_by_id(season: str) -> Period:
    if not _SEASON_RE.fullmatch(season):
        raise ValueError(f"bad season id {season!r} (like 2026-Q4)")
    start, end = season_bounds(season)
    return Period(season, start, end, "season")


def month_at(now: float) -> Period:
    """The month containing ``now`` (the Data Validators of the Month board's period)."""
    return month_by_id(month_id(now))


def month_by_id(month: str) -> Period:
    match = _MONTH_RE.fullmatch(month)
    if not match:
        raise ValueError(f"bad month id {month!r} (like 2026-11)")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return Period(month, _ts(start), _ts(end), "month")


def week_at(now: float) -> Period:
    """The ISO week containing ``now`` (Monday 00:00 UTC to the next)."""
    day = datetime.fromtimestamp(now, UTC).date()
    year, week, _ = day.isocalendar()
    return week_by_id(f"{year}-W{week:02d}")


def week_by_id(week: str) -> Period:
    match = _WEEK_RE.fullmatch(week)
    if not match:
        raise ValueError(f"bad week id {week!r} (like 2026-W47)")
    try:
        monday = datetime.fromisocalendar(int(match[1]), int(match[2]), 1).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"bad week id {week!r}: no such week") from None
    return Period(week, _ts(monday), _ts(monday + timedelta(days=7)), "week")


def period_at(kind: PeriodKind, now: float) -> Period:
    if kind == "season":
        return season_at(now)
    if kind == "month":
        return month_at(now)
    return week_at(now)


def period_by_id(kind: PeriodKind, period_id: str) -> Period:
    if kind == "season":
        return season_by_id(period_id)
    if kind == "month":
        return month_by_id(period_id)
    return week_by_id(period_id)


def next_period(period: Period) -> Period:
    return period_at(period.kind, period.end)


def previous_period(period: Period) -> Period:
    # One second before the start is inside the previous period for every kind.
    return period_at(period.kind, period.start - 1)


def days_left(period: Period, now: float) -> int:
    """Whole days until the period ends, counting a started day (0 once it has ended)."""
    if now >= period.end:
        return 0
    return math.ceil((period.end - max(now, period.start)) / SECONDS_PER_DAY)


def ended_periods(kind: PeriodKind, last_done: str | None, now: float) -> list[Period]:
    """Periods that ended after ``last_done`` (an id) and by ``now``, oldest first.

    For catching up on season-end awards after downtime: with ``last_done`` None only the
    period just before the current one is returned.
    """
    current = period_at(kind, now)
    if last_done is None:
        return [previous_period(current)]
    period = next_period(period_by_id(kind, last_done))
    out: list[Period] = []
    while period.end <= now:
        out.append(period)
        period = next_period(period)
    return out
