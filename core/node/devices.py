"""The devices a node works on: one per usable GPU (or the CPU), each with its own thread.

A CUDA device's context is per thread: each device gets one executor thread that owns it
(its CuPy device, stream, cuBLAS handle and memory pool), like aiosqlite's one thread per
connection. The node's workers, one per device, run their units there; a hot GPU pauses its
own worker only. On the CPU there is one device. ``fake_gpus`` (demos, tests) simulates GPUs
on NumPy, one device each, matching the fake NVML's GPUs.

Which devices are usable is proven, not assumed: ``kernels.backend.choose_backends`` runs a
tiny GEMM and a compiled kernel on each before any work (``kernels/cuda_probe.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.config import Config
from core.errors import KernelError
from core.node.frames import TelemetryFrame


@dataclass
class WorkDevice:
    """One device and the thread that owns it."""

    index: int  # the worker's index on the network (0..n-1)
    gpu: int | None  # the GPU it is, as telemetry numbers it (None: the CPU)
    label: str
    executor: ThreadPoolExecutor
    backend: Any  # kernels.backend.Backend, bound to this device

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(backend)`` on this device's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, self.backend)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class DevicePlan:
    """What the probe found: the backend per device to work on, and a note for status."""

    devices: tuple[tuple[Any, int | None, str], ...]  # (backend, telemetry GPU index, label)
    note: str


def plan_devices(
    choose: Callable[[Sequence[int] | None], Any],
    *,
    fake_gpus: int,
    selected: Sequence[int] | None,
    frame: TelemetryFrame | None,
) -> DevicePlan:
    """Probe the devices (``choose`` is ``choose_backends`` bound to the env) and plan them.

    Raises ``BackendError`` (a forced backend that cannot run) or KernelError (a selection
    naming no device here).
    """
    choice = choose(None if fake_gpus > 0 else selected)
    backends = list(choice.backends)
    first = backends[0]
    if first.is_cupy:
        planned = tuple(
            (b, _telemetry_index(b, frame), f"GPU {b.index}: {b.device}") for b in backends
        )
        return DevicePlan(planned, choice.note)
    if fake_gpus > 0:
        gpus = list(range(fake_gpus))
        if selected is not None:
            missing = [i for i in selected if i not in gpus]
            if missing:
                raise KernelError(
                    f"--gpus {_text(selected)}: no GPU {_text(missing)} here "
                    f"(GPUs: 0..{fake_gpus - 1})"
                )
            gpus = [i for i in gpus if i in selected]
        simulated = tuple(
            (dataclasses.replace(first, device=f"GPU {i} (simulated on NumPy)"), i, "")
            for i in gpus
        )
        return DevicePlan(tuple((b, i, b.device) for b, i, _ in simulated), choice.note)
    if selected:
        raise KernelError(f"--gpus {_text(selected)}: this node runs on the CPU (no GPU)")
    return DevicePlan(((first, None, f"CPU: {first.device}"),), choice.note)


async def probe_devices(
    config: Config,
    env: dict[str, str] | None,
    frame: TelemetryFrame | None,
    executor: ThreadPoolExecutor,
) -> DevicePlan:
    """Probe and plan on ``executor`` (the first device's thread): the probe runs GEMMs.

    KernelError, one line, when a forced backend cannot run or the selection names no device
    here: the node then stops before taking any task.
    """
    from kernels.backend import BackendError, choose_backends

    def choose(devices: Sequence[int] | None) -> Any:
        return choose_backends(devices, env)

    def plan() -> DevicePlan:
        return plan_devices(choose, fake_gpus=config.fake_gpus, selected=config.gpus, frame=frame)

    try:
        return await asyncio.get_running_loop().run_in_executor(executor, plan)
    except BackendError as exc:
        raise KernelError(str(exc)) from None


def make_devices(plan: DevicePlan, first_executor: ThreadPoolExecutor) -> list[WorkDevice]:
    """One WorkDevice a planned device; the first reuses the node's kernel thread."""
    devices = []
    for index, (backend, gpu, label) in enumerate(plan.devices):
        executor = (
            first_executor
            if index == 0
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kernels-{index}")
        )
        devices.append(WorkDevice(index, gpu, label, executor, backend))
    return devices


def _telemetry_index(backend: Any, frame: TelemetryFrame | None) -> int | None:
    """The telemetry index of a CUDA device: matched by UUID (CUDA and NVML may number
    devices differently, e.g. under CUDA_VISIBLE_DEVICES), else its CUDA index."""
    if frame is not None and backend.uuid:
        for gpu in frame.gpus:
            if gpu.uuid == backend.uuid:
                return int(gpu.index)
    return int(backend.index) if backend.index is not None else None


def _text(indices: Sequence[int]) -> str:
    return ",".join(str(i) for i in indices)
