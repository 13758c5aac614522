"""Screenshots of the fleet console at 80x24 and 120x40, fed fixed rig states.

Deterministic: the rigs' statuses are posted to an app that watches nothing, the online
ones carrying the snapshot of one deterministic node (fixed key, name, readings, CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import pytest
from textual.pilot import Pilot

from core.api.fleet_watch import RigStatus
from core.api.views import AlertView, CpuView
from core.fleet import FleetRig
from tests.tui.console.conftest import fixed_gpus, snapshot_node
from tui.console.fleet import FleetApp, RigUpdated

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def fixed_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    reading = CpuView(name="test CPU", cores=2, load_pct=(25.0, 10.0), temperature_c=None)
    monkeypatch.setattr("core.node.snapshot.cpu_view", lambda _name: reading)


@pytest.mark.usefixtures("frozen_time")
@pytest.mark.parametrize("size", SIZES)
def test_fleet_three_rigs(snap_compare: SnapCompare, data_dir: Path, size: tuple[int, int]) -> None:
    """Three rows: rig-a online (2 GPUs, max temperature, idle, 0 verified, n/a today, no
    alerts), rig-b online with one alert (in yellow), rig-c unreachable: "ssh not
    installed"; the footer: Enter opens a rig's console, q quits, d its detail."""
    with snapshot_node(data_dir, fixed_gpus()) as threaded:
        threaded.node.backend_device = "test CPU"
        snapshot = threaded.call(threaded.node.snapshot())
    alert = AlertView(id="gpu-temp", kind="gpu-temp", message="GPU 1 at 86°C", since_ts=0.0)
    rig_a = FleetRig(name="rig-a", data_dir=Path("/srv/a"))
    rig_b = FleetRig(name="rig-b", data_dir=Path("/srv/b"))
    rig_c = FleetRig(name="rig-c", ssh="me@far", remote_data_dir=PurePosixPath("/home/me/d"))
    statuses = [
        RigStatus(rig_a, True, "", snapshot),
        RigStatus(rig_b, True, "", msgspec.structs.replace(snapshot, alerts=(alert,))),
        RigStatus(rig_c, False, "ssh not installed"),
    ]
    app = FleetApp([rig_a, rig_b, rig_c], watch=False)

    async def ready(pilot: Pilot[Any]) -> None:
        for status in statuses:
            app.post_message(RigUpdated(status))
        for _ in range(100):
            if len(app.statuses) == len(statuses):
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ready)
