"""Live benchmark progress from ``bench.progress`` events."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from tui.console.widgets.common.text import set_text
from tui.format import bar


class BenchProgress(Static):
    """``benchmark  <stage>  ██████░░░░  60%`` while a benchmark runs; hidden otherwise."""

    DEFAULT_CSS = """
    BenchProgress {
        height: 1;
        display: none;
        &.-running { display: block; }
    }
    """

    progress: var[dict[str, Any] | None] = var(None, init=False)

    def watch_progress(self, progress: dict[str, Any] | None) -> None:
        running = progress is not None and progress.get("fraction") is not None
        self.set_class(running, "-running")
        if progress is None or not running:
            return
        fraction = float(progress["fraction"])
        set_text(
            self,
            Content.assemble(
                ("benchmark ", "bold"),
                f"{progress.get('stage', '')!s:<14} ",
                (bar(fraction, 20), "$accent"),
                f" {fraction:4.0%}",
            ),
            layout=False,
        )
