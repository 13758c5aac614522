"""A mining rig as it is: one worker per GPU, each sized, measured and paused on its own.

No GPU here: the node runs on simulated GPUs (the fake NVML's, computed on NumPy), which
exercises the same per-device code a rig runs: a thread, a worker and a share of the units
per device, the guard per GPU, the figures per GPU in status.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.api.commands import GetSnapshot
from core.config import load_config
from core.errors import KernelError
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_network import running_coordinator, wait_until
from tui.cli.output import format_status

pytestmark = pytest.mark.broker


def rig(data_dir: Path, url: str, key: str, gpus: int) -> tuple[Node, FakeNvml]:
    config = load_config(
        {"data_dir": str(data_dir), "name": "rig", "broker_url": url, "coordinator_key": key}
    )
    config = dataclasses.replace(config, fake_gpus=gpus)
    nvml = FakeNvml.with_gpus(gpus)
    node = Node(config, nvml=nvml, network_url=url, resend_interval=0.5)
    return node, nvml


async def test_every_gpu_works_and_a_hot_one_pauses_alone(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator:
        node, nvml = rig(tmp_path / "n", mosquitto.url, coordinator.node_id, gpus=3)
        async with node:
            assert [d.gpu for d in node.devices] == [0, 1, 2]

            async def all_worked() -> bool:
                snap = await node.command(GetSnapshot())
                return len(snap.workers) == 3 and all(w.done >= 2 for w in snap.workers)

            await wait_until(all_worked, within=60, what="units on every GPU")
            # The coordinator sees three devices, each measured on its own.
            slots = coordinator.state.node(node.node_id).workers
            assert len(slots) == 3 and all(s.rates for s in slots)
            rates = await coordinator.state.store.worker_rates(node.node_id)
            assert sorted(rates) == [0, 1, 2]

            # GPU 1 runs hot: its worker pauses, the others go on.
            nvml.set_temperature(1, 95)
            await wait_until(lambda: node.work_paused(1), what="GPU 1 paused")
            assert not node.work_paused(0) and not node.work_paused(2)
            snap = await node.command(GetSnapshot())
            before = {w.index: w.done for w in snap.workers}

            async def others_go_on() -> bool:
                snap = await node.command(GetSnapshot())
                done = {w.index: w.done for w in snap.workers}
                return done[0] >= before[0] + 2 and done[2] >= before[2] + 2

            await wait_until(others_go_on, within=60, what="GPUs 0 and 2 working on")
            snap = await node.command(GetSnapshot())
            states = {w.index: w.state for w in snap.workers}
            assert states[1] == "paused"
            assert snap.workers[1].done <= before[1] + 1  # at most the unit it had started
            text = format_status(snap)
            assert "worker 1   GPU 1 (simulated on NumPy): paused" in text
            assert "worker 0   GPU 0" in text and "worker 2   GPU 2" in text


async def test_gpus_selects_the_devices_that_work(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator:
        node, _ = rig(tmp_path / "n", mosquitto.url, coordinator.node_id, gpus=3)
        node.config = dataclasses.replace(node.config, gpus=(0, 2))
        async with node:
            assert [d.gpu for d in node.devices] == [0, 2]

            async def both_worked() -> bool:
                snap = await node.command(GetSnapshot())
                return len(snap.workers) == 2 and all(w.done >= 1 for w in snap.workers)

            await wait_until(both_worked, within=60, what="units on GPUs 0 and 2")
            snap = await node.command(GetSnapshot())
            assert [w.gpu for w in snap.workers] == [0, 2]
            assert len(coordinator.state.node(node.node_id).workers) == 2


async def test_a_selection_naming_no_gpu_here_stops_the_node(tmp_path: Path) -> None:
    config = load_config({"data_dir": str(tmp_path / "n")})
    config = dataclasses.replace(config, fake_gpus=2, gpus=(0, 5))
    with pytest.raises(KernelError, match=r"--gpus 0,5: no GPU 5 here \(GPUs: 0..1\)"):
        async with Node(config, nvml=FakeNvml.with_gpus(2)):
            pass


async def test_each_cuda_device_gets_its_own_worker_on_the_cupy_path(
    mosquitto: MosquittoProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CuPy path itself (a fake multi-device CuPy): a backend bound to each device,
    paired with telemetry by UUID, units computed on the device they were issued to."""
    from tests.helpers.fake_devices import fake_gpus, install_fake_cupy

    nvml = FakeNvml.with_gpus(2)
    fake = install_fake_cupy(monkeypatch, fake_gpus(2, nvml))
    monkeypatch.setenv("OMNITENSOR_BACKEND", "auto")
    async with running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator:
        config = load_config(
            {
                "data_dir": str(tmp_path / "n"),
                "name": "rig",
                "broker_url": mosquitto.url,
                "coordinator_key": coordinator.node_id,
            }
        )
        node = Node(config, nvml=nvml, network_url=mosquitto.url, backend_env={})
        async with node:
            assert node.backend_name == "cupy"
            assert [(d.gpu, d.backend.index) for d in node.devices] == [(0, 0), (1, 1)]

            async def both_worked() -> bool:
                snap = await node.command(GetSnapshot())
                return len(snap.workers) == 2 and all(w.done >= 1 for w in snap.workers)

            await wait_until(both_worked, within=90, what="units on both CUDA devices")
    # Each device ran GEMMs of its own (the fake raises on arrays of another device).
    assert fake.gpus[0].gemms > 0 and fake.gpus[1].gemms > 0
