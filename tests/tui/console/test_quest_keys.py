"""Quests by keys without guessing, on the replayed coordinator: the detail names the next
key, keys that do not apply are hidden, the list keeps its order and the cursor its quest,
accepting asks first when the window shrinks; stake and unstake by dialog; the palette."""

from __future__ import annotations

import copy
import re
from typing import Any

from textual.widgets import DataTable, Input

from core.api.commands import AcceptQuest, ClaimQuest, GetLog, Stake
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tests.tui.console.conftest import (
    Messages,
    ReplayedCoordinator,
    screen_text,
    settle,
    wait_for_commands,
)
from tests.tui.console.test_network_screens import named, recorded_quests, select_quest
from tui.console.app import OmniTensorApp, make_app
from tui.console.messages import CommandFinished, SnapshotFetched
from tui.console.screens.dialogs import AmountScreen, ConfirmScreen
from tui.console.screens.quests import QuestsScreen
from tui.console.widgets.quests.model import number, percent
from tui.format import omnit_label

OMNIT = 10**9


def detail(app: OmniTensorApp) -> str:
    return str(app.screen.query_one("#quest-detail").render())


def keys_shown(screen: QuestsScreen) -> set[str]:
    """The quest verbs whose keys the footer shows now."""
    return {v for v in ("accept", "start", "claim") if screen.check_action("quest", (v,))}


def test_small_progress_has_digits() -> None:
    assert percent(0.000894114 / 0.4) == "0.22%"
    assert percent(0.0) == "0%" and percent(1.0) == "100%"
    assert percent(0.999) == "99%" and percent(0.075) == "7.5%"
    assert number(0.000894114) == "0.000894" and number(0.4) == "0.4" and number(12.0) == "12"
    assert "e" not in number(1.8e-5)


async def test_quest_by_keys_from_offer_to_claim(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    quests = recorded_quests(replay)
    sprint, weekly, bench = (
        quests["compute-sprint"],
        quests["weekly-compute"],
        quests["benchmark-suite"],
    )
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QuestsScreen)
        # The same numbers in the list and the detail.
        await select_quest(pilot, app, sprint["id"])
        done = f"{number(sprint['progress']['current'])}/{number(sprint['progress']['target'])}"
        share = percent(sprint["progress"]["current"] / sprint["progress"]["target"])
        line = next(ln for ln in screen_text(app).splitlines() if "Compute sprint" in ln)
        assert done in line and share in line and share != "0%"
        assert f"{done} TFLOP-hours ({share})" in detail(app)
        # In progress, no action: nothing to press, and no key pretends otherwise.
        assert "next: progresses by verified work" in detail(app)
        assert keys_shown(screen) == set()

        await select_quest(pilot, app, weekly["id"])
        assert "next: a accept" in detail(app) and keys_shown(screen) == {"accept"}
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for_commands(app)
        accepted = await messages.wait(CommandFinished, named("quest.accept"))
        assert accepted.ok and accepted.request == AcceptQuest(id=weekly["id"])

        await select_quest(pilot, app, bench["id"])
        assert "next: c claim" in detail(app) and keys_shown(screen) == {"claim"}
        await pilot.press("s")  # hidden: does nothing
        await pilot.press("c")
        await wait_for_commands(app)
        claimed = await messages.wait(CommandFinished, named("quest.claim"))
        assert claimed.ok and claimed.request == ClaimQuest(id=bench["id"])

        # An accepted quest with an action: s starts it.
        opened = copy.deepcopy(replay.result("quests"))
        for quest in opened["quests"]:
            if quest["id"] == bench["id"]:
                quest["state"] = "accepted"
        replay.overrides["quests"] = lambda _params: copy.deepcopy(opened)
        networked_node.link.game.refresh_soon()  # type: ignore[union-attr]
        await settle(pilot, lambda: "next: s start bench" in detail(app))
        assert keys_shown(screen) == {"start"}
        # Each action is in the node's log.
        log = await LocalNodeClient(networked_node).command(GetLog(limit=50))
        lines = [e.message for e in log.events if e.kind == "game"]
        assert "accepted Weekly compute" in lines
        assert any(m.startswith("claimed Benchmark suite") for m in lines)
    sent = [(m, p) for m, p in replay.calls if m.startswith("quest.")]
    assert sent == [("quest.accept", {"id": weekly["id"]}), ("quest.claim", {"id": bench["id"]})]


