"""``omnitensor fleet``: one console over several rigs (real headless nodes in child processes)."""

from __future__ import annotations

import asyncio
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from core.api import fleet_watch
from core.api.fleet_watch import RigStatus, RigWatch, SshTunnel
from core.fleet import FleetRig
from core.node.control import ControlServer
from core.node.service import Node
from tests.helpers.cli import ROOT, HeadlessNode, cli_env, run_cli
from tests.helpers.tmux import Tmux, needs_tmux, shell_command
from tests.tui.console.conftest import NODE_NAME
from tui.console.fleet import FleetApp, RigScreen

WAIT = 30.0  # generous: a test that waits this long has failed


async def until(pilot: Pilot[Any], check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "the fleet never reached the expected state"
        await pilot.pause(0.05)


def _text(app: FleetApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def _online(app: FleetApp, name: str) -> bool:
    status = app.statuses.get(name)
    return status is not None and status.online


def _with_gpus(app: FleetApp, name: str) -> bool:
    """Online, with a telemetry frame (a node just started may not have one yet)."""
    status = app.statuses.get(name)
    snapshot = status.snapshot if status is not None and status.online else None
    return snapshot is not None and snapshot.telemetry is not None


def _start(data_dir: Path, name: str, log: Path) -> HeadlessNode:
    env = cli_env(OMNITENSOR_FAKE_GPUS="2")
    return HeadlessNode("--data-dir", str(data_dir), "--name", name, env=env, log_path=log)


async def test_fleet_of_two_local_rigs(tmp_path: Path) -> None:
    dirs = {"rig-a": tmp_path / "a", "rig-b": tmp_path / "b"}
    nodes = {name: _start(d, f"node-{name}", tmp_path / f"{name}.log") for name, d in dirs.items()}
    try:
        for name, node in nodes.items():
            await asyncio.to_thread(node.wait_for_socket, dirs[name] / "node.sock")
        rigs = [FleetRig(name=name, data_dir=d) for name, d in dirs.items()]
        app = FleetApp(rigs)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: _with_gpus(app, "rig-a") and _with_gpus(app, "rig-b"))
            table = app.query_one("#rigs", DataTable)
            assert table.row_count == 2
            assert [str(table.get_row_at(i)[0]) for i in range(2)] == ["rig-a", "rig-b"]
            await until(pilot, lambda: _text(app).count("2 · max") == 2)
            assert _text(app).count("online") == 2
            # Each row is its node: the names the nodes were started with.
            for name in dirs:
                status = app.statuses[name]
                assert status.snapshot is not None
                assert status.snapshot.node.name == f"node-{name}"

            # rig-b stops: its row says so, with the reason; rig-a stays online.
            assert await asyncio.to_thread(nodes["rig-b"].stop) == 0
            await until(pilot, lambda: not _online(app, "rig-b"))
            reason = app.statuses["rig-b"].reason
            assert reason  # the client's own words: the connection closed, or no node runs
            await until(pilot, lambda: "unreachable" in _text(app))
            assert _online(app, "rig-a")

            # It comes back, and so does its row (tried again every few seconds).
            nodes["rig-b"] = _start(dirs["rig-b"], "node-rig-b", tmp_path / "rig-b-2.log")
            await asyncio.to_thread(nodes["rig-b"].wait_for_socket, dirs["rig-b"] / "node.sock")
            await until(pilot, lambda: _online(app, "rig-b"))

            # d opens the rig's detail: its GPUs and its work; Escape comes back. (Enter opens
            # the rig's own console: test_enter_opens_the_rigs_own_console_in_tmux.)
            table.move_cursor(row=0)
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, RigScreen))
            await until(pilot, lambda: "GPU 1" in _text(app))
            detail = _text(app)
            assert "rig-a" in detail and "GPU 0" in detail and "work" in detail
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, RigScreen))
            await pilot.press("q")
    finally:
        for node in nodes.values():
            node.stop()


async def test_missing_ssh_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fleet_watch, "SSH_COMMAND", str(tmp_path / "no-such-ssh"))
    rig = FleetRig(name="far", ssh="me@far.example", remote_data_dir=PurePosixPath("/home/me/d"))
    seen: list[RigStatus] = []
    reported = asyncio.Event()

    def report(status: RigStatus) -> None:
        seen.append(status)
        reported.set()

    watch = RigWatch(rig, report, tunnel_dir=tmp_path, retry_seconds=0.05)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(reported.wait(), WAIT)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not seen[0].online and seen[0].reason == "ssh not installed"


def test_ssh_forward_command_uses_a_socket_not_a_port(tmp_path: Path) -> None:
    rig = FleetRig(name="far", ssh="me@far.example", remote_data_dir=PurePosixPath("/home/me/d"))
    command = SshTunnel(rig, tmp_path).command()
    assert command[-2:] == ["--", "me@far.example"]
    assert "ExitOnForwardFailure=yes" in command and "BatchMode=yes" in command
    assert command[command.index("-L") + 1] == f"{tmp_path / 'far.sock'}:/home/me/d/node.sock"


