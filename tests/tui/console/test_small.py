"""The console's small safeties: log order, toasts, the bench key's words, fp16, screenshots."""

from __future__ import annotations

import time
from pathlib import Path

from core.api.events import LogEvent
from core.node.service import Node
from tests.tui.console.conftest import Messages, console, settle
from tui.console.app_base import MAX_NOTIFICATIONS
from tui.console.log_buffer import LogBuffer
from tui.console.messages import LogReceived, SnapshotFetched
from tui.console.screens.log import LogScreen
from tui.console.widgets.log.view import LogView
from tui.format import clip_words, fp16_rate


def _line(ts: float, message: str) -> LogEvent:
    return LogEvent(ts=ts, level="info", kind="test", message=message, data={})


def test_log_buffer_keeps_time_order() -> None:
    buffer = LogBuffer(size=4)
    buffer.add([_line(10.0, "live a"), _line(11.0, "live b")])
    assert buffer.generation == 0
    # The history arrives after the live lines, and overlaps them by one.
    assert buffer.add([_line(1.0, "old a"), _line(2.0, "old b"), _line(10.0, "live a")]) == 2
    assert buffer.generation == 1
    assert [e.message for e in buffer.entries] == ["old a", "old b", "live a", "live b"]
    buffer.add([_line(12.0, "live c")])
    assert buffer.generation == 1 and buffer.serial == 5
    assert [e.message for e in buffer.entries] == ["old b", "live a", "live b", "live c"]


async def test_log_screen_shows_history_before_live_lines(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(LogReceived, lambda m: m.history)
        await pilot.press("6")
        assert isinstance(app.screen, LogScreen)
        now = time.time()
        app.post_message(LogReceived([_line(now + 100, "zz live line")]))
        await settle(pilot, lambda: "zz live line" in _text(app))
        app.post_message(LogReceived([_line(now - 100, "aa older line")], history=True))
        await settle(pilot, lambda: "aa older line" in _text(app))
        lines = _text(app).splitlines()
        older = next(i for i, t in enumerate(lines) if "aa older line" in t)
        live = next(i for i, t in enumerate(lines) if "zz live line" in t)
        assert older < live
        stamps = [e.ts for e in app.log_entries]
        assert stamps == sorted(stamps)


def _text(app: object) -> str:
    from tui.console.app import OmniTensorApp

    assert isinstance(app, OmniTensorApp)
    return "\n".join(strip.text for strip in app.screen.query_one(LogView).lines)


async def test_at_most_three_notifications(node: Node, messages: Messages) -> None:
    app = console(node)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        for i in range(6):
            app.notify(f"toast {i}", timeout=30)
        await pilot.pause()
        shown = [str(n.message) for n in app._notifications]
        assert MAX_NOTIFICATIONS == 3
        assert shown == ["toast 3", "toast 4", "toast 5"]


async def _bench_help(running: Node, messages: Messages) -> str:
    app = console(running)
    async with app.run_test(size=(100, 30), message_hook=messages):
        await messages.wait(SnapshotFetched)
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
    return helps["Run quick benchmark"]


async def test_bench_key_says_node_without_a_gpu(no_gpu_node: Node, messages: Messages) -> None:
    assert await _bench_help(no_gpu_node, messages) == "Benchmark this node now (key b)"


async def test_bench_key_says_gpus_with_them(node: Node, messages: Messages) -> None:
    assert await _bench_help(node, messages) == "Benchmark this node's GPUs now (key b)"


def test_fp16_on_numpy_is_not_a_rate() -> None:
    assert fp16_rate("numpy", 0.0001) == "n/a on numpy (no fp16 BLAS)"
    assert fp16_rate("cupy", 12.3456) == "12.346 TFLOPS"


async def test_screenshot_failure_says_why(node: Node, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    app = console(node)
    async with app.run_test(size=(100, 30)) as pilot:
        app.deliver_screenshot("shot.svg", str(not_a_dir))

        def failed() -> list[str]:
            return [str(n.message) for n in app._notifications if "screenshot" in str(n.message)]

        await settle(pilot, lambda: bool(failed()))
        assert failed()[0].startswith("Failed to save screenshot: ")
        assert len(failed()[0]) > len("Failed to save screenshot: ")


def test_clip_words_cuts_at_a_word() -> None:
    reason = "slashed 1/10 of the stake: work u1"
    assert clip_words(reason, 40) == reason
    assert clip_words(reason, 20) == "slashed 1/10 of the…"
    assert clip_words("u1a233b1431ce341b9b1 failed", 10) == "u1a233b14…"
    assert clip_words("anything", 0) == ""
