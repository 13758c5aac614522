"""The devices a node works on: one per usable GPU (or the CPU), each with its own thread.

A CUDA device's context is per thread: each device gets one executor thread that owns it
(its CuPy device, stream and memory pool), like aiosqlite's one thread per connection. The
node's workers, one per device, run their units there; a hot GPU pauses its own worker only.
On the CPU there is one device. ``fake_gpus`` (demos, tests) simulates GPUs on NumPy, one
device each, matching the fake NVML's GPUs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.errors import KernelError


@dataclass
class WorkDevice:
    """One device and the thread that owns it."""

    index: int  # the worker's index on the network (0..n-1)
    gpu: int | None  # the GPU it is (its index among visible GPUs; None: the CPU)
    label: str
    executor: ThreadPoolExecutor
    backend: Any | None = None  # created on the device's own thread
    env: dict[str, str] | None = field(default=None, repr=False)

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(backend)`` on this device's thread."""

        def call() -> Any:
            if self.backend is None:
                self.backend = open_backend(self.env, self.gpu)
            return fn(self.backend)

        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def open_backend(env: dict[str, str] | None, gpu: int | None) -> Any:
    """The backend for ``gpu`` on the calling thread (CuPy: that device becomes current)."""
    from kernels.backend import select_backend

    backend = select_backend(env)
    if gpu is not None and backend.is_cupy:
        cuda = backend.xp.cuda
        cuda.Device(gpu).use()  # CuPy's current device is per thread: this one is its owner
        name = cuda.runtime.getDeviceProperties(gpu)["name"]
        label = name.decode() if isinstance(name, bytes) else str(name)
        backend = dataclasses.replace(backend, device=f"GPU {gpu}: {label}")
    return backend


def plan_devices(
    backend: Any, *, fake_gpus: int, selected: Sequence[int] | None
) -> list[tuple[int | None, str]]:
    """(gpu, label) of each device to work on, in worker order; KernelError for a bad pick."""
    if backend.is_cupy:
        count = int(backend.xp.cuda.runtime.getDeviceCount())
        available: list[tuple[int | None, str]] = [(i, f"GPU {i}") for i in range(count)]
    elif fake_gpus > 0:
        available = [(i, f"GPU {i} (simulated on NumPy)") for i in range(fake_gpus)]
    else:
        if selected:
            raise KernelError(f"--gpus {_text(selected)}: this node runs on the CPU (no GPU)")
        return [(None, "CPU (NumPy)")]
    if selected is None:
        return available
    known = {gpu for gpu, _ in available}
    missing = [i for i in selected if i not in known]
    if missing:
        have = f"0..{len(available) - 1}" if available else "none"
        raise KernelError(f"--gpus {_text(selected)}: no GPU {_text(missing)} here (GPUs: {have})")
    return [(gpu, label) for gpu, label in available if gpu in selected]


def make_devices(
    plan: Sequence[tuple[int | None, str]],
    env: dict[str, str] | None,
    first_executor: ThreadPoolExecutor,
) -> list[WorkDevice]:
    """One WorkDevice a planned device; the first reuses the node's kernel thread."""
    devices = []
    for index, (gpu, label) in enumerate(plan):
        executor = (
            first_executor
            if index == 0
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kernels-{index}")
        )
        devices.append(WorkDevice(index, gpu, label, executor, env=env))
    return devices


def _text(indices: Sequence[int]) -> str:
    return ",".join(str(i) for i in indices)
