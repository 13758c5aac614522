"""Attaching: the console over a node's control socket, and the ``omnitensor`` command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.api.commands import GetLog
from core.api.events import LogHistory
from core.api.socket_client import SocketNodeClient
from core.node.control import ControlServer
from core.node.service import Node
from tests.helpers.cli import HeadlessNode, cli_env, run_cli
from tests.helpers.tmux import Tmux, needs_tmux, shell_command
from tests.tui.console.conftest import (
    NODE_NAME,
    Messages,
    screen_text,
    settle,
    wait_for_commands,
)
from tui.console.app import make_app
from tui.console.keys import SCREENS
from tui.console.messages import CommandFinished, NodeLost, SnapshotFetched, TelemetryReceived
from tui.console.widgets.gpu.card import GpuCard


async def test_console_attached_over_the_socket(node: Node, messages: Messages) -> None:
    async with ControlServer(node, node.config.socket_path):
        client = await SocketNodeClient.connect(node.config.socket_path)
        try:
            app = make_app(client, ssh=False, attached=True)
            async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
                await messages.wait(SnapshotFetched)
                await messages.wait(TelemetryReceived, new=True)
                await pilot.pause()
                assert len(app.screen.query(GpuCard)) == 2
                assert "OmniTensor Console · attached — Dashboard" in screen_text(app)
                assert NODE_NAME in screen_text(app)
                for mode, _title, key in SCREENS:
                    await pilot.press(key)
                    assert app.current_mode == mode
                # A command over the socket, with its result shown.
                app.run_command(GetLog(limit=5), "recent events")
                await wait_for_commands(app)
                done = await messages.wait(CommandFinished, lambda m: m.name == "events")
                assert done.ok and isinstance(done.result, LogHistory) and done.result.events
                await pilot.press("q")
        finally:
            await client.close()
        # Leaving the console leaves the node running.
        assert not node.stopped.is_set()
        assert (await node.snapshot()).node.name == NODE_NAME


async def test_console_says_when_the_node_goes_away(node: Node, messages: Messages) -> None:
    server = ControlServer(node, node.config.socket_path)
    await server.start()
    client = await SocketNodeClient.connect(node.config.socket_path)
    try:
        app = make_app(client, ssh=False, attached=True)
        async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
            await messages.wait(SnapshotFetched)
            await server.stop()
            await messages.wait(NodeLost)
            await settle(pilot, lambda: "OmniTensor Console · disconnected" in screen_text(app))
            assert any("lost the node" in str(n.message) for n in app._notifications)
            # Still usable: the screens switch, and quitting works.
            await pilot.press("6", "q")
        assert app.return_code == 0
    finally:
        await client.close()


def test_attach_says_when_nothing_runs(data_dir: Path) -> None:
    result = run_cli("attach", "--data-dir", str(data_dir))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no node is running on data dir" in lines[0]
    assert "Traceback" not in result.stderr


# -- the real command in a terminal ------------------------------------------------------


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    env = cli_env(OMNITENSOR_FAKE_GPUS="2", TERM="xterm-256color", PS1="$ ")
    session = Tmux(tmp_path / "tmux.sock", env)
    try:
        yield session
    finally:
        session.kill()


@needs_tmux
def test_real_console_in_tmux(tmux: Tmux, data_dir: Path) -> None:
    tmux.type_line(shell_command("--data-dir", str(data_dir), "--name", NODE_NAME))
    screen = tmux.wait_for("GPU 1 · NVIDIA GeForce RTX 4090")
    assert "OmniTensor Console — Dashboard" in screen and NODE_NAME in screen
    for _mode, title, key in [*SCREENS[1:], SCREENS[0]]:
        tmux.send(key)
        tmux.wait_for(f"OmniTensor Console — {title}")
    # On its local network with the GPUs at work, the node earns: q asks before stopping it.
    tmux.wait_for(" done ─╯")
    tmux.send("q")
    tmux.wait_for("Stop the node? It is earning")
    tmux.send("y")
    screen = tmux.wait_for("console-exit=")
    assert "console-exit=0" in screen
    # Back at the shell: the console's screen is gone (alternate screen left).
    assert "OmniTensor Console" not in screen
    assert not (data_dir / "node.sock").exists()  # the in-process node stopped with it


@needs_tmux
def test_real_console_attaches_to_a_headless_node(
    tmux: Tmux, data_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(OMNITENSOR_FAKE_GPUS="2")
    node = HeadlessNode(
        "--data-dir", str(data_dir), "--name", NODE_NAME, env=env, log_path=tmp_path / "n.log"
    )
    try:
        node.wait_for_socket(data_dir / "node.sock")
        tmux.type_line(shell_command("attach", "--data-dir", str(data_dir)))
        screen = tmux.wait_for("GPU 1 · NVIDIA GeForce RTX 4090")
        assert "attached" in screen
        tmux.send("q")
        screen = tmux.wait_for("console-exit=")
        assert "console-exit=0" in screen
        # The shell is told the node is still running, and where.
        assert f"node still running (pid {node.proc.pid}, data dir " in screen
        # The node kept running and still answers.
        assert node.proc.poll() is None
        status = run_cli("status", "--data-dir", str(data_dir), env=env)
        assert status.returncode == 0 and NODE_NAME in status.stdout
    finally:
        assert node.stop() == 0


@needs_tmux
def test_dumb_terminal_gets_one_line_not_the_console(tmux: Tmux, data_dir: Path) -> None:
    tmux.type_line("export TERM=dumb; " + shell_command("--data-dir", str(data_dir)))
    screen = tmux.wait_for("console-exit=")
    assert "console-exit=2" in screen
    assert "omnitensor: error: this terminal cannot show the console (TERM=dumb); run the node" in (
        screen.replace("\n", "")
    )
    assert "OmniTensor Console" not in screen
    assert not (data_dir / "node.db").exists()  # refused before a node started


def test_console_refuses_without_a_terminal(data_dir: Path) -> None:
    # stdin from /dev/null and stdout a pipe: one line, no escape code, no node started.
    env = cli_env(TERM="xterm-256color")
    done = run_cli("--data-dir", str(data_dir), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "omnitensor: error: this terminal cannot show the console (stdin is not a terminal); "
        "run the node with --headless, check it with: omnitensor status\n"
    )
    assert not (data_dir / "node.db").exists()
    # Attaching with no node: that is said first (the terminal does not matter then).
    done = run_cli("attach", "--data-dir", str(data_dir), env=env)
    assert done.returncode == 3 and "no node is running" in done.stderr