async def test_order_and_cursor_hold_when_a_quest_completes(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    sprint = recorded_quests(replay)["compute-sprint"]
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.query_one("#quests", DataTable)
        await select_quest(pilot, app, sprint["id"])
        before = [str(key.value) for key in table.rows]
        done = copy.deepcopy(replay.result("quests"))
        for quest in done["quests"]:
            if quest["id"] == sprint["id"]:
                quest["state"] = "completed"
                quest["progress"]["current"] = quest["progress"]["target"]
        replay.overrides["quests"] = lambda _params: copy.deepcopy(done)
        networked_node.link.game.refresh_soon()  # type: ignore[union-attr]
        await settle(pilot, lambda: "next: c claim" in detail(app))
        assert [str(key.value) for key in table.rows] == before
        screen = app.screen
        assert isinstance(screen, QuestsScreen) and screen.selected is not None
        assert screen.selected.id == sprint["id"]


async def test_accepting_asks_when_the_window_shrinks(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    weekly = recorded_quests(replay)["weekly-compute"]
    assert weekly["duration_s"] == 72 * 3600  # the offer closes in days (the week's end)
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2")
        await pilot.pause()
        await select_quest(pilot, app, weekly["id"])
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert dialog.question.startswith("Accepting starts its 72 h window: it ends at ")
        # The days left depend on when in the week the answers were recorded.
        assert re.search(r", not in [2-7]d( \d+h)?\. Accept\?$", dialog.question), dialog.question
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, QuestsScreen))
        await pilot.pause()
        assert not [m for m, _p in replay.calls if m == "quest.accept"]


async def test_stake_by_dialog_from_the_wallet(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("5")
        await settle(pilot, lambda: "balance " in screen_text(app))
        await pilot.press("k")
        await settle(pilot, lambda: isinstance(app.screen, AmountScreen))
        # What can be staked: the available OMNIT, not the balance that holds the stake too.
        wallet = replay.result("wallet")
        assert wallet["available"] == wallet["balance"] - wallet["staked"]
        dialog = app.screen
        assert isinstance(dialog, AmountScreen)
        assert f"(available {omnit_label(wallet['available'])})" in dialog.prompt, dialog.prompt
        app.screen.query_one(Input).value = "ten"
        await pilot.press("enter")
        await settle(pilot, lambda: "is not an amount of OMNIT" in screen_text(app))
        app.screen.query_one(Input).value = "10"
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Stake 10 OMNIT?" in screen_text(app)
        await pilot.press("y")
        await wait_for_commands(app)
        staked = await messages.wait(CommandFinished, named("stake"))
        assert staked.ok and staked.request == Stake(amount=10 * OMNIT)
        assert staked.summary().startswith("staked 100 OMNIT · available ")
    assert ("stake", {"amount": 10 * OMNIT}) in replay.calls


async def test_palette_entries_are_unique(networked_node: Node, messages: Messages) -> None:
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        for key in "25":
            await pilot.press(key)
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert len(titles) == len(set(titles)), titles
            assert {"Keys", "Stake OMNIT", "Unstake OMNIT"} <= set(titles)
        # From the palette: the stake dialog opens.
        unstake = next(c for c in app.get_system_commands(app.screen) if c.title == "Unstake OMNIT")
        callback: Any = unstake.callback
        callback()
        await settle(pilot, lambda: isinstance(app.screen, AmountScreen))
        await settle(pilot, lambda: "How much to unstake" in screen_text(app))
        assert "How much to unstake (staked 90 OMNIT)?" in screen_text(app)
