"""Screen 5: balance, stake, reputation, ledger entries with reasons, rejected work.

The wallet (amounts in integer base units) comes from the snapshot when the node keeps one
there, else from the node's ``wallet`` command (the coordinator's ledger), asked while the
screen shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from core.api.commands import GetWallet
from core.api.network import LedgerEntry, RejectedWork, Wallet
from core.api.views import NodeSnapshot
from tui.console.host import NODE_ERRORS
from tui.console.screens.base import NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.console.widgets.node.summary import sparkline
from tui.format import clip_words, date_time, omnit_label, signed_omnit

NO_WALLET = "waiting for the wallet from the node"
# The ledger changes when work is credited: ask again this often while the screen shows.
WALLET_SECONDS = 10.0
# Cells a table's frame takes beside its columns: the border and the scrollbar.
TABLE_FRAME = 4
MIN_REASON = 16


def reason_width(total: int, other_columns: Sequence[Sequence[str]]) -> int:
    """Cells left for the reason column of a table ``total`` wide, beside columns holding
    ``other_columns`` (each column's header and cells; a cell's padding is one each side)."""
    used = sum(max(map(len, column), default=0) + 2 for column in other_columns)
    return max(MIN_REASON, total - TABLE_FRAME - used - 2)


def wallet_summary(wallet: Wallet) -> Content:
    """Balance, stake, reputation and today's earnings on one line; what is available too
    when some of the balance is staked (or unbonding): the balance holds the stake."""
    available: tuple[Content | str | tuple[str, str], ...] = ()
    if wallet.available != wallet.balance:
        available = ("  ·  ", ("available ", "$text-muted"), omnit_label(wallet.available))
    return Content.assemble(
        ("balance ", "$text-muted"),
        (omnit_label(wallet.balance), "bold"),
        *available,
        "  ·  ",
        ("staked ", "$text-muted"),
        omnit_label(wallet.staked),
        "  ·  ",
        ("reputation ", "$text-muted"),
        str(wallet.reputation),
        "  ·  ",
        ("today ", "$text-muted"),
        f"{signed_omnit(wallet.earned_today)} OMNIT",
    )


def earnings_history(snapshot: NodeSnapshot) -> Content:
    """Work credits per hour (24 h) and per day (7 d), from this node's receipts."""
    lines: list[Content] = []
    for label, values, unit in (
        ("per hour, 24 h", snapshot.earnings_hourly, "h"),
        ("per day, 7 d  ", snapshot.earnings_daily, "day"),
    ):
        chart = sparkline(values)
        if not chart:
            lines.append(Content.assemble((f"{label} ", "$text-muted"), "no work credited yet"))
            continue
        lines.append(
            Content.assemble(
                (f"{label} ", "$text-muted"),
                (chart, "$accent"),
                f"  peak {omnit_label(max(values), exact=False)}/{unit}"
                f" · total {omnit_label(sum(values), exact=False)}",
            )
        )
    return Content("\n").join(lines)


