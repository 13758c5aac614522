"""What the command line prints from the network cannot forge lines or drive the terminal."""

from __future__ import annotations

import time

import pytest

from core.errors import CommandError
from core.money import parse_omnit
from tui.cli import main as cli_main
from tui.cli.network import format_events, format_leaderboard, format_quests, format_wallet

# Attack 9: ESC sequences and a newline in a display name.
FORGED = "mallory\x1b[2K\r\n1. honest - 999999 OMNIT\x1b]0;pwned\x07\u202e"


def assert_inert(text: str, lines: int) -> None:
    for char in ("\x1b", "\x07", "\r", "\u202e"):
        assert char not in text
    assert len(text.split("\n")) == lines


def test_a_forged_name_cannot_add_a_leaderboard_line() -> None:
    board = {
        "entries": [
            {"rank": 1, "name": FORGED, "amount": parse_omnit(5)},
            {"rank": 2, "name": "honest", "amount": parse_omnit(4)},
        ]
    }
    text = format_leaderboard(board)
    assert_inert(text, 3)
    assert not any(line.startswith("1. honest") for line in text.split("\n"))
    assert text.split("\n")[1].startswith("1. mallory\\x1b[2K\\r\\n1. honest")


def test_wallet_quests_and_events_escape_what_the_network_sent() -> None:
    now = time.time()
    wallet = {
        "balance": 1,
        "entries": [{"ts": now, "amount": 1, "kind": "reward", "reason": FORGED}],
        "rejected": [{"ts": now, "work_id": "w1", "reason": FORGED}],
    }
    assert_inert(format_wallet(wallet), 6)
    quest = {
        "id": "q1",
        "state": "open",
        "title": FORGED,
        "progress_text": FORGED,
        "reward_text": "1 OMNIT",
        "deadline_ts": now + 3600,
        "action": FORGED,
    }
    assert_inert(format_quests({"quests": [quest]}), 2)
    event = {"name": FORGED, "kind": FORGED, "factor": "2", "start_ts": now, "end_ts": now + 60}
    assert_inert(format_events({"factor": "2", "active": [event], "upcoming": []}), 2)


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
