"""Guidance a user meets on the command line: a misspelt command, a short quest id, amounts
in OMNIT, an unreachable broker. Each refusal is one line and a non-zero exit."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from tests.helpers.cli import HeadlessNode, run_cli


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
    # Staked and available, as the console's wallet shows them.
    assert re.search(r"^available [0-9.]+ OMNIT · staked 0 OMNIT$", done.stdout, re.M)
    assert re.search(r"^today     \+[0-9.]+ OMNIT earned", done.stdout, re.M)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_broker_fails_fast_in_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    assert run_cli("--version").returncode == 0
    interpreter = time.monotonic() - started
    broker = f"mqtt://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    done = run_cli("wallet", "--broker", broker, "--data-dir", str(tmp_path / "d"))
    elapsed = time.monotonic() - started
    assert done.returncode != 0 and done.stdout == ""
    line = _one_error_line(done.stderr)
    assert line.startswith(f"omnitensor: error: cannot reach the broker at {broker}: ")
    assert "refused" in line.lower()
    assert elapsed < interpreter + 3, f"{elapsed:.1f}s (interpreter {interpreter:.1f}s)"


def test_status_of_an_offline_node_names_the_reason_and_next_retry(
    data_dir: Path, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{_closed_port()}"
    node = HeadlessNode("--data-dir", str(data_dir), "--broker", broker, log_path=tmp_path / "n")
    try:
        node.wait_for_socket(data_dir / "node.sock")
        deadline = time.monotonic() + 20
        while True:
            done = run_cli("status", "--json", "--data-dir", str(data_dir))
            assert done.returncode == 0, done.stderr
            link = json.loads(done.stdout)["link"]
            if link["state"] == "offline" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert link["state"] == "offline" and link["broker"] == broker
        assert "refused" in link["reason"].lower() and link["retry_ts"] > link["since_ts"]
        human = run_cli("status", "--data-dir", str(data_dir)).stdout
        [line] = [line for line in human.splitlines() if line.startswith("link")]
        assert re.fullmatch(
            rf"link +offline since [0-9: -]+ \({re.escape(broker)}\): .*refused.*; "
            r"next retry \d\d:\d\d:\d\d",
            line,
            flags=re.IGNORECASE,
        ), line
    finally:
        assert node.stop() == 0, node.output()
