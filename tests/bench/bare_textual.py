"""A bare Textual app for the console benchmark's baseline: the same chrome and the same
number of sparklines as the console's two-GPU dashboard, fed one sample a second.

Run by ``python -m tests.bench.console_bench``; ``python -m tests.bench.bare_textual`` shows it.
"""

from __future__ import annotations

import random
from collections import deque

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import Footer, Header, Sparkline, Static

GPUS = 2
HISTORY = 120


class BareApp(App[None]):
    TITLE = "OmniTensor Console"
    BINDINGS = [("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        for index, name in enumerate(("NVIDIA GeForce RTX 3080", "NVIDIA GeForce RTX 4090")):
            with Vertical(classes="card"):
                yield Static(f"GPU {index} · {name}")
                yield Sparkline([], id=f"util-{index}")
                yield Sparkline([], id=f"mem-{index}")
                yield Static("", id=f"readings-{index}")
        yield Footer()

    def on_mount(self) -> None:
        self.samples: dict[str, deque[float]] = {k: deque(maxlen=HISTORY) for k in self._keys()}
        self.set_interval(1.0, self.tick)

    def _keys(self) -> list[str]:
        return [f"{kind}-{i}" for i in range(GPUS) for kind in ("util", "mem")]

    def tick(self) -> None:
        for key in self._keys():
            history = self.samples[key]
            history.append(random.uniform(0, 100))
            self.query_one(f"#{key}", Sparkline).data = list(history)
        for i in range(GPUS):
            self.query_one(f"#readings-{i}", Static).update(
                f"{random.uniform(60, 80):.0f}°C  {random.uniform(200, 300):.0f} W"
            )


if __name__ == "__main__":
    BareApp().run()
