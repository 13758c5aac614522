"""The console driven by keys against a real in-process node on fake GPUs."""

from __future__ import annotations

import time
from typing import ClassVar

import pytest

from core.api.commands import Request
from core.api.views import BenchmarkResult, NodeSnapshot
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from tests.tui.console.conftest import (
    NODE_NAME,
    Messages,
    console,
    screen_text,
    settle,
    wait_for_commands,
)
from tui.console.app import OmniTensorApp
from tui.console.keys import SCREENS
from tui.console.messages import (
    BenchProgressed,
    CommandFinished,
    LogReceived,
    SnapshotFetched,
    TelemetryReceived,
)
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.help import HelpScreen
from tui.console.screens.log import LogScreen
from tui.console.widgets.gpu.card import GpuCard
from tui.console.widgets.log.view import LogView


def _log_text(app: OmniTensorApp) -> str:
    return "\n".join(strip.text for strip in app.screen.query_one(LogView).lines)


async def test_dashboard_shows_every_gpu_live(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        # Two frames after the snapshot: the cards follow telemetry, not only snapshots.
        await messages.wait(TelemetryReceived, new=True)
        await messages.wait(TelemetryReceived, new=True)
        await pilot.pause()
        cards = list(app.screen.query(GpuCard))
        assert [c.border_title for c in cards] == [
            "GPU 0 · NVIDIA GeForce RTX 3080",
            "GPU 1 · NVIDIA GeForce RTX 4090",
        ]
        assert all(c.border_subtitle == "running" for c in cards)
        assert len(cards[0].util_history) >= 2
        text = screen_text(app)
        assert NODE_NAME in text and node.node_id[:12] in text
        assert "no network" in text and "backend numpy" in text
        assert "°C" in text and " / 320 W" in text and "MHz" in text and "fan" in text
        assert "work idle" in text
        await pilot.press("q")
    assert app.return_code == 0


async def test_guard_pause_shows_on_the_card(
    node: Node, gpus: FakeNvml, messages: Messages
) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        gpus.set_temperature(0, 90)
        await messages.wait(
            TelemetryReceived,
            lambda m: m.guard.gpus[0].paused,
            new=True,
        )
        card = app.screen.query(GpuCard).first()
        await settle(pilot, lambda: card.has_class("-paused"))
        assert card.border_subtitle == "paused: 90°C > 85°C"
        assert "1 of 2 GPUs paused" in screen_text(app)


async def test_no_gpu_says_why_and_everything_else_works(
    no_gpu_node: Node, messages: Messages
) -> None:
    app = console(no_gpu_node)
    async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.pause()
        text = screen_text(app)
        assert "No GPU: NVML library not found (no NVIDIA driver installed)" in text
        assert not app.screen.query(GpuCard)
        for mode, title, key in SCREENS:
            await pilot.press(key)
            assert app.current_mode == mode
            assert f"OmniTensor Console — {title}" in screen_text(app)
        await pilot.press("6")  # the log
        await messages.wait(LogReceived, lambda m: m.history)
        await settle(pilot, lambda: "started" in _log_text(app))
        assert any("no GPU: NVML library not found" in e.message for e in app.log_entries)


async def test_digit_keys_help_and_quit(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        # 80 columns: the digits as one group, so help and quit stay visible.
        footer = screen_text(app).splitlines()[-1]
        assert "12345678 Screens" in footer and "? Help" in footer and "q Quit" in footer
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "1 Dash 2 Quests 3 Season 4 Boards 5 Wallet 6 Log 7 Data 8 Gov" in footer
        assert "? Help" in footer and "q Quit" in footer
        await pilot.resize_terminal(80, 24)
        for mode, title, key in [*SCREENS[1:], SCREENS[0]]:
            await pilot.press(key)
            assert app.current_mode == mode
            assert title in screen_text(app).splitlines()[0]
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-text").render())
        for needle in [
            "Everywhere",
            "Quests",
            "Leaderboards",
            "Log",
            "Accept",
            "Claim",
            "Governance",
            "Vote",
        ]:
            assert needle in help_text
        for binding in app.BINDINGS:
            assert str(getattr(binding, "tooltip", "")) in help_text
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_command_palette_switches_screens(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("ctrl+p")
        await pilot.press(*"show wallet")
        await pilot.pause(0.3)  # the palette searches in a worker of its own
        await pilot.press("enter")
        await settle(pilot, lambda: app.current_mode == "wallet")


async def test_bench_from_the_keyboard_with_progress(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2", "b")
        # Progress reaches the screen while the benchmark runs.
        await messages.wait(BenchProgressed, lambda m: m.fraction is not None)
        await pilot.pause()
        assert "benchmark " in screen_text(app) or app.bench is None
        await wait_for_commands(app)
        done = await messages.wait(CommandFinished, lambda m: m.name == "bench")
        assert done.ok, done.error
        assert isinstance(done.result, BenchmarkResult) and done.result.verified is True
        fractions = [m.fraction for m in messages.of(BenchProgressed) if m.fraction is not None]
        assert fractions and all(0.0 <= f <= 1.0 for f in fractions)
        await settle(pilot, lambda: app.bench is None)
        await pilot.press("6")
        await settle(pilot, lambda: "benchmark done" in _log_text(app))
        # NumPy has no fp16 BLAS: no "fp16 0.000 TFLOPS" that reads as a broken device.
        done_lines = [e.message for e in app.log_entries if "benchmark done" in e.message]
        assert "fp16 n/a on numpy (no fp16 BLAS)" in done_lines[-1]
        assert done_lines[-1].endswith(" GB/s, verified")  # words, not a Python "True"


class NoSuchCommand(Request[None], frozen=True, kw_only=True):
    """A command this node does not know (as from a newer console)."""

    name: ClassVar[str] = "no.such.command"


async def test_a_refused_command_is_shown_at_once(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        app.run_command(NoSuchCommand(), "a test command")
        await wait_for_commands(app)
        finished = await messages.wait(CommandFinished)
        assert finished.error == "unknown command 'no.such.command'"
        await pilot.pause()
        assert any("unknown command" in str(n.message) for n in app._notifications)


async def test_log_screen_is_live_and_filterable(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(LogReceived, lambda m: m.history)
        await pilot.press("6")
        assert isinstance(app.screen, LogScreen)
        await settle(pilot, lambda: "started" in _log_text(app))
        await node.emit_log("warning", "guard", "GPU 1 too warm for a test")
        await settle(pilot, lambda: "too warm for a test" in _log_text(app))
        await pilot.press("slash", *"warm")
        await settle(pilot, lambda: "started" not in _log_text(app))
        assert "too warm for a test" in _log_text(app)
        # Digits and q are letters in the filter, not screen keys or quit.
        await pilot.press("4", "q")
        assert app.current_mode == "log" and app.is_running
        await pilot.press("escape", "ctrl+u")
        for _ in range(6):
            await pilot.press("backspace")


@pytest.mark.parametrize("ssh", [True, False])
async def test_ssh_lowers_the_redraw_rate(node: Node, messages: Messages, ssh: bool) -> None:
    from core.node.local_client import LocalNodeClient
    from tui.console.app import make_app

    app = make_app(LocalNodeClient(node), ssh=ssh)
    async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        assert (app.animation_level == "none") is ssh
        # Telemetry arrives every 0.25 s: over SSH the dashboard takes at most one a second.
        applied: list[float] = []
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        original = dashboard.show_snapshot

        def counting(snapshot: NodeSnapshot) -> None:
            applied.append(time.monotonic())
            original(snapshot)

        dashboard.show_snapshot = counting  # type: ignore[method-assign]
        for _ in range(6):
            await messages.wait(TelemetryReceived, new=True)
        await pilot.pause()
        assert len(applied) <= (3 if ssh else 7)
        if not ssh:
            assert len(applied) >= 4


async def test_an_alert_is_shown_until_it_clears(
    node: Node, gpus: FakeNvml, messages: Messages
) -> None:
    app = console(node)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        gpus.set_temperature(1, 88)
        await settle(pilot, lambda: "alert GPU 1 at 88°C" in screen_text(app), tries=400)
        gpus.set_temperature(1, None)
        await settle(pilot, lambda: "alert GPU 1" not in screen_text(app), tries=400)
        await settle(
            pilot, lambda: any("cleared: GPU 1 at 88°C" in e.message for e in app.log_entries)
        )
