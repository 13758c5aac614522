"""What the console's app does beside showing the node: a cap on notifications, screenshot
and worker failures said in words, the stake dialogs and the command palette's entries.

``OmniTensorApp`` (``tui.console.app``) builds on it and supplies the node's state and its
commands (``snapshot``, ``run_command``, ``action_show``, ``action_bench``...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual import events, on
from textual.app import App, SystemCommand
from textual.notifications import Notify
from textual.reactive import var
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from core.api.commands import Request, Stake, Unstake
from core.api.views import NodeSnapshot
from tui.console.keys import SCREENS
from tui.console.screens.dialogs import AmountScreen, ConfirmScreen
from tui.format import omnit_label

MAX_NOTIFICATIONS = 3
"""Toasts shown at once: a new one pushes out the oldest (a burst must not cover the screen)."""


class ConsoleBase(App[int]):
    snapshot: var[NodeSnapshot | None] = var(None, init=False)
    """The node's latest state (the last snapshot with later telemetry merged in)."""

    # Supplied by the console app.
    def run_command(self, request: Request[Any], label: str) -> None:
        raise NotImplementedError

    async def action_show(self, mode: str) -> None:
        raise NotImplementedError

    def action_bench(self) -> None:
        raise NotImplementedError

    def action_help(self) -> None:
        raise NotImplementedError

    def request_refresh(self) -> None:
        raise NotImplementedError

    def bench_help(self) -> str:
        raise NotImplementedError

    # -- notifications and failures ---------------------------------------------------------

    def _on_notify(self, event: Notify) -> None:
        """Keep at most ``MAX_NOTIFICATIONS`` toasts: the oldest go first."""
        shown = list(self._notifications)
        for old in shown[: max(0, len(shown) + 1 - MAX_NOTIFICATIONS)]:
            self._unnotify(old, refresh=False)
        super()._on_notify(event)

    def deliver_screenshot(
        self,
        filename: str | None = None,
        path: str | None = None,
        time_format: str | None = None,
    ) -> str | None:
        """Textual's screenshot, saying why when it cannot be taken (not just "failed")."""
        try:
            return super().deliver_screenshot(filename, path, time_format)
        except Exception as exc:  # any reason is shown, never a crash
            self._screenshot_failed(exc)
            return None

    @on(events.DeliveryFailed)
    def _delivery_failed(self, event: events.DeliveryFailed) -> None:
        if event.name == "screenshot":
            event.prevent_default()  # Textual's own handler says only "Failed to save"
            self._screenshot_failed(event.exception)

    def _screenshot_failed(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        self.notify(
            f"Failed to save screenshot: {reason}",
            title="Screenshot",
            severity="error",
            markup=False,
            timeout=10,
        )

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """Every worker's unexpected failure, in one place: say it, keep the console up."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(
                f"{type(error).__name__}: {error}",
                title=f"{event.worker.description or event.worker.name} failed",
                severity="error",
                timeout=10,
            )

    # -- stake ----------------------------------------------------------------------------

    def action_stake(self, verb: str = "stake") -> None:
        """Ask an amount of OMNIT, confirm it, then stake (or unstake) it."""
        staking = verb == "stake"
        wallet = self.snapshot.wallet if self.snapshot is not None else None
        have = ""
        if wallet is not None:
            # What can be staked is what is available: the balance holds the stake too.
            amount = wallet.available if staking else wallet.staked
            have = f" ({'available' if staking else 'staked'} {omnit_label(amount)})"
        prompt = (
            f"How much to stake as a security deposit{have}?"
            if staking
            else f"How much to unstake{have}? It is released after the unbonding period."
        )

        def confirm(amount: int | None) -> None:
            if amount is None:
                return
            label = omnit_label(amount)
            question = f"{'Stake' if staking else 'Unstake'} {label}?"
            self.push_screen(
                ConfirmScreen(question, title=verb.capitalize()),
                lambda yes: self._stake(staking, amount) if yes else None,
            )

        self.push_screen(AmountScreen(verb.capitalize(), prompt), confirm)

    def _stake(self, staking: bool, amount: int) -> None:
        request = Stake(amount=amount) if staking else Unstake(amount=amount)
        self.run_command(request, f"{request.name} {omnit_label(amount)}")

    # -- the command palette ----------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's commands and the console's, each title once (the console's ``Keys``,
        the list of every binding, replaces Textual's keys panel)."""
        own = list(self._console_commands())
        titles = {command.title for command in own}
        yield from (c for c in super().get_system_commands(screen) if c.title not in titles)
        yield from own

    def _console_commands(self) -> Iterable[SystemCommand]:
        for mode, title, key in SCREENS:
            yield SystemCommand(
                f"Show {title}", f"Switch to the {title} screen (key {key})", self._shower(mode)
            )
        yield SystemCommand(
            "Run quick benchmark", f"{self.bench_help()} (key b)", self.action_bench
        )
        yield SystemCommand(
            "Stake OMNIT",
            "Stake an amount as a security deposit (Wallet screen: key k)",
            lambda: self.action_stake("stake"),
        )
        yield SystemCommand(
            "Unstake OMNIT",
            "Release an amount of the stake (Wallet screen: key u)",
            lambda: self.action_stake("unstake"),
        )
        yield SystemCommand("Refresh", "Fetch the node's state now", self.request_refresh)
        yield SystemCommand("Keys", "List every key binding (key ?)", self.action_help)

    def _shower(self, mode: str) -> Any:
        async def show() -> None:
            await self.action_show(mode)

        return show
