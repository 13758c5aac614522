"""The display helpers: exact amounts, n/a, link states, quests, history."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from core.api.network import ExactProgress, MultiplierEvent, MultiplierEvents, Quest, QuestProgress
from core.api.views import (
    BenchProgressView,
    CpuView,
    LinkView,
    WorkBenchmarking,
    WorkIdle,
    WorkPaused,
)
from core.node.fake_nvml import FakeGpu, FakeNvml
from core.node.service import Node
from core.node.telemetry import GpuSampler
from core.node.views import telemetry_view
from tui.console.history import TelemetryHistory
from tui.console.widgets.gpu.card import gpu_details
from tui.console.widgets.gpu.metric import history_cells
from tui.console.widgets.node.summary import (
    link_text,
    multiplier_banner,
    overview_text,
    upcoming_events,
    work_text,
)
from tui.console.widgets.quests.model import quest_rows
from tui.format import bar, omnit_amount, signed_omnit, time_left

OMNIT = 10**9


def test_omnit_is_exact_integer_arithmetic() -> None:
    assert omnit_amount(1_200 * OMNIT) == "1,200"
    # Whole OMNIT: truncated, not rounded.
    assert omnit_amount(1_200 * OMNIT + 999_999_999) == "1,200"
    assert omnit_amount(10**18 - 1, exact=True) == "999,999,999.999999999"
    assert omnit_amount(-5 * OMNIT - 1, exact=True) == "-5.000000001"
    assert omnit_amount(None) == "n/a"
    # The CLI's documented form has no separators.
    assert omnit_amount(1_200 * OMNIT, grouped=False) == "1200"
    assert signed_omnit(12 * OMNIT + 250_000_000) == "+12.25"
    assert signed_omnit(-3 * OMNIT) == "-3"
    # Under 1 OMNIT: 3 significant digits (truncated), never a bare 0 for a small rig.
    assert omnit_amount(894_114) == "0.000894"
    assert omnit_amount(999_999_999) == "0.999"
    assert omnit_amount(-1_500) == "-0.0000015"
    assert omnit_amount(1) == "0.000000001"
    assert omnit_amount(0) == "0"


def test_earnings_sparkline() -> None:
    from tui.console.widgets.node.summary import sparkline

    assert sparkline((0,) * 24) == ""
    line = sparkline((0, 5, 10, 20))
    assert len(line) == 4 and line[0] == "▁" and line[-1] == "█"


def test_bars_and_times() -> None:
    assert bar(0.5, 4) == "██  "
    assert bar(None, 3) == "   "
    assert bar(1.7, 2) == "██"
    assert time_left(100.0, now=40.0) == "1m 00s left"
    assert time_left(10.0, now=40.0) == "ended"
    assert history_cells((0.0, 100.0, None), 5) == "  ▁█ "


def test_link_states() -> None:
    assert link_text(None).plain == "network not available yet"
    assert link_text(LinkView(mode="none", state="no network")).plain == "no network"
    assert link_text(LinkView(mode="local", state="connected")).plain == "local network"
    remote = LinkView(mode="remote", broker="mqtt://b:1883", state="connected")
    assert link_text(remote).plain == "connected to mqtt://b:1883"
    offline = msgspec.structs.replace(remote, state="offline", since_ts=0.0)
    assert link_text(offline).plain.startswith("offline since ")
    assert link_text(offline).plain.endswith(" (mqtt://b:1883)")  # the broker it cannot reach
    # Why, and when the next attempt is: the last connection error, the retry's clock time.
    why = msgspec.structs.replace(
        offline, reason="[Errno 111] Connection refused\x1b[2J", retry_ts=3600.0 * 5 + 61
    )
    text = link_text(why).plain
    assert " · [Errno 111] Connection refused\\x1b[2J · retry " in text
    assert text.endswith(time.strftime("%H:%M:%S", time.localtime(3600.0 * 5 + 61)))
    no_coordinator = msgspec.structs.replace(remote, coordinator_online=False)
    assert "coordinator offline" in link_text(no_coordinator).plain


def test_work_and_multiplier_lines() -> None:
    assert work_text(WorkIdle(), None).plain == "idle"
    bench = WorkBenchmarking(progress=BenchProgressView(stage="gemm", fraction=0.5))
    assert work_text(bench, None).plain == "benchmarking gemm 50%"
    paused = WorkPaused(reason="guard: 1 of 2 GPUs paused")
    assert work_text(paused, None).plain == "paused (1 of 2 GPUs paused)"
    assert multiplier_banner(MultiplierEvents(factor="1", active=(), upcoming=()), now=0.0) is None
    launch = MultiplierEvent(
        id="ev", kind="launch", name="Launch", factor="3", start_ts=0.0, end_ts=7200.0
    )
    banner = multiplier_banner(MultiplierEvents(factor="3", active=(launch,), upcoming=()), now=0.0)
    assert banner is not None and "x3 rewards" in banner.plain and "(2h 00m left)" in banner.plain
    none_yet = MultiplierEvents(factor="1", active=(), upcoming=())
    assert upcoming_events(none_yet).plain == "events none announced"


async def test_cpu_bench_line_while_the_first_benchmark_runs(
    no_gpu_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a result yet the line offers b; while the first run goes it says so (b would
    be refused: a benchmark is already running), as the work line above shows its progress."""
    reading = CpuView(name="test CPU", cores=2, load_pct=(25.0, 10.0))
    monkeypatch.setattr("core.node.snapshot.cpu_view", lambda _name: reading)
    snapshot = await no_gpu_node.snapshot()
    assert snapshot.last_benchmark is None and isinstance(snapshot.work, WorkIdle)

    def bench_line(text: str) -> str:
        return next(line for line in text.splitlines() if line.startswith("bench "))

    assert bench_line(overview_text(snapshot, now=0.0).plain).endswith("not run yet (b)")
    running = msgspec.structs.replace(
        snapshot, work=WorkBenchmarking(progress=BenchProgressView(stage="gemm", fraction=0.5))
    )
    line = bench_line(overview_text(running, now=0.0).plain)
    assert line.endswith("first run in progress") and "(b)" not in line


