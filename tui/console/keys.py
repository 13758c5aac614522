"""The console's top-level screens and keys: the footer's bindings and the help they make.

Each screen has a digit; the footer names them when the terminal is wide and shows the
digits as one group when it is narrow (the app's ``check_action`` picks which).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual.binding import Binding, BindingType

from tui.console.screens.help import HelpSection, describe
from tui.console.widgets.leaderboard.table import LeaderboardTable

# (mode, title, key): the top-level screens, in footer order.
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "Dashboard", "1"),
    ("quests", "Quests", "2"),
    ("season", "Season", "3"),
    ("leaderboards", "Leaderboards", "4"),
    ("wallet", "Wallet", "5"),
    ("log", "Log", "6"),
    ("data", "Data", "7"),
    ("governance", "Governance", "8"),
)
# The footer's short names for the screens.
FOOTER_NAMES = {"dashboard": "Dash", "leaderboards": "Boards", "governance": "Gov"}
# Below this width the footer shows the digits as one group ("1234567 Screens") so the other
# keys (help, quit, the screen's own) stay visible; the header names the current screen.
NAMED_SCREEN_KEYS_WIDTH = 100
SCREEN_KEYS = Binding.Group("Screens", compact=True)

APP_BINDINGS: list[BindingType] = [
    *(
        Binding(
            key,
            f"show('{mode}')",
            FOOTER_NAMES.get(mode, title),
            tooltip=f"Show the {title} screen.",
            id=f"show-{mode}",
        )
        for mode, title, key in SCREENS
    ),
    # The same keys again, grouped, for narrow terminals (see the app's check_action).
    *(
        Binding(
            key,
            f"screen('{mode}')",
            title,
            tooltip=f"Show the {title} screen.",
            group=SCREEN_KEYS,
        )
        for mode, title, key in SCREENS
    ),
    Binding("b", "bench", "Bench", tooltip="Run the quick benchmark now.", id="bench"),
    Binding("question_mark", "help", "Help", tooltip="List every key.", id="help"),
    Binding("q", "quit", "Quit", tooltip="Leave the console.", priority=True, id="quit"),
]


def help_sections(app_bindings: list[BindingType], modes: Mapping[str, Any]) -> list[HelpSection]:
    """Every binding, grouped by where it works: everywhere, then each screen's own."""
    sections: list[HelpSection] = [
        (
            "Everywhere",
            [
                *describe(b for b in app_bindings if getattr(b, "group", None) is None),
                ("^p", "Command palette"),
                ("^q", "Quit"),
            ],
        )
    ]
    for mode, title, _key in SCREENS:
        # The screen's own bindings, not those it inherits.
        rows = describe(vars(modes[mode]).get("BINDINGS", []))
        if mode == "leaderboards":
            rows += describe(LeaderboardTable.BINDINGS)
        if rows:
            sections.append((title, rows))
    return sections
