"""Opening the console: attach to the node running on the data dir, or run one in-process.

``open_console`` is the one place the console's start-up lives, so adding more to an
in-process start (the embedded local network) touches this file only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.api.socket_client import SocketNodeClient
from core.config import Config
from core.errors import NoNodeRunning
from core.node.control import ControlServer
from core.node.local_client import LocalNodeClient
from core.node.service import Node


def _quiet_node_logging() -> None:
    """The node's log goes to its store and the Log screen, not over the console's frames."""
    logger = logging.getLogger("omnitensor")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False


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
            app = make_app(client, attached=True)
            await app.run_async()
        finally:
            await client.close()
        return app.return_code or 0
    if attach_only:
        raise NoNodeRunning(
            f"no node is running on data dir {config.data_dir}; "
            "start one with `omnitensor --headless` (or open the console with `omnitensor`)"
        )
    async with contextlib.AsyncExitStack() as stack:
        node = await start_node(config, stack)
        # The control socket lets `omnitensor status` and a second console reach the node.
        await stack.enter_async_context(ControlServer(node, config.socket_path))
        app = make_app(LocalNodeClient(node))
        await app.run_async()
    return app.return_code or 0


def open_console(config: Config, *, attach_only: bool = False) -> int:
    """Open the console on ``config``'s data dir (attach if a node runs there)."""
    return asyncio.run(run_console(config, attach_only=attach_only))
