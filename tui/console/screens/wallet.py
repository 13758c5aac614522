"""Screen 5: balance, stake, reputation, ledger entries with reasons, rejected work.

A wallet is ``{"balance", "staked", "reputation", "earned_today", "entries": [{"id", "ts",
"amount", "kind", "reason"}], "rejected": [{"work_id", "ts", "reason"}]}``, amounts in integer
base units. It comes from ``snapshot["wallet"]`` when the node keeps one there, else from the
node's ``wallet`` command (the coordinator's ledger), asked while the screen shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from tui.console.host import NODE_ERRORS
from tui.console.screens.base import JSON, NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.format import date_time, na, omnit_text, signed_omnit

NO_WALLET = "waiting for the wallet from the node"
# The ledger changes when work is credited: ask again this often while the screen shows.
WALLET_SECONDS = 10.0


def wallet_summary(wallet: Mapping[str, Any]) -> Content:
    """Balance, stake, reputation and today's earnings on one line."""
    today = wallet.get("earned_today")
    return Content.assemble(
        ("balance ", "$text-muted"),
        (omnit_text(wallet.get("balance")), "bold"),
        "  ·  ",
        ("staked ", "$text-muted"),
        omnit_text(wallet.get("staked")),
        "  ·  ",
        ("reputation ", "$text-muted"),
        na(wallet.get("reputation")),
        "  ·  ",
        ("today ", "$text-muted"),
        f"{signed_omnit(today)} OMNIT" if isinstance(today, int) else "n/a",
    )


class WalletScreen(NodeScreen):
    """The node's account as the coordinator's ledger has it."""

    SUB_TITLE = "Wallet"

    def __init__(self) -> None:
        super().__init__()
        self._entries: Any = None
        self._rejected: Any = None
        self._fetched: JSON | None = None

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
        if self.snapshot is not None and self.snapshot.get("wallet") is not None:
            return
        try:
            self._fetched = await self.omni.client.command("wallet")
        except NODE_ERRORS as exc:
            self._fetched = None
            self.query_one(Unavailable).set_reason(str(exc))
        if self.snapshot is not None:
            self.show_snapshot(self.snapshot)

    def show_snapshot(self, snapshot: JSON) -> None:
        wallet = snapshot.get("wallet") or self._fetched
        self.query_one(Unavailable).display = wallet is None
        self.query_one("#wallet").display = wallet is not None
        if wallet is None:
            return
        set_text(self.query_one("#wallet-summary", Static), wallet_summary(wallet))
        entries, rejected = wallet.get("entries") or [], wallet.get("rejected") or []
        if entries != self._entries:
            self._entries = entries
            table = self.query_one("#ledger", DataTable)
            table.clear()
            for entry in sorted(entries, key=lambda e: e.get("ts") or 0, reverse=True):
                amount = entry.get("amount")
                table.add_row(
                    date_time(entry.get("ts")),
                    signed_omnit(amount) if isinstance(amount, int) else "n/a",
                    str(entry.get("kind", "")),
                    str(entry.get("reason", "")),
                    key=str(entry.get("id")) if entry.get("id") is not None else None,
                )
        if rejected != self._rejected:
            self._rejected = rejected
            table = self.query_one("#rejected", DataTable)
            table.clear()
            for item in sorted(rejected, key=lambda e: e.get("ts") or 0, reverse=True):
                table.add_row(
                    date_time(item.get("ts")),
                    str(item.get("work_id", "")),
                    str(item.get("reason", "")),
                )
            table.display = bool(rejected)
