"""Opening the console: attach to the node running on the data dir, or run one in-process.

``open_console`` is the one place the console's start-up lives, so adding more to an
in-process start (the embedded local network) touches this file only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from core.api.commands import GetSnapshot
from core.api.socket_client import SocketNodeClient
from core.config import Config
from core.errors import NoNodeRunning, OmniError
from core.fleet import FleetRig
from core.node.control import ControlServer
from core.node.local_client import LocalNodeClient
from core.node.service import Node


def _quiet_node_logging() -> None:
    """The node's log goes to its store and the Log screen, not over the console's frames."""
    logger = logging.getLogger("omnitensor")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False


class NoTerminal(OmniError):
    """The console cannot draw here: a dumb terminal, or stdin/stdout not a terminal."""


def terminal_problem() -> str | None:
    """Why this terminal cannot show the console (None when it can)."""
    term = os.environ.get("TERM", "")
    if term == "dumb" or (not term and os.name == "posix"):
        return f"TERM={term or '(unset)'}"
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        try:
            tty = stream is not None and stream.isatty()
        except (OSError, ValueError):
            tty = False
        if not tty:
            return f"{name} is not a terminal"
    return None


def require_terminal(*, attached: bool) -> None:
    """NoTerminal (one line: what to run instead) before any escape code is written."""
    problem = terminal_problem()
    if problem is None:
        return
    instead = (
        "the node keeps running; check it with: omnitensor status"
        if attached
        else "run the node with --headless, check it with: omnitensor status"
    )
    raise NoTerminal(f"this terminal cannot show the console ({problem}); {instead}")


async def connect_running(config: Config) -> SocketNodeClient | None:
    """A client for the node running on the data dir, or None when none answers."""
    try:
        return await SocketNodeClient.connect(config.socket_path)
    except NoNodeRunning:
        return None


async def start_node(config: Config, stack: contextlib.AsyncExitStack) -> Node:
    """Start the console's own node on ``stack`` (stopped when the stack closes).

    Everything an in-process start needs goes here (and only here), so the console and
    ``--headless`` can start the same way.
    """
    from core.node.metrics import serve_metrics
    from core.runtime.localnet import open_node

    metrics = await serve_metrics(config, stack)  # [metrics] listen: bound before the node
    # Joins the configured broker, or starts the embedded local network when there is none.
    node = await open_node(config, stack)
    if metrics is not None:
        await stack.enter_async_context(metrics.following(node))
    return node


async def run_console(config: Config, *, attach_only: bool = False) -> int:
    """Run the console until the user quits; the exit code."""
    from tui.console.app import make_app

    _quiet_node_logging()
    client = await connect_running(config)
    if client is not None:
        # Attached: leaving the console leaves the node running.
        try:
            require_terminal(attached=True)
            app = make_app(client, attached=True)
            await app.run_async()
            print(await _after_attach(client, config))
        finally:
            await client.close()
        return app.return_code or 0
    if attach_only:
        raise NoNodeRunning(
            f"no node is running on data dir {config.data_dir}; "
            "start one with `omnitensor --headless` (or open the console with `omnitensor`)"
        )
    require_terminal(attached=False)
    async with contextlib.AsyncExitStack() as stack:
        node = await start_node(config, stack)
        # The control socket lets `omnitensor status` and a second console reach the node.
        await stack.enter_async_context(ControlServer(node, config.socket_path))
        app = make_app(LocalNodeClient(node))
        await app.run_async()
    return app.return_code or 0


async def _after_attach(client: SocketNodeClient, config: Config) -> str:
    """What the shell shows once the attached console is gone: the node, still running."""
    try:
        snapshot = await asyncio.wait_for(client.command(GetSnapshot()), 5)
    except (OmniError, OSError, TimeoutError):
        return f"the node on data dir {config.data_dir} is no longer running"
    return f"node still running (pid {snapshot.node.pid}, data dir {config.data_dir})"


def open_console(config: Config, *, attach_only: bool = False) -> int:
    """Open the console on ``config``'s data dir (attach if a node runs there)."""
    return asyncio.run(run_console(config, attach_only=attach_only))


def open_fleet(rigs: tuple[FleetRig, ...]) -> int:
    """Open the fleet console on ``rigs`` (``omnitensor fleet``)."""
    from tui.console.fleet import run_fleet

    problem = terminal_problem()
    if problem is not None:
        raise NoTerminal(
            f"this terminal cannot show the fleet console ({problem}); "
            "check each rig with: omnitensor status --data-dir DIR"
        )
    _quiet_node_logging()
    return asyncio.run(run_fleet(rigs))
