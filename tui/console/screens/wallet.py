"""Screen 5: balance, stake, reputation, ledger entries with reasons, rejected work.

The wallet (amounts in integer base units) comes from the snapshot when the node keeps one
there, else from the node's ``wallet`` command (the coordinator's ledger), asked while the
screen shows.
"""

from __future__ import annotations

from textual import work
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
from tui.format import date_time, omnit_label, signed_omnit

NO_WALLET = "waiting for the wallet from the node"
# The ledger changes when work is credited: ask again this often while the screen shows.
WALLET_SECONDS = 10.0


def wallet_summary(wallet: Wallet) -> Content:
    """Balance, stake, reputation and today's earnings on one line."""
    return Content.assemble(
        ("balance ", "$text-muted"),
        (omnit_label(wallet.balance), "bold"),
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

    def compose(self) -> ComposeResult:
        yield header()
        yield Unavailable(NO_WALLET, id="wallet-unavailable")
        with Vertical(id="wallet"):
            yield Static(id="wallet-summary", markup=False)
            entries: DataTable[str] = DataTable(id="ledger", cursor_type="row", zebra_stripes=True)
            entries.add_columns("Time", "Amount (OMNIT)", "Kind", "Reason")
            yield entries
            rejected: DataTable[str] = DataTable(id="rejected", cursor_type="row")
            rejected.add_columns("Time", "Work", "Reason")
            yield rejected
        yield footer()

    def on_mount(self) -> None:
        self.set_interval(WALLET_SECONDS, self._fetch_if_showing)
        self.query_one("#wallet").display = False
        self.query_one("#ledger").border_title = "Ledger"
        self.query_one("#rejected").border_title = "Rejected work"

    def on_screen_resume(self) -> None:
        self.fetch_wallet()

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
        entries, rejected = wallet.entries, wallet.rejected
        if entries != self._entries:
            self._entries = entries
            table = self.query_one("#ledger", DataTable)
            table.clear()
            for entry in sorted(entries, key=lambda e: e.ts, reverse=True):
                table.add_row(
                    date_time(entry.ts),
                    signed_omnit(entry.amount),
                    entry.kind,
                    entry.reason,
                    key=str(entry.id),
                )
        if rejected != self._rejected:
            self._rejected = rejected
            table = self.query_one("#rejected", DataTable)
            table.clear()
            for item in sorted(rejected, key=lambda e: e.ts, reverse=True):
                table.add_row(date_time(item.ts), item.work_id, item.reason)
            table.display = bool(rejected)
