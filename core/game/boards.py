"""The leaderboards: their categories and the periods an amount counts on."""

from __future__ import annotations

from typing import Final

from core.calendar import month_id, season_id

CATEGORIES: Final = ("gpu-contributors", "data-validators", "model-testers")
MONTHLY_VALIDATORS: Final = "data-validators-monthly"  # "Data Validators of the Month"
BOARDS: Final = (*CATEGORIES, MONTHLY_VALIDATORS)
ALL_TIME: Final = "all"


def board_keys(category: str, ts: float) -> list[tuple[str, str]]:
    """The (period, board) pairs an amount earned in ``category`` at ``ts`` counts on."""
    keys = [(season_id(ts), category), (ALL_TIME, category)]
    if category == "data-validators":
        keys.append((month_id(ts), MONTHLY_VALIDATORS))
    return keys


def board_period(category: str, ts: float) -> str:
    """The current period id of a board: the month for the monthly one, else the season."""
    return month_id(ts) if category == MONTHLY_VALIDATORS else season_id(ts)
