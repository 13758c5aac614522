"""The command line: no password in flags, --trust-first-use, joining a devnet by its password."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.broker import free_port
from tests.helpers.cli import ROOT, HeadlessNode, cli_env, run_cli
from tui.cli.main import _config_from, build_parser

SECRET = "s3cr3t-Pa55"


def test_a_password_in_broker_is_refused_in_one_line_without_echo(data_dir: Path) -> None:
    result = run_cli(
        "status", "--data-dir", str(data_dir), "--broker", f"mqtts://n:{SECRET}@h.example:8883"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert SECRET not in result.stderr
    assert (
        "--broker-password-file" in result.stderr and "OMNITENSOR_BROKER_PASSWORD" in result.stderr
    )


def test_trust_and_password_file_flags(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.touch(mode=0o600)
    password_file.write_text(SECRET)
    args = build_parser().parse_args(
        [
            "status",
            "--broker",
            "mqtts://alice@h.example:8883",
            "--broker-password-file",
            str(password_file),
            "--trust-first-use",
        ]
    )
    broker = _config_from(args).broker
    assert (broker.url, broker.username, broker.password) == (
        "mqtts://h.example:8883",
        "alice",
        SECRET,
    )
    assert broker.trust_first_use is True
    assert _config_from(build_parser().parse_args(["status"])).broker.trust_first_use is False


@pytest.mark.slow
def test_devnet_prints_how_to_join_and_a_node_joins_with_it(tmp_path: Path) -> None:
    """The devnet's password is in a 0600 file it names; its join line works as printed."""
    devnet_dir, node_dir = tmp_path / "dn", tmp_path / "n"
    env = cli_env(OMNITENSOR_FAKE_GPUS="1")
    devnet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui",
            "devnet",
            "--port",
            str(free_port()),
            "--data-dir",
            str(devnet_dir),
            "--task-interval",
            "0.5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    node: HeadlessNode | None = None
    try:
        assert devnet.stdout is not None
        printed = [devnet.stdout.readline(), devnet.stdout.readline()]
        password_file = devnet_dir / "devnet" / "broker-password"
        assert f"password is in {password_file}" in printed[0]
        assert password_file.stat().st_mode & 0o777 == 0o600
        assert password_file.read_text().strip() not in "".join(printed)
        join = shlex.split(printed[1].split("join it with: omnitensor ", 1)[1])
        join = [{"DIR": str(node_dir), "NAME": "rig1"}.get(word, word) for word in join]
        assert join[0] == "--headless"
        node = HeadlessNode(*join[1:], env=env, log_path=tmp_path / "node.log")
        node.wait_for_socket(node_dir / "node.sock")
        deadline = time.monotonic() + 30
        while True:
            status = run_cli("status", "--json", "--data-dir", str(node_dir), env=env)
            link = json.loads(status.stdout).get("link") or {}
            if link.get("state") == "connected" and link.get("coordinator"):
                break
            assert time.monotonic() < deadline, f"not connected: {link}\n{node.output()}"
            time.sleep(0.2)
        assert password_file.read_text().strip() not in status.stdout
    finally:
        if node is not None:
            node.stop()
        devnet.send_signal(signal.SIGTERM)
        devnet.wait(20)
