"""Alerts: raised once when a condition starts, listed while it holds, cleared once; the
owner's command gets each as JSON; the thresholds come from the config."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from core.api.commands import GetLog
from core.api.events import TelemetryEvent
from core.api.network import ExactProgress, Quest, QuestProgress, Wallet
from core.config import AlertConfig, load_config
from core.errors import ConfigError
from core.node.alerts import AlertInputs, AlertMonitor
from core.node.fake_nvml import FakeNvml
from core.node.service import Node

HOUR = 3600.0


def test_offline_is_raised_once_keeps_its_start_and_clears() -> None:
    monitor = AlertMonitor(AlertConfig(offline_minutes=10))
    away = AlertInputs(now=1000.0, offline_since=1000.0, broker="mqtt://rig:1883")
    assert monitor.evaluate(away) == ([], [])  # not yet ten minutes
    away.now = 1000.0 + 601
    raised, cleared = monitor.evaluate(away)
    assert [a.id for a in raised] == ["offline"] and not cleared
    assert "offline for 10 min (broker mqtt://rig:1883)" in raised[0].message
    away.now += 60
    assert monitor.evaluate(away) == ([], [])  # still on: not raised again
    assert monitor.active["offline"].since_ts == 1601.0
    back = AlertInputs(now=away.now + 1)
    raised, cleared = monitor.evaluate(back)
    assert not raised and [a.id for a in cleared] == ["offline"] and not monitor.active


def _quest(deadline: float) -> Quest:
    return Quest(
        id="weekly-compute:2026-W49",
        title="Weekly compute",
        kind="tflop-hours",
        state="accepted",
        progress=QuestProgress(
            current=0.1, target=1.0, unit="TFLOP-h", exact=ExactProgress(current="1/10", target="1")
        ),
        progress_text="0.1/1 TFLOP-h",
        deadline_ts=deadline,
        reward=10**9,
        reward_text="1 OMNIT",
        achievement=None,
        action=None,
        description="",
    )


def _wallet(hourly: tuple[int, ...]) -> Wallet:
    return cast(Wallet, SimpleNamespace(work_hourly=hourly))  # only work_hourly is read


def test_quest_expiring_and_earnings_drop() -> None:
    now = 100 * HOUR
    monitor = AlertMonitor(AlertConfig(quest_hours=6, earnings_drop_percent=50))
    # An OMNIT an hour for a day (thousands of ledger entries on a busy node), none last hour.
    wallet = _wallet((10**9,) * 23 + (0,))
    inputs = AlertInputs(
        now=now, quests=[_quest(now + 2 * HOUR), _quest(now + 20 * HOUR)], wallet=wallet
    )
    raised, _ = monitor.evaluate(inputs)
    kinds = sorted(a.kind for a in raised)
    assert kinds == ["earnings-low", "quest-expiring"]
    assert "ends in 2.0 h" in next(a.message for a in raised if a.kind == "quest-expiring")
    low = next(a for a in raised if a.kind == "earnings-low")
    assert low.message == "earned 0% of the 24 h hourly average in the last hour"


@pytest.mark.parametrize(
    ("hourly", "alert"),
    [
        ((10**9,) * 23 + (6 * 10**8,), False),  # 60% of the average: above the 50% line
        ((10**9,) * 23 + (4 * 10**8,), True),
        ((0,) + (10**9,) * 22 + (0,), False),  # earning for less than a day: no baseline
        ((), False),  # a coordinator that does not send work_hourly
    ],
)
def test_earnings_drop_threshold(hourly: tuple[int, ...], alert: bool) -> None:
    monitor = AlertMonitor(AlertConfig(earnings_drop_percent=50))
    raised, _ = monitor.evaluate(AlertInputs(now=100 * HOUR, wallet=_wallet(hourly)))
    assert [a.kind for a in raised] == (["earnings-low"] if alert else [])


async def test_the_owner_command_gets_the_alert_as_json(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    monitor = AlertMonitor(AlertConfig(offline_minutes=1, command=f"cat > {out}"))
    raised, _ = monitor.evaluate(AlertInputs(now=100.0, offline_since=0.0))
    monitor.run_command(raised[0], "raised")
    await asyncio.gather(*monitor._commands)
    sent = json.loads(out.read_text())
    assert sent["id"] == "offline" and sent["state"] == "raised" and sent["kind"] == "offline"


def test_alert_settings_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[alerts]\ngpu_temp_c = 80\ncommand = "notify-send omnitensor"\n')
    alerts = load_config({"config_file": str(path)}).alerts
    assert alerts.gpu_temp_c == 80 and alerts.command == "notify-send omnitensor"
    path.write_text("[alerts]\ngpu_temperature = 80\n")
    with pytest.raises(ConfigError, match="unknown alert setting"):
        load_config({"config_file": str(path)})
    path.write_text("[alerts]\noffline_minutes = -1\n")
    with pytest.raises(ConfigError, match="offline_minutes"):
        load_config({"config_file": str(path)})


async def test_a_hot_gpu_alert_on_a_running_node(data_dir: Path) -> None:
    nvml = FakeNvml.with_gpus(2)
    config = load_config({"data_dir": str(data_dir), "name": "alice"})
    async with Node(config, nvml=nvml) as node:
        nvml.set_temperature(1, 88)
        async with node.subscribe() as queue:
            while True:
                event = await asyncio.wait_for(queue.get(), 5)
                if isinstance(event, TelemetryEvent) and node.alerts.active:
                    break
        snap = await node.snapshot()
        assert [a.id for a in snap.alerts] == ["gpu-hot:1"]
        nvml.set_temperature(1, 60)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if not node.alerts.active:
                break
        log = (await node.command(GetLog())).events
    alert_lines = [e.message for e in log if e.kind == "alert"]
    assert alert_lines == [
        "GPU 1 at 88°C (alert at 85°C)",
        "cleared: GPU 1 at 88°C (alert at 85°C)",
    ]


def test_rapl_power_from_two_energy_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.node import views

    counter = tmp_path / "energy_uj"
    counter.write_text("1000000\n")
    clock = iter([100.0, 102.0])
    meter = views._RaplMeter(clock=lambda: next(clock))
    monkeypatch.setattr(views._RaplMeter, "PATH", counter)
    assert meter.watts() is None  # one read: no interval yet
    counter.write_text("61000000\n")  # 60 J in 2 s
    assert meter.watts() == 30.0
    monkeypatch.setattr(views._RaplMeter, "PATH", tmp_path / "absent")
    assert meter.watts() is None
