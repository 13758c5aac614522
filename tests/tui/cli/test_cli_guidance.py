"""Guidance a user meets on the command line: a misspelt command, a short quest id, amounts
in OMNIT, an unreachable broker. Each refusal is one line and a non-zero exit."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.cli import run_cli


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_misspelt_command_suggests_the_closest() -> None:
    done = run_cli("walet")
    assert done.returncode == 2 and done.stdout == ""
    line = _one_error_line(done.stderr)
    assert line == "omnitensor: error: unknown command 'walet'; did you mean 'wallet'?"
    # Nothing close: the commands are listed instead of the usage block.
    done = run_cli("--data-dir", "/nonexistent", "zzzzzz")
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert line.startswith("omnitensor: error: unknown command 'zzzzzz'; one of: status, ")


def test_quest_id_without_its_period_resolves(tmp_path: Path) -> None:
    data = str(tmp_path / "node")
    done = run_cli("quest", "accept", "benchmark-suite", "--data-dir", data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "accepted Benchmark suite"
    # The resolved id reaches the coordinator: accepting again is its refusal, full id named.
    done = run_cli("quest", "accept", "bench", "--data-dir", data)
    assert done.returncode != 0
    line = _one_error_line(done.stderr)
    assert line.startswith("omnitensor: error: quest benchmark-suite:") and "already" in line
    # Several candidates: each one listed; none: the closest.
    done = run_cli("quest", "claim", "s", "--data-dir", data)
    line = _one_error_line(done.stderr)
    assert "several quests match" in line
    assert "season-marathon:" in line and "steady-uptime:" in line
    done = run_cli("quest", "claim", "benchmrk-suite", "--data-dir", data)
    line = _one_error_line(done.stderr)
    assert "not offered to this node; did you mean 'benchmark-suite:" in line


def test_amounts_are_spoken_in_omnit(tmp_path: Path) -> None:
    data = str(tmp_path / "node")
    for amount, why in (
        ("-1", "stake: -1 OMNIT: the amount must be more than 0 OMNIT"),
        ("0.0000000001", "stake: 0.0000000001 OMNIT is finer than 0.000000001 OMNIT"),
        ("abc", "stake: 'abc' is not an amount of OMNIT"),
    ):
        done = run_cli("stake", "--data-dir", data, amount)
        assert done.returncode == 2
        line = _one_error_line(done.stderr)
        assert line.startswith(f"omnitensor: error: {why}") and "base unit" not in line
    done = run_cli("wallet", "--data-dir", data)
    assert done.returncode == 0, done.stderr
    assert re.match(r"balance   [0-9.]+ OMNIT\n", done.stdout) and "base unit" not in done.stdout
