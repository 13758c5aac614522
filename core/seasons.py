"""Season and period ids: quarterly seasons (``2026-Q4``) and months (``2026-11``), in UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime


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