def _quest(id: str, state: Any, current: float, reward: int = 0) -> Quest:
    return Quest(
        id=id,
        title=id.upper(),
        kind="tflop-hours",
        state=state,
        progress=QuestProgress(
            current=current, target=1.0, unit="", exact=ExactProgress(current="0", target="1")
        ),
        progress_text="",
        deadline_ts=3600.0,
        reward=reward,
        reward_text="",
        achievement=None,
        action=None,
        description="",
    )


def test_quest_rows_grouped_by_state() -> None:
    quests = [_quest("a", "claimed", 1.0, reward=OMNIT), _quest("b", "accepted", 0.25)]
    rows = quest_rows(quests, now=0.0)
    assert [r.id for r in rows] == ["b", "a"]
    assert rows[0].left == "1h 00m left" and rows[0].progress.endswith(" 25%")
    assert rows[1].reward == "1 OMNIT"
    assert quest_rows(None) == []


async def test_history_records_each_frame_once() -> None:
    gpus = FakeNvml([FakeGpu(unsupported=frozenset({"fan", "power"}))])
    async with GpuSampler(gpus) as sampler:
        first = telemetry_view(await sampler.sample())
        second = telemetry_view(await sampler.sample())
    history = TelemetryHistory(samples=3)
    assert history.add(first) and not history.add(first)  # the snapshot repeats the event's frame
    assert history.add(second)
    assert len(history.utilization(0)) == 2 and history.memory(7) == ()
    details = gpu_details(first.gpus[0]).plain
    assert "n/a / 320 W" in details and "fan n/a" in details


def test_wallet_earnings_history_lines() -> None:
    from types import SimpleNamespace
    from typing import cast

    from core.api.views import NodeSnapshot
    from tui.console.screens.wallet import earnings_history

    empty = cast(NodeSnapshot, SimpleNamespace(earnings_hourly=(0,) * 24, earnings_daily=()))
    assert earnings_history(empty).plain.count("no work credited yet") == 2
    hours = (0,) * 22 + (500_000, 1_000_000)
    days = (0,) * 6 + (1_500_000,)
    text = earnings_history(
        cast(NodeSnapshot, SimpleNamespace(earnings_hourly=hours, earnings_daily=days))
    ).plain
    assert "peak 0.001 OMNIT/h · total 0.0015 OMNIT" in text
    assert "peak 0.0015 OMNIT/day" in text


def test_quest_time_to_finish_at_the_pace_seen() -> None:
    from tui.console.widgets.quests.model import eta_text

    assert eta_text(None, 100.0, 0.1, 1.0).startswith("time to finish: estimating")
    assert eta_text((0.0, 0.1), 30.0, 0.2, 1.0).startswith("time to finish: estimating")
    # 0.25 per 600 s; 0.5 left: 1,200 s (binary fractions: no float rounding).
    assert eta_text((0.0, 0.25), 600.0, 0.5, 1.0) == "about 20m 00s to finish at this pace"
    assert eta_text((0.0, 0.1), 600.0, 1.0, 1.0) == ""


def test_account_line_reads_the_ledgers_hours_not_a_page_of_entries() -> None:
    """A busy node's newest 100 entries are a few minutes: the last hour and the 24 h
    average come from the coordinator's per-hour sums when it sends them."""
    from types import SimpleNamespace
    from typing import cast

    from core.api.views import NodeSnapshot
    from tui.console.widgets.node.summary import account_text

    omnit = 10**9
    wallet = SimpleNamespace(
        available=5 * omnit, staked=omnit, entries=(), work_hourly=(omnit,) * 23 + (2 * omnit,)
    )
    snap = cast(NodeSnapshot, SimpleNamespace(wallet=wallet, earnings_hourly=()))
    text = account_text(snap, time.time()).plain
    assert "last hour 2 OMNIT" in text and "24 h average 1 OMNIT/h" in text
    young = SimpleNamespace(**{**vars(wallet), "work_hourly": (0,) * 20 + (omnit,) * 4})
    text = account_text(
        cast(NodeSnapshot, SimpleNamespace(wallet=young, earnings_hourly=())), 0
    ).plain
    assert "last hour 1 OMNIT" in text and "24 h average n/a" in text  # not a day of earning
