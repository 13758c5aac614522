"""Faults with real processes and a real Mosquitto: every piece of work credited once.

The node and the coordinator run as the real ``omnitensor`` commands; the broker, the node
and the coordinator are each killed mid-run (SIGKILL for the node and the coordinator).
After recovery the node's counters must settle with ``acknowledged == submitted`` and
``pending == 0``, and the coordinator's ledger must hold exactly one entry per verified
piece of work.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.broker import MosquittoProcess
from tests.helpers.cli import ROOT, HeadlessNode, cli_env, run_cli

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TASK_INTERVAL = "0.3"


class CoordinatorProcess:
    def __init__(self, url: str, data_dir: Path, log_path: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "tui",
            "coordinator",
            "--broker",
            url,
            "--data-dir",
            str(data_dir),
            "--task-interval",
            TASK_INTERVAL,
            "--unit-seconds",
            "0.3",
        ]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def counters(data_dir: Path) -> dict[str, int]:
    result = run_cli("status", "--json", "--data-dir", str(data_dir), env=cli_env())
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    return dict(snap["counters"])


def wait_for(check, timeout: float, what: str, poll: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def db_counters(data_dir: Path) -> dict[str, int]:
    """The node's counters read from its database (cheap enough to poll; ``counters`` asks
    the running node through the CLI)."""
    with contextlib.closing(sqlite3.connect(data_dir / "node.db", timeout=10)) as db:
        submitted, acknowledged = db.execute(
            "SELECT (SELECT COUNT(*) FROM units WHERE status != 'received'),"
            " (SELECT COUNT(*) FROM units WHERE status IN ('accepted', 'rejected'))"
        ).fetchone()
        (pending,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
    return {
        "work.submitted": submitted,
        "work.acknowledged": acknowledged,
        "outbox.pending": pending,
    }


def open_units(data_dir: Path) -> tuple[set[str], set[str], set[str]]:
    """(units received and still to compute in time, units awaiting a receipt, outbox)."""
    with contextlib.closing(sqlite3.connect(data_dir / "node.db", timeout=10)) as db:
        to_compute = {
            row[0]
            for row in db.execute(
                "SELECT task_id FROM units WHERE status = 'received' AND deadline_ts > ?",
                (time.time() + 1.0,),
            )
        }
        unsettled = {
            row[0]
            for row in db.execute(
                "SELECT task_id FROM units WHERE status IN ('committed', 'proved')"
            )
        }
        outbox = {row[0] for row in db.execute("SELECT task_id FROM outbox")}
    return to_compute, unsettled, outbox


def settled(data_dir: Path, at_least: int) -> dict[str, int] | None:
    c = db_counters(data_dir)
    ok = (
        c["work.submitted"] >= at_least
        and c["outbox.pending"] == 0
        and c["work.acknowledged"] == c["work.submitted"]
    )
    return c if ok else None


def unit_statuses(data_dir: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(data_dir / "node.db", timeout=10)) as db:
        return dict(db.execute("SELECT task_id, status FROM units"))


def assert_credited_once(node_dir: Path, coordinator_dir: Path) -> None:
    with sqlite3.connect(node_dir / "node.db") as node_db:
        accepted = {
            row[0] for row in node_db.execute("SELECT task_id FROM units WHERE status = 'accepted'")
        }
        credited = dict(node_db.execute("SELECT task_id, credited FROM units"))
    with sqlite3.connect(coordinator_dir / "coordinator.db") as coord_db:
        refs = [row[0] for row in coord_db.execute("SELECT ref FROM ledger WHERE kind = 'reward'")]
        amounts = dict(coord_db.execute("SELECT ref, amount FROM ledger WHERE kind = 'reward'"))
        minted = coord_db.execute("SELECT minted FROM supply").fetchone()[0]
    assert accepted, "no work was verified"
    assert len(refs) == len(set(refs)), "a piece of work was credited twice"
    assert accepted <= set(refs), "accepted work missing from the ledger"
    assert all(credited[w] == amounts[w] for w in accepted)
    assert minted == sum(amounts.values())


def start_node(url: str, node_dir: Path, tmp_path: Path, tag: str) -> HeadlessNode:
    node = HeadlessNode(
        "--broker",
        url,
        "--data-dir",
        str(node_dir),
        "--name",
        "rig1",
        "--trust-first-use",
        env=cli_env(OMNITENSOR_FAKE_GPUS="1"),
        log_path=tmp_path / f"node-{tag}.log",
    )
    node.wait_for_socket(node_dir / "node.sock")
    return node


def test_broker_killed_and_restarted(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    node_dir, coord_dir = tmp_path / "n", tmp_path / "c"
    coordinator = CoordinatorProcess(mosquitto.url, coord_dir, tmp_path / "coord.log")
    node = start_node(mosquitto.url, node_dir, tmp_path, "a")
    try:
        wait_for(lambda: db_counters(node_dir)["work.submitted"] >= 2, 60, "first work")
        # Kill the broker while a unit is open (received, committed or proved), so the
        # outage has work in it.
        wait_for(lambda: any(open_units(node_dir)[:2]), 30, "an open unit", poll=0.02)
        mosquitto.kill()
        wait_for(
            lambda: (
                json.loads(run_cli("status", "--json", "--data-dir", str(node_dir)).stdout)["link"][
                    "state"
                ]
                == "offline"
            ),
            30,
            "offline",
        )

        def worked_offline() -> tuple[set[str], set[str]] | None:
            # Every unit received is computed, every unit awaiting a receipt keeps its
            # message in the outbox: nothing is dropped because the broker is gone.
            to_compute, unsettled, outbox = open_units(node_dir)
            return (unsettled, outbox) if not to_compute and unsettled <= outbox else None

        unsettled, outbox = wait_for(worked_offline, 30, "work done and queued offline")
        assert not mosquitto.is_running
        if unsettled:  # the usual case; a receipt may just have beaten the kill
            assert db_counters(node_dir)["outbox.pending"] == len(outbox) > 0
        mosquitto.start()
        before = db_counters(node_dir)["work.submitted"]
        wait_for(lambda: settled(node_dir, before + 2), 90, "settled after broker restart")
        assert unsettled <= {
            task for task, status in unit_statuses(node_dir).items() if status == "accepted"
        }
    finally:
        node_code = node.stop()
        coordinator_code = coordinator.stop()
    assert node_code == 0, node.output()
    assert coordinator_code == 0
    assert_credited_once(node_dir, coord_dir)


def test_node_killed_with_sigkill(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    node_dir, coord_dir = tmp_path / "n", tmp_path / "c"
    coordinator = CoordinatorProcess(mosquitto.url, coord_dir, tmp_path / "coord.log")
    node = start_node(mosquitto.url, node_dir, tmp_path, "a")
    try:
        wait_for(lambda: counters(node_dir)["work.submitted"] >= 3, 60, "first work")
        node.stop(signal.SIGKILL)
        node = start_node(mosquitto.url, node_dir, tmp_path, "b")
        before = counters(node_dir)["work.submitted"]
        wait_for(lambda: settled(node_dir, before + 2), 90, "settled after node restart")
    finally:
        node.stop()
        coordinator_code = coordinator.stop()
    assert coordinator_code == 0
    assert_credited_once(node_dir, coord_dir)


def test_coordinator_killed_with_sigkill(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    node_dir, coord_dir = tmp_path / "n", tmp_path / "c"
    coordinator = CoordinatorProcess(mosquitto.url, coord_dir, tmp_path / "coord.log")
    node = start_node(mosquitto.url, node_dir, tmp_path, "a")
    try:
        wait_for(lambda: counters(node_dir)["work.submitted"] >= 3, 60, "first work")
        coordinator.kill()
        time.sleep(1.0)
        coordinator.start()
        before = counters(node_dir)["work.submitted"]
        wait_for(lambda: settled(node_dir, before + 2), 90, "settled after coordinator restart")
    finally:
        node_code = node.stop()
        coordinator_code = coordinator.stop()
    assert node_code == 0, node.output()
    assert coordinator_code == 0
    assert_credited_once(node_dir, coord_dir)
