"""A leaderboard of any length, fetched a page at a time as rows scroll into view.

The node answers ``leaderboard`` with one page (``offset``, ``limit``) plus the board's
``total`` and the node's ``own_rank``. The table sizes its virtual height from ``total`` and
renders only the visible lines (Textual's line API), asking for the pages they fall in and
keeping a bounded number in an LRU cache, so a 100,000-entry board costs what the window
shows, not what the board holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.api.network import BoardEntry, LeaderboardPage
from core.errors import OmniError
from tui.format import omnit_amount

PageFetcher = Callable[[int, int], Awaitable[LeaderboardPage]]

RANK_WIDTH = 9
ID_WIDTH = 12
AMOUNT_WIDTH = 19  # "1,000,000,000 OMNIT": the whole supply fits


def row_text(rank: int, name: str, node_id: str, amount: str, width: int, *, own: bool) -> str:
    """One row laid out in ``width`` cells: rank, marker, name, short id, amount."""
    name_width = max(4, width - RANK_WIDTH - ID_WIDTH - AMOUNT_WIDTH - 7)
    marker = "▶" if own else " "
    text = (
        f"{rank:>{RANK_WIDTH},} {marker} {name:<{name_width}.{name_width}}  "
        f"{node_id[:ID_WIDTH]:<{ID_WIDTH}}  {amount:>{AMOUNT_WIDTH}}"
    )
    return text[:width].ljust(width)


def header_text(width: int) -> str:
    """Column titles matching ``row_text``."""
    name_width = max(4, width - RANK_WIDTH - ID_WIDTH - AMOUNT_WIDTH - 7)
    text = (
        f"{'Rank':>{RANK_WIDTH}}   {'Name':<{name_width}}  {'Node':<{ID_WIDTH}}  "
        f"{'Amount (OMNIT)':>{AMOUNT_WIDTH}}"
    )
    return text[:width].ljust(width)


class LeaderboardTable(ScrollView, can_focus=True, inherit_bindings=False):
    """One category's board; ``jump_to_own()`` brings the node's row into view.

    Bindings are its own only (``inherit_bindings=False``): left and right go on to the
    screen, which uses them to switch boards.
    """

    DEFAULT_CSS = """
    LeaderboardTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: scroll;
        & > .leaderboard--own { background: $accent 30%; text-style: bold; }
        & > .leaderboard--cursor { background: $surface-lighten-1; }
        &:focus > .leaderboard--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
        & > .leaderboard--loading { color: $text-muted; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "leaderboard--own",
        "leaderboard--cursor",
        "leaderboard--loading",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown,space", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "Top", show=False),
        Binding("end,G", "last", "Bottom", show=False),
    ]

    @dataclass
    class Loaded(Message):
        """A page arrived: the board's size, season and the node's rank."""

        table: LeaderboardTable
        total: int
        own_rank: int | None
        season: str | None

        @property
        def control(self) -> LeaderboardTable:
            return self.table

    @dataclass
    class Failed(Message):
        """A page could not be fetched; ``error`` is the node's one-line reason."""

        table: LeaderboardTable
        error: str

        @property
        def control(self) -> LeaderboardTable:
            return self.table

    cursor: var[int] = var(0, init=False)
    """The highlighted row (0 is rank 1)."""

    def __init__(
        self,
        fetch: PageFetcher,
        *,
        own_node_id: str | None = None,
        page_size: int = 100,
        max_pages: int = 32,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._fetch = fetch
        self.own_node_id = own_node_id
        self.page_size = page_size
        self.total = 0
        self.own_rank: int | None = None
        self.season: str | None = None
        self.fetched_rows = 0
        """Rows received since mount: tests check the table reads only what it shows."""
        # page -> (generation, entries); a page from an older generation is shown until
        # its reload arrives, so a live refresh never blanks the screen.
        self._pages: LRUCache[int, tuple[int, tuple[BoardEntry, ...]]] = LRUCache(max_pages)
        self._generation = 0
        self._loading: set[int] = set()
        self._wanted: set[int] = set()

    # -- data ------------------------------------------------------------------------------

    def on_show(self) -> None:
        # The first page is fetched when the board is first shown (a hidden tab asks nothing).
        if not self.total and not self._loading:
            self._want(0)

    def reload(self) -> None:
        """Fetch the visible pages again (the board is live); keep showing the old rows."""
        self._generation += 1
        first_page = self.scroll_offset.y // self.page_size
        last_page = (self.scroll_offset.y + max(1, self.size.height)) // self.page_size
        for page in range(first_page, last_page + 1):
            self._want(page)

    def _entry(self, row: int) -> BoardEntry | None:
        page, index = divmod(row, self.page_size)
        cached = self._pages.get(page)
        if cached is None or cached[0] != self._generation:
            self._want(page)
        if cached is None or index >= len(cached[1]):
            return None
        return cached[1][index]

    def _want(self, page: int) -> None:
        if page in self._loading or page in self._wanted:
            return
        if not self._wanted:
            # Rendering asks line by line: gather the pages and fetch once it is done.
            self.call_after_refresh(self._fetch_wanted)
        self._wanted.add(page)

    def _fetch_wanted(self) -> None:
        wanted, self._wanted = self._wanted, set()
        top = self.scroll_offset.y
        window = range(top // self.page_size, (top + self.size.height) // self.page_size + 1)
        for page in wanted:
            # Pages scrolled past while the user held PageDown are not worth fetching.
            if page in window or (page == 0 and not self.total):
                self._loading.add(page)
                self._load_page(page, self._generation)

    @work(group="leaderboard-pages", exit_on_error=False)
    async def _load_page(self, page: int, generation: int) -> None:
        try:
            result = await self._fetch(page * self.page_size, self.page_size)
        except OmniError as exc:  # a refusal or a lost node (the clients raise no OSError)
            self.post_message(self.Failed(self, str(exc)))
            return
        finally:
            self._loading.discard(page)
        entries, total = result.entries, result.total
        self.fetched_rows += len(entries)
        # Textual's LRUCache.set keeps an existing key's old value: drop it first.
        self._pages.discard(page)
        self._pages.set(page, (generation, entries))
        own = result.own_rank
        # A rank on an empty board is no rank (the coordinator may answer 1 there).
        self.own_rank = own if own is not None and 0 < own <= total else None
        self.season = result.season
        if total != self.total:
            self.total = total
            self.virtual_size = Size(self.size.width, total)
            self.cursor = min(self.cursor, max(0, total - 1))
        self.refresh()
        self.post_message(self.Loaded(self, total, self.own_rank, self.season))

    # -- rendering -------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        # The scrollbar takes the last columns: lay the row out in what is left.
        width = self.scrollable_content_region.width
        row = self.scroll_offset.y + y
        style: Style = self.rich_style
        if row >= self.total:
            return Strip.blank(width, style)
        entry = self._entry(row)
        rank = row + 1
        own = rank == self.own_rank
        if entry is None:
            # Not fetched yet: the rank is known, the rest arrives with its page.
            text = row_text(rank, "…", "", "", width, own=own)
            style += self.get_component_rich_style("leaderboard--loading")
        else:
            own = own or entry.node_id == self.own_node_id
            text = row_text(
                entry.rank or rank,
                entry.name,
                entry.node_id,
                omnit_amount(entry.amount),
                width,
                own=own,
            )
        if own:
            style += self.get_component_rich_style("leaderboard--own")
        if row == self.cursor:
            style += self.get_component_rich_style("leaderboard--cursor")
        return Strip([Segment(text, style)], width)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.total)

    # -- cursor ----------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh_line(old)
        self.refresh_line(new)

    def move_cursor(self, row: int, *, center: bool = False) -> None:
        """Put the cursor on ``row`` (0-based), scrolling it into view."""
        if self.total == 0:
            return
        row = max(0, min(self.total - 1, row))
        self.cursor = row
        height = max(1, self.size.height)
        top = self.scroll_offset.y
        if center:
            self.scroll_to(y=max(0, row - height // 2), animate=False, immediate=True)
        elif row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)

    def jump_to_own(self) -> bool:
        """Bring the node's own row to the middle; False when it is not on the board."""
        if self.own_rank is None:
            return False
        self.move_cursor(self.own_rank - 1, center=True)
        return True

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor + direction * max(1, self.size.height - 1))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.total - 1)
