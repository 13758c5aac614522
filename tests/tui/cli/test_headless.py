"""The real command: headless start/stop, status against it, bad inputs, bench."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.helpers.cli import HeadlessNode, cli_env, run_cli


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_headless_start_status_stop(data_dir: Path, tmp_path: Path, sig: int) -> None:
    env = cli_env(OMNITENSOR_FAKE_GPUS="2")
    node = HeadlessNode(
        "--data-dir", str(data_dir), "--name", "alice", env=env, log_path=tmp_path / "node.log"
    )
    try:
        node.wait_for_socket(data_dir / "node.sock")
        status = run_cli("status", "--json", "--data-dir", str(data_dir), env=env)
        assert status.returncode == 0, status.stderr
        snap = json.loads(status.stdout)
        assert snap["running"] is True
        assert snap["node"]["name"] == "alice"
        assert len(snap["node"]["id"]) == 64
        assert snap["node"]["uptime_s"] >= 0
        assert snap["backend"]["name"] == "numpy"
        assert [g["name"] for g in snap["telemetry"]["gpus"]][:1] == ["NVIDIA GeForce RTX 3080"]
        assert snap["guard"]["paused"] is False
        assert snap["last_benchmark"] is None

        # The embedding model: named, with what it can do or how to get it.
        assert snap["model"]["model"] == "all-MiniLM-L6-v2"
        human = run_cli("status", "--data-dir", str(data_dir), env=env)
        assert human.returncode == 0
        assert "alice" in human.stdout and "guard" in human.stdout
        [model_line] = [line for line in human.stdout.splitlines() if line.startswith("model")]
        assert "all-MiniLM-L6-v2" in model_line
        assert ("installed" in model_line) or ("model install" in model_line)

        # A second node on the same data dir: one line, non-zero, the first keeps running.
        second = run_cli("--headless", "--data-dir", str(data_dir), env=env)
        assert second.returncode != 0
        assert second.stderr.strip().count("\n") == 0
        assert "already running" in second.stderr and "Traceback" not in second.stderr
        assert node.proc.poll() is None
    finally:
        code = node.stop(sig)
    assert code == 0, node.output()
    log = node.output()
    assert "started" in log and "node stopped" in log and "Traceback" not in log
    assert not (data_dir / "node.sock").exists()
    # The store was closed cleanly and still holds the node's events.
    with sqlite3.connect(data_dir / "node.db") as db:
        messages = [r[0] for r in db.execute("SELECT message FROM events")]
    assert any("started" in m for m in messages) and any("stopped" in m for m in messages)


def test_headless_json_log_lines(data_dir: Path, tmp_path: Path) -> None:
    node = HeadlessNode("--json", "--data-dir", str(data_dir), log_path=tmp_path / "n.log")
    try:
        node.wait_for_socket(data_dir / "node.sock")
    finally:
        assert node.stop() == 0
    raw = [line for line in node.output().splitlines() if line.strip()]
    not_json = [line for line in raw if not line.startswith("{")]
    assert not_json == []
    lines = [json.loads(line) for line in raw]
    assert lines and all({"ts", "level", "message"} <= set(line) for line in lines)


def test_status_when_no_node_runs(data_dir: Path) -> None:
    result = run_cli("status", "--data-dir", str(data_dir))
    assert result.returncode == 3
    assert "no node is running" in result.stderr
    as_json = run_cli("status", "--json", "--data-dir", str(data_dir))
    assert json.loads(as_json.stdout)["running"] is False


def test_bad_config_value_one_line(tmp_path: Path, data_dir: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("telemetry_interval = -3\n")
    result = run_cli("--headless", "--config", str(config), "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert str(config) in result.stderr and "telemetry_interval" in result.stderr


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = run_cli("--headless", "--data-dir", str(blocker / "d"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(blocker) in result.stderr


def test_corrupt_key_keeps_store(data_dir: Path, tmp_path: Path) -> None:
    node = HeadlessNode("--data-dir", str(data_dir), log_path=tmp_path / "n.log")
    node.wait_for_socket(data_dir / "node.sock")
    assert node.stop() == 0
    store_before = (data_dir / "node.db").read_bytes()
    key = data_dir / "node.key"
    key.write_bytes(b"\x00corrupted")
    os.chmod(key, 0o600)
    result = run_cli("--headless", "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "node.key" in result.stderr
    assert "corrupt" in result.stderr
    assert (data_dir / "node.db").read_bytes() == store_before
    assert key.read_bytes() == b"\x00corrupted"


def test_bench_json_quick(data_dir: Path) -> None:
    result = run_cli("bench", "--json", "--quick", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["backend"] == "numpy"
    assert out["device"]
    assert out["gemm"]["fp32"]["tflops"] > 0 and out["gemm"]["fp16"]["tflops"] > 0
    assert out["bandwidth"]["gbps"] > 0
    assert out["verified"] is True
    assert "bench:" in result.stderr  # plain progress lines when not a TTY
    # The result was stored: status of a later node shows it.
    with sqlite3.connect(data_dir / "node.db") as db:
        assert db.execute("SELECT COUNT(*) FROM benchmarks").fetchone() == (1,)


def test_forced_cupy_without_device_is_a_clear_error(data_dir: Path) -> None:
    result = run_cli(
        "bench", "--quick", "--data-dir", str(data_dir), env=cli_env(OMNITENSOR_BACKEND="cupy")
    )
    assert result.returncode != 0
    assert "OMNITENSOR_BACKEND=cupy" in result.stderr
    assert "Traceback" not in result.stderr


def test_share_gpu_estimate_and_a_timed_share(data_dir: Path) -> None:
    estimate = run_cli("share-gpu", "--gpu-type", "NVIDIA RTX 3080", "--hours", "24", "--estimate")
    assert (estimate.returncode, estimate.stdout) == (0, "Reward: 150 OMNIT Tokens\n")
    unknown = run_cli("share-gpu", "--gpu-type", "RTX 3090 Tii", "--hours", "1", "--estimate")
    assert unknown.returncode == 2 and "close matches: NVIDIA GeForce RTX 3090 Ti" in unknown.stderr
    # A short real share on the local network: it starts, works, stops by itself.
    shared = run_cli(
        "share-gpu",
        "--gpu-type",
        "NVIDIA RTX 3080",
        "--hours",
        "0.002",
        "--data-dir",
        str(data_dir),
    )
    assert shared.returncode == 0, shared.stderr
    assert "projected" in shared.stdout and "earned so far:" in shared.stdout
    assert "Traceback" not in shared.stderr
