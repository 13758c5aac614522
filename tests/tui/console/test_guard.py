"""The console's guards: a terminal too small to draw in, and quitting a node that earns."""

from __future__ import annotations

import msgspec

from core.api.views import Counters, LinkView, NodeSnapshot, WorkerView
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tests.tui.console.conftest import Messages, screen_text, settle
from tui.console.app import make_app
from tui.console.messages import SnapshotFetched
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.guard import QuitScreen, TooSmallScreen


async def test_too_small_terminal_says_so_and_recovers(node: Node, messages: Messages) -> None:
    app = make_app(LocalNodeClient(node), ssh=False)
    async with app.run_test(size=(40, 12), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await settle(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        assert "terminal too small (40x12), need 80x24" in screen_text(app)
        # Screen keys wait for a terminal that shows them; the size follows the terminal.
        await pilot.press("2")
        assert app.current_mode == "dashboard"
        await pilot.resize_terminal(79, 30)
        await settle(pilot, lambda: "terminal too small (79x30)" in screen_text(app))
        await pilot.resize_terminal(80, 24)
        await settle(pilot, lambda: isinstance(app.screen, DashboardScreen))
        text = screen_text(app)
        assert "OmniTensor Console — Dashboard" in text and "q Quit" in text
        assert "too small" not in text
        await pilot.resize_terminal(60, 20)
        await settle(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        await pilot.press("q")
    assert app.return_code == 0


class EarningClient(LocalNodeClient):
    """The node as if on a network with a device at work and 7 units verified."""

    async def snapshot(self) -> NodeSnapshot:
        snapshot = await super().snapshot()
        worker = WorkerView(index=0, gpu=0, label="GPU 0", state="computing", unit="u1")
        return msgspec.structs.replace(
            snapshot,
            link=LinkView(mode="remote", broker="mqtt://example:1883", state="connected"),
            workers=(worker,),
            counters=Counters(
                submitted=9, acknowledged=8, outbox_pending=0, rejected=1, credited=0
            ),
        )


async def test_quit_asks_before_stopping_an_earning_node(node: Node, messages: Messages) -> None:
    app = make_app(EarningClient(node), ssh=False)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("q")
        await settle(pilot, lambda: "Stop the node?" in screen_text(app))
        assert isinstance(app.screen, QuitScreen)
        text = screen_text(app)
        assert "Stop the node? It is earning: 7 units verified" in text
        assert "[y] stop  [n] keep running" in text
        await pilot.press("q")  # q again does not stack a second question
        assert sum(isinstance(s, QuitScreen) for s in app.screen_stack) == 1
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert app.is_running
        await pilot.press("q")
        await settle(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("y")
    assert app.return_code == 0


async def test_attached_console_quits_at_once_even_when_earning(
    node: Node, messages: Messages
) -> None:
    app = make_app(EarningClient(node), ssh=False, attached=True)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("q")
        await pilot.pause()
        assert not any(isinstance(s, QuitScreen) for s in app.screen_stack)
    assert app.return_code == 0
