"""Quests, season, wallet, multiplier and leaderboards: rendered from what the real
coordinator answers, and the keys send the right commands.

``networked_node`` is a real node whose network link is answered by the coordinator's
recorded answers (``data/coordinator_answers.json``, made by ``record_network.py`` from the
real coordinator on the local network): the node asks and decodes as it does live, so these
tests see the coordinator's own shapes (fractions as text, its quest ids, ledger kinds and
reasons). ``test_quest_flow_on_the_real_core`` and ``test_screens_on_the_local_network`` run
against the live coordinator itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from core.api.commands import (
    COMMANDS,
    AcceptQuest,
    ClaimQuest,
    GetQuests,
    QuestStarted,
    StartQuest,
    convert_result,
)
from core.errors import CommandError
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tests.tui.console.conftest import (
    NODE_NAME,
    REPLAY_BROKER,
    Messages,
    ReplayedCoordinator,
    screen_text,
    settle,
    wait_for_commands,
)
from tui.console.app import OmniTensorApp, make_app
from tui.console.messages import CommandFinished, SnapshotFetched
from tui.console.screens.dialogs import ConfirmScreen
from tui.console.screens.leaderboards import LeaderboardsScreen
from tui.console.screens.quests import QuestsScreen
from tui.console.widgets.leaderboard.view import LeaderboardView
from tui.console.widgets.quests.model import number
from tui.format import omnit_amount, signed_omnit

OMNIT = 10**9


def named(command: str) -> Callable[[CommandFinished], bool]:
    """A test for ``messages.wait``: the ``CommandFinished`` of ``command``."""
    return lambda message: message.name == command


def recorded_quests(replay: ReplayedCoordinator) -> dict[str, dict[str, Any]]:
    """The recorded quests by definition id (``compute-sprint``, ``benchmark-suite``...)."""
    return {q["id"].split(":")[0]: q for q in replay.result("quests")["quests"]}


async def select_quest(pilot: Any, app: OmniTensorApp, quest_id: str) -> None:
    table = app.screen.query_one("#quests", DataTable)
    table.move_cursor(row=table.get_row_index(quest_id))
    await pilot.pause()


async def test_dashboard_network_lines(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    events = replay.result("events")
    assert events["factor"] == "2" and events["upcoming"][0]["factor"] == "3/2"  # text
    earned = replay.result("wallet")["earned_today"]
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.pause()
        text = screen_text(app)
        assert f"connected to {REPLAY_BROKER}" in text
        assert "x2 rewards" in text and "Network expansion until" in text
        assert "(5h 00m left)" in text or "(4h 59m left)" in text
        assert f"today +{omnit_amount(earned, exact=True)} OMNIT" in text
        assert "upcoming x1.5 Stress test" in text
        assert "x? " not in text


async def test_link_states(networked_node: Node, messages: Messages) -> None:
    link = networked_node.link
    assert link is not None
    link.mode = "local"
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await settle(pilot, lambda: "local network" in screen_text(app))
        link.mode, link.state, link.since_ts = "remote", "offline", 0.0
        app.request_refresh()
        await settle(pilot, lambda: "offline since" in screen_text(app))


async def test_quests_keys_send_commands(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    quests = recorded_quests(replay)
    sprint, weekly, bench = (
        quests["compute-sprint"],
        quests["weekly-compute"],
        quests["benchmark-suite"],
    )
    assert (sprint["state"], weekly["state"], bench["state"]) == (
        "in_progress",
        "offered",
        "completed",
    )
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        # Active first, then offered, then completed; progress and rewards as sent.
        assert text.index("Compute sprint") < text.index("Weekly compute")
        assert text.index("Weekly compute") < text.index("Benchmark suite")
        # The count, not the coordinator's rounded text ("0 of 0.4"): the same in the detail.
        progress = sprint["progress"]
        assert f"{number(progress['current'])}/{number(progress['target'])}" in text
        assert sprint["progress_text"] not in text and sprint["reward_text"] in text
        await select_quest(pilot, app, weekly["id"])
        await pilot.press("a")
        # Its 72 h window ends before the offer closes: the console asks first.
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for_commands(app)
        accepted = await messages.wait(CommandFinished, named("quest.accept"))
        assert accepted.request == AcceptQuest(id=weekly["id"]) and accepted.ok
        # Claiming a quest still in progress: the key is not offered, nothing is sent.
        await select_quest(pilot, app, sprint["id"])
        await pilot.press("c")
        await pilot.pause()
        await select_quest(pilot, app, bench["id"])
        await pilot.press("c")
        await wait_for_commands(app)
        claimed = await messages.wait(CommandFinished, lambda m: m.name == "quest.claim" and m.ok)
        await pilot.pause()
        notes = [str(n.message) for n in app._notifications]
        assert "accepted Weekly compute" in notes
        assert claimed.request == ClaimQuest(id=bench["id"])
        assert any(n.startswith("claimed Benchmark suite") for n in notes)
    sent = [(m, p) for m, p in replay.calls if m.startswith("quest.")]
    assert sent == [
        ("quest.accept", {"id": weekly["id"]}),
        ("quest.claim", {"id": bench["id"]}),
    ]


async def test_quest_start_is_the_nodes_own_action(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    # quest.start is the node's own handler: a completed benchmark quest is to be claimed, a
    # quest that progresses by work has nothing to start (the coordinator is not asked for a
    # unit). The console offers s for neither (the quest keys' tests), the CLI can send it.
    quests = recorded_quests(replay)
    bench, sprint = quests["benchmark-suite"], quests["compute-sprint"]
    client = LocalNodeClient(networked_node)
    started = await client.command(StartQuest(id=bench["id"]))
    assert started == QuestStarted(message="Benchmark suite is already complete: claim it")
    with pytest.raises(CommandError, match="progresses by work"):
        await client.command(StartQuest(id=sprint["id"]))
    assert ("bench.challenge", {}) not in replay.calls


async def test_season_and_wallet(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    season, wallet = replay.result("season"), replay.result("wallet")
    gpu = season["ranks"]["gpu-contributors"]
    [slash] = [e for e in wallet["entries"] if e["kind"] == "slash"]
    [rejected] = wallet["rejected"]
    reward = next(e for e in wallet["entries"] if e["kind"] == "reward")
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("3")
        await pilot.pause()
        text = screen_text(app)
        assert f"Season {season['id']}" in text and f"{season['days_left']} days left" in text
        assert "gpu-contributors" in text and gpu["rank"] == 1 and gpu["total"] == 1
        assert season["awards"][0]["name"] in text
        # A badge by the rules' name (the coordinator once sent the bare id).
        assert "First Light" in text and "first-work" not in text
        await pilot.press("5")
        await pilot.pause()
        text = screen_text(app)
        # 100 staked, slashed by a tenth when a unit failed verification.
        assert "staked 90 OMNIT" in text and wallet["staked"] == 90 * OMNIT
        assert f"balance {omnit_amount(wallet['balance'], exact=True)} OMNIT" in text
        # The balance holds the stake: what is left to spend is named too.
        assert wallet["available"] == wallet["balance"] - wallet["staked"]
        assert f"available {omnit_amount(wallet['available'], exact=True)} OMNIT" in text
        assert f"reputation {wallet['reputation']}" in text
        assert slash["amount"] == -10 * OMNIT and signed_omnit(slash["amount"]) in text
        assert "slashed 1/10 of the stake" in text
        assert signed_omnit(reward["amount"]) in text and "verified work unit" in text
        assert rejected["reason"].startswith("verification failed")
        assert rejected["reason"][:40] in text


async def test_season_and_wallet_at_80x24_cut_at_words(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    season, wallet = replay.result("season"), replay.result("wallet")
    [rejected] = wallet["rejected"]
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("3")
        await pilot.pause()
        text = screen_text(app)
        # Each award's detail whole, on a line of its own when the line is too narrow.
        for award in season["awards"][:3]:
            assert award["name"] in text and award["detail"] in text
        await pilot.press("5")
        await settle(pilot, lambda: "reason: " in screen_text(app))
        ledger = app.screen.query_one("#ledger", DataTable)
        shown = [str(ledger.get_cell_at(Coordinate(row, 3))) for row in range(ledger.row_count)]
        reasons = {e["reason"] for e in wallet["entries"]}
        for cell in shown:
            # Whole, or cut after a whole word (what is left is a prefix ending at a space).
            whole = cell.removesuffix("…")
            assert cell in reasons or any(r.startswith(whole + " ") for r in reasons), cell
        assert any(c.startswith("slashed 1/10 of the stake") for c in shown)
        assert any(c.endswith("…") for c in shown)
        # The highlighted row's whole reason, wrapped under the tables.
        newest = max(wallet["entries"], key=lambda e: e["ts"])
        detail = str(app.screen.query_one("#wallet-detail").render())
        assert detail.replace("\n", " ").startswith(f"reason: {newest['reason']}"[:60])
        await pilot.press("tab")
        await settle(pilot, lambda: rejected["reason"][-20:] in screen_text(app))


async def test_sections_missing_say_not_available(node: Node, messages: Messages) -> None:
    app = make_app(LocalNodeClient(node), ssh=False)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        for key in "235":
            await pilot.press(key)
            await pilot.pause()
            assert "not available yet:" in screen_text(app)
        await pilot.press("4")
        view = app.screen.query_one(LeaderboardView)
        await settle(pilot, lambda: "not available yet:" in screen_text(app))
        assert not view.table.display


def synthetic_board(
    replay: ReplayedCoordinator, total: int, own_rank: int, own_id: str
) -> Callable[[dict[str, Any]], Any]:
    """``leaderboard`` answers for a board of ``total`` nodes, in the recorded answer's shape
    (its keys, its entries' keys), one page at a time."""
    page = replay.result("leaderboard", category="gpu-contributors", offset=0, limit=100)
    [template] = page["entries"]

    def amount(rank: int) -> int:
        return (total - rank + 1) * 1_000 * OMNIT + 5 * 10**8

    def answer(params: dict[str, Any]) -> Any:
        offset, limit = params.get("offset", 0), params.get("limit", 10)
        entries = [
            {
                **template,
                "rank": rank,
                "node_id": own_id if rank == own_rank else sha256(b"%d" % rank).hexdigest(),
                "name": NODE_NAME if rank == own_rank else f"node-{rank}",
                "amount": amount(rank),
            }
            for rank in range(offset + 1, min(total, offset + limit) + 1)
        ]
        return {
            **page,
            "category": params.get("category", page["category"]),
            "total": total,
            "own_rank": own_rank,
            "own_amount": amount(own_rank),
            "entries": entries,
        }

    return answer


async def test_leaderboard_of_100000_nodes(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    own_rank = 73_421
    replay.overrides["leaderboard"] = synthetic_board(
        replay, 100_000, own_rank, networked_node.node_id
    )
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, LeaderboardsScreen)
        table = screen.active_view.table
        await settle(pilot, lambda: table.total == 100_000)
        text = screen_text(app)
        assert "100,000 nodes" in text and "your rank 73,421" in text
        assert "node-1 " in text and "100,000,000.5" not in text  # whole OMNIT only
        assert "100,000,000" in text

        started = time.perf_counter()
        await pilot.press("m")
        await settle(pilot, lambda: "▶ rig-01" in screen_text(app))
        elapsed = time.perf_counter() - started
        assert table.cursor == own_rank - 1
        own_line = next(line for line in screen_text(app).splitlines() if "▶" in line)
        assert "73,421" in own_line and NODE_NAME in own_line
        assert elapsed < 2.0, f"jumping to the own row took {elapsed:.2f}s"

        await pilot.press("end")
        await settle(pilot, lambda: "node-100000" in screen_text(app))
        # Only the pages shown were fetched: a few hundred rows, not a hundred thousand.
        assert table.fetched_rows <= 600
        pages = [p.get("offset") for m, p in replay.calls if m == "leaderboard"]
        assert len(pages) <= 6 and 73_400 in pages

        # The other tabs fetch when shown.
        await pilot.press("right")
        await settle(pilot, lambda: screen.active_view.category == "data-validators")
        await settle(pilot, lambda: screen.active_view.table.total == 100_000)
        calls = [p for m, p in replay.calls if m == "leaderboard"]
        assert len(calls) <= 8, calls


async def test_leaderboards_from_the_recorded_boards(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    board = replay.result("leaderboard", category="gpu-contributors", offset=0, limit=100)
    [own] = board["entries"]
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("4")
        view = app.screen.query_one(LeaderboardView)
        await settle(pilot, lambda: view.table.total == board["total"] == 1)
        await settle(pilot, lambda: "your rank 1" in screen_text(app))
        line = next(line for line in screen_text(app).splitlines() if NODE_NAME in line)
        assert own["node_id"] == networked_node.node_id
        assert omnit_amount(own["amount"]) in line


async def test_quest_flow_on_the_real_core(data_dir: Any, messages: Messages) -> None:
    """Accept -> start -> claim by keys against the core's own quests (local network)."""
    from core.node.fake_nvml import FakeNvml
    from core.runtime.localnet import LocalNetwork
    from tests.tui.console.conftest import node_config

    async with (
        LocalNetwork(data_dir / "net") as net,
        Node(
            net.join_config(node_config(data_dir / "node")),
            nvml=FakeNvml.with_gpus(1),
            network_url=net.url,
            network_mode="local",
        ) as running,
    ):
        app = make_app(LocalNodeClient(running), ssh=False)
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await messages.wait(SnapshotFetched, lambda m: bool(m.snapshot.quests))
            await pilot.press("2")
            await pilot.pause()
            # Put the cursor on the quest whose action is the benchmark suite.
            table = app.screen.query_one("#quests", DataTable)
            assert app.snapshot is not None
            assert app.snapshot.quests is not None
            bench_id = next(q.id for q in app.snapshot.quests if q.action == "bench")
            table.move_cursor(row=table.get_row_index(bench_id))
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, QuestsScreen)
            # Each key once the quest is in the state it needs (the next step the detail names).
            for key, command, state in (
                ("a", "quest.accept", "offered"),
                ("s", "quest.start", "accepted"),
                ("c", "quest.claim", "completed"),
            ):
                await settle(pilot, reached(app, bench_id, state))
                assert f"next: {key} " in str(screen.query_one("#quest-detail").render())
                await pilot.press(key)
                if isinstance(app.screen, ConfirmScreen):  # the window shrinks: say yes
                    await pilot.press("y")
                await wait_for_commands(app)
                done = await messages.wait(CommandFinished, named(command))
                assert done.ok, done.error
            # Ask the coordinator itself (the snapshot's copy refreshes a moment later).
            quests = (await LocalNodeClient(running).command(GetQuests())).quests
            assert [q.state for q in quests if q.id == bench_id] == ["claimed"]


def bench_state(app: OmniTensorApp, quest_id: str) -> str | None:
    """The state of ``quest_id`` in the console's latest snapshot."""
    quests = app.snapshot.quests if app.snapshot is not None else None
    return next((q.state for q in quests or () if q.id == quest_id), None)


def reached(app: OmniTensorApp, quest_id: str, state: str) -> Callable[[], bool]:
    """A test for ``settle``: the quest is in ``state`` in the console's snapshot."""
    return lambda: bench_state(app, quest_id) == state


async def announce_events(coordinator_dir: Path) -> None:
    """Through the operator's own ``announce``: an event running now, one tomorrow."""
    from core.coordinator.operator import STORE_FILE, announce_event
    from core.coordinator.store import CoordinatorStore
    from core.datadir import prepare_data_dir

    prepare_data_dir(coordinator_dir)
    async with CoordinatorStore(coordinator_dir / STORE_FILE):
        pass  # the coordinator's store, before the coordinator first starts
    now = time.time()
    for kind, name, factor, start, hours in (
        ("network-expansion", "Network expansion", Fraction(2), now - 3600, 6.0),
        ("stress-test", "Stress test", Fraction(3, 2), now + 26 * 3600, 2.0),
    ):
        # Announced a day ahead, as the rules want (the running one as of yesterday).
        await announce_event(
            coordinator_dir,
            kind=kind,
            factor=factor,
            start=start,
            hours=hours,
            name=name,
            now=min(now, start - 25 * 3600),
        )


async def test_screens_on_the_local_network(data_dir: Any, messages: Messages) -> None:
    """The real core end to end: embedded broker, coordinator and node in this process."""
    import contextlib

    from core.node.fake_nvml import FakeNvml
    from core.runtime.localnet import open_node
    from tests.tui.console.conftest import node_config

    await announce_events(data_dir / "localnet")
    async with contextlib.AsyncExitStack() as stack:
        running = await open_node(node_config(data_dir), stack, nvml=FakeNvml.with_gpus(1))
        app = make_app(LocalNodeClient(running), ssh=False)
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await messages.wait(
                SnapshotFetched,
                lambda m: m.snapshot.link.state == "connected",
            )
            await settle(pilot, lambda: "local network" in screen_text(app))
            # The coordinator's multiplier events, as it sends them (fractions as text).
            await settle(pilot, lambda: "x2 rewards" in screen_text(app))
            text = screen_text(app)
            assert "Network expansion until" in text and "upcoming x1.5 Stress test" in text
            await pilot.press("5")
            await settle(pilot, lambda: "balance " in screen_text(app))
            await pilot.press("4")
            await settle(pilot, lambda: "season 20" in screen_text(app))
            assert "not available yet" not in screen_text(app)
        # The recording still has the live coordinator's shapes (else: re-record).
        link = running.link
        assert link is not None
        recording = ReplayedCoordinator()
        for method in ("wallet", "quests", "season", "events"):
            live, recorded = await link.request(method, {}), recording.result(method)
            assert set(live) == set(recorded), method
            known = shape(recorded)
            for path, kinds in shape(live).items():
                assert path in known, f"{method}{path} is new: re-record"
                # null is any field's "not yet"; otherwise the JSON types must agree.
                both = kinds - {"null"}, known[path] - {"null"}
                assert not all(both) or both[0] & both[1], f"{method}{path}: {kinds} {known[path]}"


def shape(value: Any, path: str = "") -> dict[str, set[str]]:
    """The paths of a JSON value and the JSON types met there: {".staked": {"number"}}."""
    found: dict[str, set[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            found.setdefault(f"{path}[]", set())
            for item in value:
                walk(item, f"{path}[]")
        else:
            kind = {bool: "bool", str: "str", type(None): "null"}.get(type(value), "number")
            found.setdefault(path, set()).add(kind)

    walk(value, path)
    return found


def test_recorded_answers_decode_as_the_node_decodes_them(replay: ReplayedCoordinator) -> None:
    """Every recorded result is a valid answer to its command; every command the console
    sends to the coordinator has a recorded answer."""
    commands = {r.coordinator_method: r for r in COMMANDS.values() if r.coordinator_method}
    recorded = {a["method"] for a in replay.answers}
    assert set(commands) <= recorded, "re-record: tests/tui/console/record_network.py"
    for answer in replay.answers:
        if "result" in answer and answer["method"] in commands:
            convert_result(commands[answer["method"]], answer["result"], source="the recording")
    assert sum("error" in a for a in replay.answers) >= 1  # a refusal is recorded too


async def test_data_screen_from_the_recorded_registry(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    listing = replay.result("datasets", limit=100)
    [dataset] = listing["datasets"]
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("7")
        await settle(pilot, lambda: dataset["name"] in screen_text(app))
        text = screen_text(app)
        assert "OmniTensor Console — Data" in text
        # The node contributed it: it says so, with the state and the record count.
        assert f"{NODE_NAME} (you)" in text and "pending" in text
        assert "contributed 1 dataset(s), 0 records paid" in text
        assert "earned from data 0 OMNIT" in text
        assert "omnitensor contribute-data --validation" in text
        assert "no datasets on the network yet" not in text


async def test_data_screen_says_when_the_registry_is_empty(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    """A network with no datasets yet: the screen says so rather than an empty table."""
    empty = {**replay.result("datasets", limit=100), "datasets": [], "tasks": []}
    replay.overrides["datasets"] = lambda params: empty
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("7")
        await settle(pilot, lambda: "contributed 0 dataset(s)" in screen_text(app))
        text = screen_text(app)
        assert "no datasets on the network yet" in text
        assert "omnitensor contribute-data --dataset NAME --path PATH" in text
        assert not app.screen.query_one("#datasets").display


async def test_data_screen_offline_says_why(node: Node, messages: Messages) -> None:
    app = make_app(LocalNodeClient(node), ssh=False)
    async with app.run_test(size=(100, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("7")
        await settle(pilot, lambda: "not available yet:" in screen_text(app))
        assert "not on a network" in screen_text(app)


async def test_monthly_board_says_month_and_counts_one_node(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    board = synthetic_board(replay, 1, 0, networked_node.node_id)  # one node, not this one

    def answer(params: dict[str, Any]) -> Any:
        result = board(params)
        if params.get("category") == "data-validators-monthly":
            result = {**result, "season": "2026-12"}  # a monthly board's period is a month
        return result

    replay.overrides["leaderboard"] = answer
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("4")
        await settle(pilot, lambda: "1 node " in screen_text(app))
        assert "season 20" in screen_text(app)
        for _ in range(3):  # to "Validators of the month"
            await pilot.press("right")
        await settle(pilot, lambda: "month 2026-12" in screen_text(app))
        assert "season 2026-12" not in screen_text(app)
        await pilot.press("m")
        # The notification names the tab as the screen shows it, not the category's id.
        wanted = "This node is not ranked on Validators of the month yet."
        await settle(pilot, lambda: any(n.message == wanted for n in app._notifications))