def test_fleet_with_no_rigs_says_how_to_add_them(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[node]\nname = "me"\n')
    done = run_cli("fleet", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no rigs configured in" in lines[0]
    assert "[[fleet.rigs]]" in lines[0] and "Traceback" not in done.stderr


async def test_ssh_rig_through_a_forward_restarted_when_it_dies(
    node: Node, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An ssh rig reached through the forward (a stand-in ssh on this machine): online; the
    forward dies, the rig is unreachable, and ssh is started again; gone after the watch."""
    fake = tmp_path / "ssh"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} {ROOT / "tests/helpers/fake_ssh.py"} "$@"\n')
    fake.chmod(0o700)
    monkeypatch.setattr(fleet_watch, "SSH_COMMAND", str(fake))
    remote = PurePosixPath(node.config.data_dir)
    rig = FleetRig(name="far", ssh="me@far.example", remote_data_dir=remote)
    updates: asyncio.Queue[RigStatus] = asyncio.Queue()
    tunnels = fleet_watch.tunnel_directory()
    watch = RigWatch(rig, updates.put_nowait, tunnel_dir=tunnels, retry_seconds=0.1)

    async def next_status(online: bool) -> RigStatus:
        while (status := await asyncio.wait_for(updates.get(), WAIT)).online != online:
            pass
        return status

    async with ControlServer(node, node.config.socket_path):
        task = asyncio.create_task(watch.run())
        try:
            status = await next_status(online=True)
            assert status.snapshot is not None and status.snapshot.node.name == NODE_NAME
            assert watch.tunnel is not None
            local = watch.tunnel.local
            assert local.parent == tunnels and stat.S_IMODE(tunnels.stat().st_mode) == 0o700
            assert stat.S_IMODE(local.stat().st_mode) == 0o600
            proc = watch.tunnel._proc
            assert proc is not None
            proc.kill()
            down = await next_status(online=False)
            assert down.reason
            await next_status(online=True)  # ssh started again (after a 1 s backoff)
            assert watch.tunnel._proc is not None and watch.tunnel._proc.pid != proc.pid
            last = watch.tunnel._proc
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert last.returncode is not None  # the forward ends with the watch
    assert not local.exists()
    tunnels.rmdir()


def test_a_rigs_own_console_here_or_over_ssh(tmp_path: Path) -> None:
    from tui.console.fleet import console_command

    local = FleetRig(name="a", data_dir=tmp_path / "a")
    assert console_command(local) == [
        sys.executable,
        "-m",
        "tui",
        "attach",
        "--data-dir",
        str(tmp_path / "a"),
    ]
    remote = FleetRig(name="b", ssh="me@rig-b", remote_data_dir=PurePosixPath("/srv/o t"))
    assert console_command(remote) == [
        "ssh",
        "-t",
        "--",
        "me@rig-b",
        "omnitensor attach --data-dir '/srv/o t'",
    ]


@needs_tmux
def test_enter_opens_the_rigs_own_console_in_tmux(tmp_path: Path) -> None:
    """The real ``omnitensor fleet`` in a terminal: Enter on a rig's row opens that rig's
    own console (attached: its title and footer); q leaves it, the node still running, and
    the fleet is back. A rig with no node: its console fails, and the fleet says so."""
    env = cli_env(OMNITENSOR_FAKE_GPUS="2", TERM="xterm-256color", PS1="$ ")
    rig_dir, empty_dir = tmp_path / "a", tmp_path / "none"
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[[fleet.rigs]]\nname = "rig-a"\ndata_dir = "{rig_dir}"\n\n'
        f'[[fleet.rigs]]\nname = "rig-gone"\ndata_dir = "{empty_dir}"\n'
    )
    node = _start(rig_dir, "node-rig-a", tmp_path / "rig-a.log")
    tmux = Tmux(tmp_path / "tmux.sock", env)
    try:
        node.wait_for_socket(rig_dir / "node.sock")
        fleet = ("fleet", "--config", str(config), "--data-dir", str(tmp_path / "own"))
        tmux.type_line(shell_command(*fleet, marker="fleet"))
        tmux.wait_for("unreachable")  # rig-gone: tried once, so rig-a's row is known too
        screen = tmux.wait_for(" online ")
        rows = [line.split() for line in screen.splitlines() if "rig-" in line]
        assert [row[:2] for row in rows] == [["rig-a", "online"], ["rig-gone", "unreachable"]]
        assert "OmniTensor Fleet" in screen and "⏎ Console" in screen and "d Detail" in screen

        tmux.send("Enter")  # the cursor starts on the first row: rig-a
        screen = tmux.wait_for("OmniTensor Console · attached — Dashboard")
        tmux.wait_for("node-rig-a")
        assert "OmniTensor Fleet" not in screen
        assert "q Quit" in tmux.wait_for("GPU 1 · NVIDIA GeForce RTX 4090")
        tmux.send("q")
        screen = tmux.wait_for("OmniTensor Fleet")
        assert "OmniTensor Console" not in screen

        # rig-gone has no node: its console exits 3 at once and the fleet says so. (Enter on
        # its detail: Down then Enter sent at once could reach the app's Enter binding before
        # the table has moved its cursor.)
        tmux.send("Down", "d")
        tmux.wait_for("OmniTensor Fleet — rig-gone")
        tmux.send("Enter")
        tmux.wait_for("rig-gone's console exited 3")
        tmux.send("Escape")
        tmux.wait_for("d Detail")

        tmux.send("q")
        screen = tmux.wait_for("fleet-exit=")
        assert "fleet-exit=0" in screen
        # The attached console printed this on the normal screen as it quit.
        assert f"node still running (pid {node.proc.pid}, data dir {rig_dir})" in screen
        assert node.proc.poll() is None  # quitting its console left the node running
    finally:
        tmux.kill()
        assert node.stop() == 0
