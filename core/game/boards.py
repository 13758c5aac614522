"""The leaderboards: their categories and the periods an amount counts on."""

from __future__ import annotations

from typing import Final

from core.calendar import month_id, season_id

CATEGORIES: Final = ("gpu-contributors", "data-validators", "model-testers")
MONTHLY_VALIDATORS: Final = "data-validators-monthly"  # "Data Validators of the Month"
BOARDS: Final = (*CATEGORIES, MONTHLY_VALIDATORS)
ALL_TIME: Final = "all"
# What each board adds up, in a line for the boards' screens and the CLI: only minted work
# rewards in the board's category count; quest rewards, liveness, grants and awards do not.
BOARD_COUNTS: Final = {
    "gpu-contributors": "OMNIT earned this season by verified work units and inference tasks",
    "data-validators": "OMNIT earned this season by validated data records",
    "model-testers": "OMNIT earned this season by right answers in quality rounds",
    "data-validators-monthly": "OMNIT earned this month by validated data records",
}
NOT_COUNTED: Final = "quest rewards, liveness and awards do not count"


def board_keys(category: str, ts: float) -> list[tuple[str, str]]:
    """The (period, board) pairs an amount earned in ``category`` at ``ts`` counts on."""
    keys = [(season_id(ts), category), (ALL_TIME, category)]
    if category == "data-validators":
        keys.append((month_id(ts), MONTHLY_VALIDATORS))
    return keys


def board_period(category: str, ts: float) -> str:
    """The current period id of a board: the month for the monthly one, else the season."""
    return month_id(ts) if category == MONTHLY_VALIDATORS else season_id(ts)
