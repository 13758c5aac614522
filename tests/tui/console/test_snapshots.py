"""Screenshots of the dashboard (pytest-textual-snapshot) at 80x24 and 120x40.

Deterministic by construction: a fixed node key and name, fake GPUs whose clock stands still
(fixed readings), one telemetry frame, ``time.time()`` frozen (uptime reads ``<1m``), and
the backend's device name (the host's CPU model) replaced by a fixed one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core.api.views import CpuView
from core.node.fake_nvml import FakeNvml
from tests.tui.console.conftest import fixed_gpus, settle, snapshot_node
from tui.console.app import make_app
from tui.console.widgets.gpu.card import GpuCard


@pytest.fixture(autouse=True)
def fixed_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's CPU load changes every second: a fixed reading."""
    reading = CpuView(name="test CPU", cores=2, load_pct=(25.0, 10.0), temperature_c=None)
    monkeypatch.setattr("core.node.snapshot.cpu_view", lambda _name: reading)


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]


def _dashboard(
    snap_compare: SnapCompare, data_dir: Path, nvml: FakeNvml, size: tuple[int, int], cards: int
) -> bool:
    with snapshot_node(data_dir, nvml) as threaded:
        threaded.node.backend_device = "test CPU"
        app = make_app(threaded.client(), ssh=False)

        async def ready(pilot: Pilot[Any]) -> None:
            def shown() -> bool:
                return app.snapshot is not None and len(app.screen.query(GpuCard)) == cards

            await settle(pilot, shown)

        return snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.usefixtures("frozen_time")
@pytest.mark.parametrize("size", SIZES)
def test_dashboard_two_fake_gpus(
    snap_compare: SnapCompare, data_dir: Path, size: tuple[int, int]
) -> None:
    """Two GPU cards (RTX 3080, RTX 4090) with utilization and memory bars, one history
    sample each, readings on one line, "running" in the corner; the node line with name,
    short id, "no network" and the backend; work idle; the footer with every screen key."""
    assert _dashboard(snap_compare, data_dir, fixed_gpus(), size, cards=2)


@pytest.mark.usefixtures("frozen_time")
@pytest.mark.parametrize("size", SIZES)
def test_dashboard_no_gpu(snap_compare: SnapCompare, data_dir: Path, size: tuple[int, int]) -> None:
    """No GPU: the dashboard says "No GPU: NVML library not found (no NVIDIA driver
    installed)" and that work runs on the numpy backend; a CPU line (2 cores, load 25% 10%,
    temperature n/a), work done, the account, quests and season (not available: no network);
    the rest is as with a GPU."""
    assert _dashboard(snap_compare, data_dir, FakeNvml.missing_library(), size, cards=0)
