"""Screen 4: a tab per leaderboard, paged from the node, the node's own row one key away."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import TabbedContent, TabPane

from core.api.commands import GetLeaderboard
from core.api.network import LeaderboardPage
from core.api.views import NodeSnapshot
from tui.console.screens.base import NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.leaderboard.table import LeaderboardTable, PageFetcher
from tui.console.widgets.leaderboard.view import LeaderboardView

# (category, tab title); the monthly board is the data validators' "of the month".
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("gpu-contributors", "GPU contributors"),
    ("data-validators", "Data validators"),
    ("model-testers", "Model testers"),
    ("data-validators-monthly", "Validators of the month"),
)
# Boards are live: the visible page is fetched again this often while the screen shows.
RELOAD_SECONDS = 15.0


class LeaderboardsScreen(NodeScreen):
    """The network's leaderboards, one tab per category."""

    SUB_TITLE = "Leaderboards"
    BINDINGS = [
        Binding("m", "jump_to_me", "My rank", tooltip="Jump to this node's row.", id="jump-to-me"),
        Binding("r", "reload", "Reload", tooltip="Fetch the visible rows again.", id="reload"),
        Binding("left", "board(-1)", "Previous board", show=False, id="previous-board"),
        Binding("right", "board(1)", "Next board", show=False, id="next-board"),
    ]

    def compose(self) -> ComposeResult:
        yield header()
        own_id = self._own_node_id()
        with TabbedContent(id="boards"):
            for category, title in CATEGORIES:
                with TabPane(title, id=f"tab-{category}"):
                    yield LeaderboardView(
                        category, self._fetcher(category), own_node_id=own_id, id=category
                    )
        yield footer()

    def on_mount(self) -> None:
        self.set_interval(RELOAD_SECONDS, self._reload_if_showing)

    def _own_node_id(self) -> str | None:
        return self.snapshot.node.id if self.snapshot is not None else None

    def _fetcher(self, category: str) -> PageFetcher:
        async def fetch(offset: int, limit: int) -> LeaderboardPage:
            return await self.omni.client.command(
                GetLeaderboard(category=category, offset=offset, limit=limit)
            )

        return fetch

    @property
    def active_view(self) -> LeaderboardView:
        """The board on the active tab."""
        tabs = self.query_one(TabbedContent)
        pane = tabs.get_pane(tabs.active)
        return pane.query_one(LeaderboardView)

    def action_jump_to_me(self) -> None:
        view = self.active_view
        if not view.table.jump_to_own():
            title = dict(CATEGORIES).get(view.category, view.category)
            self.notify(f"This node is not ranked on {title} yet.", timeout=3)
            return
        view.table.focus()

    def action_board(self, step: int) -> None:
        """Show the previous or next board."""
        tabs = self.query_one(TabbedContent)
        ids = [f"tab-{category}" for category, _title in CATEGORIES]
        tabs.active = ids[(ids.index(tabs.active) + step) % len(ids)]

    def action_reload(self) -> None:
        self.active_view.table.reload()

    def on_screen_resume(self) -> None:
        # Coming back to the screen shows the board as it is now, not as it was.
        self._reload_active()

    def on_tabbed_content_tab_activated(self) -> None:
        self._reload_active()

    def _reload_active(self) -> None:
        tables = self.active_view.query(LeaderboardTable)
        if tables:  # not before the tab's contents are mounted
            tables.first().reload()

    def _reload_if_showing(self) -> None:
        if self.is_current:
            self.active_view.table.reload()

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        own_id = self._own_node_id()
        for view in self.query(LeaderboardView):
            view.table.own_node_id = own_id
