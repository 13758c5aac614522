"""Quests, season, wallet, multiplier and leaderboards: rendered from the views the network
provides, and the keys send the right commands.

``ScriptedNetwork`` adds those sections and answers to a real node's client;
``test_quest_flow_on_the_real_core`` runs the same keys against the core itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.widgets import DataTable

from core.api.commands import (
    AcceptQuest,
    ClaimQuest,
    GetLeaderboard,
    GetQuests,
    QuestStarted,
    StartQuest,
)
from core.api.network import (
    Achievement,
    AwardProgress,
    ExactProgress,
    LedgerEntry,
    MultiplierEvent,
    MultiplierEvents,
    Quest,
    QuestAccepted,
    QuestProgress,
    RejectedWork,
    ReputationDetail,
    Season,
    Standing,
    Wallet,
    WorkCounts,
)
from core.api.views import LinkView
from core.errors import CommandError
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tests.tui.console.conftest import (
    NODE_NAME,
    Messages,
    ScriptedNetwork,
    screen_text,
    settle,
    synthetic_board,
    wait_for_commands,
)
from tui.console.app import make_app
from tui.console.messages import BenchProgressed, CommandFinished, SnapshotFetched
from tui.console.screens.leaderboards import LeaderboardsScreen
from tui.console.widgets.leaderboard.view import LeaderboardView

OMNIT = 10**9


def named(command: str) -> Callable[[CommandFinished], bool]:
    """A test for ``messages.wait``: the ``CommandFinished`` of ``command``."""
    return lambda message: message.name == command


HOUR = 3600.0


def _quest(
    id: str, title: str, state: Any, progress: tuple[float, float, str], reward: int, **extra: Any
) -> Quest:
    current, target, unit = progress
    fields: dict[str, Any] = {
        "kind": "benchmark",
        "deadline_ts": 0.0,
        "achievement": None,
        "action": None,
        **extra,
    }
    return Quest(
        id=id,
        title=title,
        state=state,
        progress=QuestProgress(
            current=current,
            target=target,
            unit=unit,
            exact=ExactProgress(current=str(current), target=str(target)),
        ),
        progress_text=f"{current:g}/{target:g} {unit}",
        reward=reward,
        reward_text=f"{reward // OMNIT} OMNIT",
        description="",
        **fields,
    )


def sections(now: float) -> dict[str, Any]:
    """Every network section, as the node's snapshot carries it."""
    return {
        "link": LinkView(
            mode="remote",
            broker="mqtt://broker.example:1883",
            state="connected",
            since_ts=now - HOUR,
            coordinator_online=True,
        ),
        "wallet": Wallet(
            balance=1_234_567 * OMNIT + 5 * 10**8,
            available=1_234_467 * OMNIT + 5 * 10**8,
            staked=100 * OMNIT,
            reputation=42,
            reputation_detail=ReputationDetail(consecutive=42, verified=50, failed=1),
            earned_today=12 * OMNIT + 250_000_000,
            entries=(
                LedgerEntry(
                    id=1,
                    ts=now - 60,
                    amount=3 * OMNIT,
                    kind="work",
                    reason="verified gemm w-17 x2 multiplier",
                    category="gpu-contributors",
                    season="2026-Q4",
                    ref="w-17",
                ),
                LedgerEntry(
                    id=2,
                    ts=now - 30,
                    amount=-5 * OMNIT,
                    kind="slash",
                    reason="failed verification w-18",
                    category="",
                    season="2026-Q4",
                    ref="w-18",
                ),
            ),
            rejected=(RejectedWork(work_id="w-18", ts=now - 30, reason="Freivalds check failed"),),
            work=WorkCounts(accepted=50, rejected=1),
        ),
        "multiplier": MultiplierEvents(
            factor="2",
            active=(
                MultiplierEvent(
                    id="ev-1",
                    kind="network-expansion",
                    name="Network expansion",
                    factor="2",
                    start_ts=now - HOUR,
                    end_ts=now + 5 * HOUR,
                ),
            ),
            upcoming=(
                MultiplierEvent(
                    id="ev-2",
                    kind="stress-test",
                    name="Stress test",
                    factor="3/2",
                    start_ts=now + 26 * HOUR,
                    end_ts=now + 28 * HOUR,
                ),
            ),
        ),
        "quests": (
            _quest(
                "q-bench",
                "Run the benchmark suite",
                "offered",
                (0.0, 1.0, "benchmark"),
                5 * OMNIT,
                deadline_ts=now + 3 * HOUR,
                action="bench",
            ),
            _quest(
                "q-tflop",
                "Contribute 2 TFLOP-hours",
                "in_progress",
                (1.5, 2.0, "TFLOP-h"),
                20 * OMNIT,
                kind="tflop-hours",
                deadline_ts=now + 30 * HOUR,
                achievement="Cruncher",
            ),
            _quest(
                "q-done",
                "Keep uptime above 95%",
                "completed",
                (1.0, 1.0, "h"),
                7 * OMNIT + 500_000_000,
                kind="uptime",
            ),
        ),
        "season": Season(
            id="2026-Q4",
            start_ts=now - 40 * 86400,
            end_ts=now + 52 * 86400,
            days_left=52,
            ranks={
                "gpu-contributors": Standing(rank=23, total=340, amount=1200 * OMNIT),
                "data-validators": Standing(rank=None, total=80, amount=0),
            },
            awards=(
                AwardProgress(
                    name="Top 10 GPU contributors", progress=0.4, detail="rank 23, top 10 needed"
                ),
            ),
            won=(),
            achievements=(
                Achievement(
                    id="first-bench",
                    name="First benchmark",
                    earned_ts=now - 86400,
                    description="Ran the suite",
                ),
            ),
        ),
    }


