"""What the command line prints from the network cannot forge lines or drive the terminal."""

from __future__ import annotations

import time

import msgspec
import pytest

from core.api.network import LeaderboardPage, MultiplierEvents, QuestList, Wallet
from core.errors import CommandError
from core.money import parse_omnit
from tui.cli import main as cli_main
from tui.cli.output import format_events, format_leaderboard, format_quests, format_wallet

# Attack 9: ESC sequences and a newline in a display name.
FORGED = "mallory\x1b[2K\r\n1. honest - 999999 OMNIT\x1b]0;pwned\x07\u202e"


def assert_inert(text: str, lines: int) -> None:
    for char in ("\x1b", "\x07", "\r", "\u202e"):
        assert char not in text
    assert len(text.split("\n")) == lines


def test_a_forged_name_cannot_add_a_leaderboard_line() -> None:
    board = {
        "category": "gpu-contributors",
        "season": "2026-Q4",
        "total": 2,
        "own_rank": None,
        "own_amount": 0,
        "entries": [
            {"rank": 1, "node_id": "a" * 64, "name": FORGED, "amount": parse_omnit(5)},
            {"rank": 2, "node_id": "b" * 64, "name": "honest", "amount": parse_omnit(4)},
        ],
    }
    text = format_leaderboard(msgspec.convert(board, LeaderboardPage))
    assert_inert(text, 4)  # three rows and what the board counts
    assert not any(line.startswith("1. honest") for line in text.split("\n"))
    assert text.split("\n")[1].startswith("1. mallory\\x1b[2K\\r\\n1. honest")


def test_wallet_quests_and_events_escape_what_the_network_sent() -> None:
    now = time.time()
    entry = {
        "id": 1,
        "ts": now,
        "amount": 1,
        "kind": "reward",
        "reason": FORGED,
        "category": "",
        "season": "",
        "ref": None,
    }
    wallet = {
        "staked": 0,
        "available": 1,
        "reputation": 0,
        "reputation_detail": {"consecutive": 0, "verified": 0, "failed": 0},
        "balance": 1,
        "entries": [entry],
        "rejected": [{"ts": now, "work_id": "w1", "reason": FORGED}],
        "earned_today": 1,
        "work": {"accepted": 0, "rejected": 1},
    }
    assert_inert(format_wallet(msgspec.convert(wallet, Wallet)), 8)
    quest = {
        "id": "q1",
        "title": FORGED,
        "kind": "benchmark",
        "state": "offered",
        "progress": {
            "current": 0.0,
            "target": 1.0,
            "unit": "runs",
            "exact": {"current": "0", "target": "1"},
        },
        "progress_text": FORGED,
        "deadline_ts": now + 3600,
        "reward": 1,
        "reward_text": "1 OMNIT",
        "achievement": None,
        "action": FORGED,
        "description": FORGED,
    }
    quests = msgspec.convert({"quests": [quest]}, QuestList)
    assert_inert(format_quests(quests), 2)
    event = {
        "id": "e1",
        "name": FORGED,
        "kind": FORGED,
        "factor": "2",
        "start_ts": now,
        "end_ts": now + 60,
    }
    events = {"factor": "2", "active": [event], "upcoming": []}
    assert_inert(format_events(msgspec.convert(events, MultiplierEvents)), 2)


def test_an_error_from_the_network_prints_as_one_inert_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_: object) -> int:
        raise CommandError(f"quest refused: {FORGED}")

    monkeypatch.setattr(cli_main, "_dispatch", refuse)
    assert cli_main.main(["status"]) == 1
    err = capsys.readouterr().err
    assert_inert(err.rstrip("\n"), 1)
    assert err.startswith("omnitensor: error: quest refused: mallory\\x1b[2K")
