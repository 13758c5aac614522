"""Offline detail in the console: a node whose broker cannot be reached says which broker,
why and when it tries again, on the dashboard's node line."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from tests.tui.console.conftest import Messages, console, node_config, screen_text, settle
from tui.console.app import OmniTensorApp
from tui.console.messages import SnapshotFetched
from tui.format import clock_seconds


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def broker() -> str:
    return f"mqtt://127.0.0.1:{closed_port()}"


@pytest.fixture
async def offline_node(data_dir: Path, broker: str) -> AsyncIterator[Node]:
    """A node on two fake GPUs configured with a broker that refuses connections."""
    # No first benchmark: the test is about the link, not the work the node would do.
    config = node_config(data_dir, broker_url=broker, first_benchmark=False)
    async with Node(config, nvml=FakeNvml.with_gpus(2)) as running:
        running.join_network(broker, mode="remote")
        yield running


def _node_line(app: OmniTensorApp) -> str:
    """The dashboard's node line, unwrapped (it wraps on a narrow terminal)."""
    text = screen_text(app)
    start = text.index(" rig-01 ")
    end = text.index(" work ", start)
    return " ".join(text[start:end].split())


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
async def test_dashboard_says_offline_with_broker_reason_and_next_retry(
    offline_node: Node, broker: str, messages: Messages, size: tuple[int, int]
) -> None:
    app = console(offline_node)
    async with app.run_test(size=size, message_hook=messages) as pilot:
        # The first attempt fails at once (refused); the link's event brings a new snapshot.
        fetched = await messages.wait(SnapshotFetched, lambda m: m.snapshot.link.state == "offline")
        # Wrapped over more lines once the layout follows the longer text.
        await settle(pilot, lambda: " · retry " in _node_line(app))
        link = fetched.snapshot.link
        assert link.broker == broker and link.retry_ts is not None and link.reason
        line = _node_line(app)
        # `offline since HH:MM (broker) · why · retry HH:MM:SS`, whole even at 80x24.
        match = re.search(
            r"offline since \d\d:\d\d \((\S+)\) · (.+) · retry (\d\d:\d\d:\d\d)", line
        )
        assert match is not None, line
        assert match[1] == broker
        assert "refused" in match[2].lower() or "connect call failed" in match[2].lower()
        # The retry shown is the node's latest (each failed attempt moves it).
        latest = offline_node.link.view() if offline_node.link is not None else None
        assert latest is not None and latest.retry_ts is not None
        shown = match[3]
        assert shown in {clock_seconds(link.retry_ts), clock_seconds(latest.retry_ts)}
        assert "connected" not in line
