"""CLI output in the forms the OmniTensor documentation shows."""

from __future__ import annotations

from core.api.network import BoardEntry, LeaderboardPage
from core.money import parse_omnit
from tui.cli.output import format_leaderboard


def _page(category: str, *entries: BoardEntry) -> LeaderboardPage:
    return LeaderboardPage(
        category=category,
        season="2026-Q4",
        total=len(entries),
        own_rank=None,
        own_amount=0,
        entries=entries,
    )


def test_leaderboard_matches_the_documented_output() -> None:
    board = _page(
        "gpu-contributors",
        BoardEntry(rank=1, node_id="a" * 64, name="user123", amount=parse_omnit(1200)),
        BoardEntry(rank=2, node_id="b" * 64, name="gpu_master99", amount=parse_omnit(1150)),
        # Whole OMNIT are shown (rounded down); --json gives the exact base units.
        BoardEntry(rank=3, node_id="c" * 64, name="data_wizard", amount=parse_omnit("1050.9")),
    )
    assert format_leaderboard(board) == (
        "Top 3 Contributors:\n"
        "1. user123 - 1200 OMNIT\n"
        "2. gpu_master99 - 1150 OMNIT\n"
        "3. data_wizard - 1050 OMNIT\n"
        "(gpu-contributors 2026-Q4: OMNIT earned this season by verified work units and "
        "inference tasks; quest rewards, liveness and awards do not count)"
    )


def test_amounts_under_one_omnit_keep_three_significant_digits() -> None:
    board = _page(
        "gpu-contributors",
        BoardEntry(rank=1, node_id="a" * 64, name="rig", amount=parse_omnit("0.000894114")),
        BoardEntry(rank=2, node_id="b" * 64, name="cpu", amount=parse_omnit("0.5")),
        BoardEntry(rank=3, node_id="c" * 64, name="new", amount=parse_omnit("0.000000001")),
    )
    rows = format_leaderboard(board).splitlines()[1:4]
    assert rows == ["1. rig - 0.000894 OMNIT", "2. cpu - 0.5 OMNIT", "3. new - 0.000000001 OMNIT"]


def test_empty_leaderboard_says_so() -> None:
    text = format_leaderboard(_page("model-testers"))
    assert text == "No contributors yet on model-testers (2026-Q4)."