async def test_dashboard_network_lines(node: Node, messages: Messages) -> None:
    now = time.time()
    app = make_app(ScriptedNetwork(node, sections(now)), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.pause()
        text = screen_text(app)
        assert "connected to mqtt://broker.example:1883" in text
        assert "x2 rewards" in text and "Network expansion until" in text
        assert "(5h 00m left)" in text or "(4h 59m left)" in text
        assert "today +12.25 OMNIT" in text
        assert "upcoming x1.5 Stress test" in text


async def test_link_states(node: Node, messages: Messages) -> None:
    net = ScriptedNetwork(node, {"link": LinkView(mode="local", state="connected")})
    app = make_app(net, ssh=False)
    async with app.run_test(size=(120, 30), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await settle(pilot, lambda: "local network" in screen_text(app))
        net.sections = {
            "link": LinkView(mode="remote", state="offline", since_ts=0.0, broker="mqtt://b:1883")
        }
        app.request_refresh()
        await settle(pilot, lambda: "offline since" in screen_text(app))


async def test_quests_keys_send_commands(node: Node, messages: Messages) -> None:
    net = ScriptedNetwork(node, sections(time.time()))

    quest = sections(time.time())["quests"][1]

    async def refuse(request: ClaimQuest) -> Any:
        raise CommandError(f"quest {request.id} is not completed yet")

    async def accept(request: AcceptQuest) -> QuestAccepted:
        return QuestAccepted(quest=quest, message=f"accepted {request.id}")

    net.handlers.update({AcceptQuest: accept, ClaimQuest: refuse})
    app = make_app(net, ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        # Active first, then offered, then completed; progress bars and time left.
        assert text.index("Contribute 2 TFLOP-hours") < text.index("Run the benchmark suite")
        assert text.index("Run the benchmark suite") < text.index("Keep uptime above 95%")
        assert "75%" in text and "20 OMNIT" in text
        assert "1.5/2 TFLOP-h  ·  unlocks Cruncher" in text
        assert "1d 05h left" in text and "7.5 OMNIT" in text
        await pilot.press("down", "a")
        await wait_for_commands(app)
        accepted = await messages.wait(CommandFinished, lambda m: m.name == "quest.accept")
        assert accepted.request == AcceptQuest(id="q-bench") and accepted.ok
        await pilot.press("c")
        await wait_for_commands(app)
        refused = await messages.wait(CommandFinished, lambda m: m.name == "quest.claim")
        assert refused.error == "quest q-bench is not completed yet"
        await pilot.pause()
        notes = [str(n.message) for n in app._notifications]
        assert "accepted q-bench" in notes and "quest q-bench is not completed yet" in notes
        assert AcceptQuest(id="q-bench") in net.calls


async def test_quest_start_runs_the_benchmark_with_progress(node: Node, messages: Messages) -> None:
    net = ScriptedNetwork(node, sections(time.time()))

    async def start(request: StartQuest) -> QuestStarted:
        # The quest's action: the node's real benchmark, with its progress events.
        result = await node.run_benchmark(quick=True)
        return QuestStarted(message=f"{request.id}: benchmark verified {result.verified}")

    net.handlers[StartQuest] = start
    app = make_app(net, ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("2", "down", "s")
        await messages.wait(BenchProgressed, lambda m: m.fraction is not None)
        await pilot.pause()
        await wait_for_commands(app)
        started = await messages.wait(CommandFinished, lambda m: m.name == "quest.start")
        assert started.ok and started.request == StartQuest(id="q-bench")
        assert started.result == QuestStarted(message="q-bench: benchmark verified True")


async def test_season_and_wallet(node: Node, messages: Messages) -> None:
    app = make_app(ScriptedNetwork(node, sections(time.time())), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("3")
        await pilot.pause()
        text = screen_text(app)
        assert "Season 2026-Q4" in text and "52 days left" in text
        assert "gpu-contributors" in text and "1,200" in text and "340" in text
        assert "Top 10 GPU contributors" in text and "40%" in text
        assert "First benchmark" in text
        await pilot.press("5")
        await pilot.pause()
        text = screen_text(app)
        assert "balance 1,234,567.5 OMNIT" in text and "staked 100 OMNIT" in text
        assert "reputation 42" in text
        assert "+3" in text and "-5" in text and "failed verification w-18" in text
        assert "Freivalds check failed" in text


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


async def test_leaderboard_of_100000_nodes(node: Node, messages: Messages) -> None:
    own_rank = 73_421
    board = synthetic_board(100_000, own_rank, node.node_id)
    net = ScriptedNetwork(node, {}, board=board)
    app = make_app(net, ssh=False)
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
        pages = [c.offset for c in net.calls if isinstance(c, GetLeaderboard)]
        assert len(pages) <= 6 and 73_400 in pages

        # The other tabs fetch when shown.
        await pilot.press("right")
        await settle(pilot, lambda: screen.active_view.category == "data-validators")
        await settle(pilot, lambda: screen.active_view.table.total == 100_000)
        calls = [c for c in net.calls if isinstance(c, GetLeaderboard)]
        assert len(calls) <= 8, calls


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
            for key, command in (("a", "quest.accept"), ("s", "quest.start"), ("c", "quest.claim")):
                await pilot.press(key)
                await wait_for_commands(app)
                done = await messages.wait(CommandFinished, named(command))
                assert done.ok, done.error
            # Ask the coordinator itself (the snapshot's copy refreshes a moment later).
            quests = (await LocalNodeClient(running).command(GetQuests())).quests
            assert [q.state for q in quests if q.id == bench_id] == ["claimed"]


async def test_screens_on_the_local_network(data_dir: Any, messages: Messages) -> None:
    """The real core end to end: embedded broker, coordinator and node in this process."""
    import contextlib

    from core.node.fake_nvml import FakeNvml
    from core.runtime.localnet import open_node
    from tests.tui.console.conftest import node_config

    async with contextlib.AsyncExitStack() as stack:
        running = await open_node(node_config(data_dir), stack, nvml=FakeNvml.with_gpus(1))
        app = make_app(LocalNodeClient(running), ssh=False)
        async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
            await messages.wait(
                SnapshotFetched,
                lambda m: m.snapshot.link.state == "connected",
            )
            await settle(pilot, lambda: "local network" in screen_text(app))
            await pilot.press("5")
            await settle(pilot, lambda: "balance " in screen_text(app))
            await pilot.press("4")
            await settle(pilot, lambda: "season 20" in screen_text(app))
            assert "not available yet" not in screen_text(app)
