"""One line of a GPU card: a percentage as a number, a bar and its recent history."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from tui.format import NA, bar

_BARS = "▁▂▃▄▅▆▇█"
BAR_WIDTH = 12


def history_cells(samples: tuple[float | None, ...], width: int, maximum: float = 100.0) -> str:
    """A sparkline on a fixed 0..``maximum`` scale, one cell per sample, newest on the right.

    Textual's ``Sparkline`` stretches the data to the width and scales it between its own
    minimum and maximum, so a load wobbling between 48 % and 52 % would fill the cell range.
    A GPU history reads better on a fixed scale with one cell per sample (as nvitop draws
    it), so the time axis does not change as samples arrive.
    """
    if width <= 0:
        return ""
    cells = []
    for value in samples[-width:]:
        if value is None:
            cells.append(" ")
        else:
            level = round(max(0.0, min(1.0, value / maximum)) * (len(_BARS) - 1))
            cells.append(_BARS[level])
    return "".join(cells).rjust(width)


class MetricRow(Widget):
    """``util   78% █████████▍   ▂▃▅▆▆`` in one widget.

    One widget per line rather than a label, a bar and a sparkline side by side: each
    telemetry frame then repaints two widgets per card, not six, which is most of the
    console's cost per frame.
    """

    DEFAULT_CSS = """
    MetricRow {
        height: 1;
    }
    """

    value: reactive[float | None] = reactive(None, layout=False)
    """The percentage now (None: not reported)."""
    history: reactive[tuple[float | None, ...]] = reactive((), layout=False)
    """Recent percentages, oldest first."""

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label

    def render(self) -> Content:
        value = self.value
        number = NA if value is None else f"{value:.0f}%"
        fraction = None if value is None else value / 100.0
        history_width = self.size.width - 11 - BAR_WIDTH - 2
        return Content.assemble(
            (f"{self.label:<5}", "$text-muted"),
            f"{number:>5} ",
            (bar(fraction, BAR_WIDTH), "$primary on $boost"),
            "  ",
            (history_cells(self.history, history_width), "$accent"),
        )
