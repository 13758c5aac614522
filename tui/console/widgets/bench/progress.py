"""Live benchmark progress from ``bench.progress`` events."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from core.api.views import BenchProgressView
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

    progress: var[BenchProgressView | None] = var(None, init=False)

    def watch_progress(self, progress: BenchProgressView | None) -> None:
        self.set_class(progress is not None, "-running")
        if progress is None:
            return
        fraction = progress.fraction
        set_text(
            self,
            Content.assemble(
                ("benchmark ", "bold"),
                f"{progress.stage:<14} ",
                (bar(fraction, 20), "$accent"),
                f" {fraction:4.0%}",
            ),
            layout=False,
        )