class WalletScreen(NodeScreen):
    """The node's account as the coordinator's ledger has it."""

    SUB_TITLE = "Wallet"
    BINDING_GROUP_TITLE = "Wallet"
    BINDINGS = [
        Binding(
            "k",
            "app.stake('stake')",
            "Stake",
            tooltip="Stake OMNIT as a security deposit (asks the amount, then confirms).",
            id="wallet-stake",
        ),
        Binding(
            "u",
            "app.stake('unstake')",
            "Unstake",
            tooltip="Unstake OMNIT (asks the amount, then confirms).",
            id="wallet-unstake",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._entries: tuple[LedgerEntry, ...] | None = None
        self._rejected: tuple[RejectedWork, ...] | None = None
        self._fetched: Wallet | None = None
        self._width = 0
        # The whole reason of each row (a narrow terminal clips it in the table).
        self._reasons: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield header()
        yield Unavailable(NO_WALLET, id="wallet-unavailable")
        with Vertical(id="wallet"):
            yield Static(id="wallet-summary", markup=False)
            yield Static(id="wallet-history", markup=False)
            entries: DataTable[str] = DataTable(id="ledger", cursor_type="row", zebra_stripes=True)
            entries.add_columns("Time", "Amount (OMNIT)", "Kind", "Reason")
            yield entries
            rejected: DataTable[str] = DataTable(id="rejected", cursor_type="row")
            rejected.add_columns("Time", "Work", "Reason")
            yield rejected
            yield Static(id="wallet-detail", markup=False)
        yield footer()

    def on_mount(self) -> None:
        self.set_interval(WALLET_SECONDS, self._fetch_if_showing)
        self.query_one("#wallet").display = False
        self.query_one("#ledger").border_title = "Ledger"
        self.query_one("#rejected").border_title = "Rejected work"
        self.query_one("#wallet-detail").display = False

    def on_screen_resume(self) -> None:
        self.fetch_wallet()

    def on_resize(self) -> None:
        if self.size.width != self._width and self.snapshot is not None:
            self._entries = self._rejected = None  # clip the reasons to the new width
            self.show_snapshot(self.snapshot)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.focused:
            self._show_detail(event.data_table)

    def on_descendant_focus(self) -> None:
        if isinstance(self.focused, DataTable):
            self._show_detail(self.focused)

    def _show_detail(self, table: DataTable[str]) -> None:
        """The whole reason of the focused table's highlighted row, wrapped at words."""
        reason = ""
        if table.row_count:
            row = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            reason = self._reasons.get(f"{table.id}:{row.value}", "")
        detail = self.query_one("#wallet-detail", Static)
        set_text(detail, f"reason: {reason}" if reason else "")
        detail.display = bool(reason)

    def _fetch_if_showing(self) -> None:
        if self.is_current:
            self.fetch_wallet()

    @work(exclusive=True, group="wallet", exit_on_error=False, description="Wallet")
    async def fetch_wallet(self) -> None:
        """Ask the node for the wallet (only when its snapshot does not carry one)."""
        if self.snapshot is not None and self.snapshot.wallet is not None:
            return
        try:
            self._fetched = await self.omni.client.command(GetWallet())
        except NODE_ERRORS as exc:
            self._fetched = None
            self.query_one(Unavailable).set_reason(str(exc))
        if self.snapshot is not None:
            self.show_snapshot(self.snapshot)

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        wallet = snapshot.wallet or self._fetched
        self.query_one(Unavailable).display = wallet is None
        self.query_one("#wallet").display = wallet is not None
        if wallet is None:
            return
        set_text(self.query_one("#wallet-summary", Static), wallet_summary(wallet))
        set_text(self.query_one("#wallet-history", Static), earnings_history(snapshot))
        entries, rejected = wallet.entries, wallet.rejected
        self._width = width = self.size.width
        if entries != self._entries:
            self._entries = entries
            table = self.query_one("#ledger", DataTable)
            table.clear()
            rows = sorted(entries, key=lambda e: e.ts, reverse=True)
            cells = [(date_time(e.ts), signed_omnit(e.amount), e.kind) for e in rows]
            columns = [("Time", "Amount (OMNIT)", "Kind"), *cells]
            room = reason_width(width, list(zip(*columns, strict=True)))
            for entry, (when, amount, kind) in zip(rows, cells, strict=True):
                self._reasons[f"ledger:{entry.id}"] = entry.reason
                table.add_row(when, amount, kind, clip_words(entry.reason, room), key=str(entry.id))
        if rejected != self._rejected:
            self._rejected = rejected
            table = self.query_one("#rejected", DataTable)
            table.clear()
            items = sorted(rejected, key=lambda e: e.ts, reverse=True)
            shown = [("Time", "Work"), *((date_time(i.ts), i.work_id) for i in items)]
            room = reason_width(width, list(zip(*shown, strict=True)))
            for n, item in enumerate(items):
                self._reasons[f"rejected:{n}"] = item.reason
                table.add_row(
                    date_time(item.ts), item.work_id, clip_words(item.reason, room), key=str(n)
                )
            table.display = bool(rejected)
        if isinstance(self.focused, DataTable):
            self._show_detail(self.focused)
