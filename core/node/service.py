"""The node: owns the data dir, identity, store, telemetry, guard and work.

One ``Node`` runs per data dir (an advisory lock enforces it). It publishes events to
subscribers (the console, the control socket, the headless logger) and answers commands.
Blocking work never runs on the event loop: NVML runs in the sampler's own thread, kernels
in one thread per device (which owns that device's CUDA context), sqlite in aiosqlite's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from core.api.commands import Request
from core.api.events import LogEvent, LogLevel, NodeEvent, TelemetryEvent
from core.api.views import (
    BenchmarkResult,
    ModelView,
    NetworkMode,
    NodeSnapshot,
)
from core.config import Config
from core.datadir import DataDirLock, prepare_data_dir
from core.errors import CommandError
from core.identity import Identity, load_or_create_identity, short_id
from core.node.alerts import AlertInputs, AlertMonitor
from core.node.bench import Benchmarks
from core.node.commands import NodeCommands
from core.node.devices import WorkDevice, make_devices, probe_devices
from core.node.frames import TelemetryFrame
from core.node.guard import GuardConfig, GuardState, ThermalGuard
from core.node.snapshot import node_snapshot
from core.node.store import NodeStore
from core.node.telemetry import GpuSampler
from core.node.views import (
    guard_view,
    model_view,
    telemetry_view,
)

if TYPE_CHECKING:
    from core.node.link import NetworkLink

log = logging.getLogger("omnitensor.node")
R = TypeVar("R")

# Subscribers that fall this far behind lose events rather than slow the node down.
SUBSCRIBER_QUEUE_SIZE = 512


def _make_nvml(config: Config) -> Any:
    if config.fake_gpus > 0:
        from core.node.fake_nvml import FakeNvml

        return FakeNvml.with_gpus(config.fake_gpus)
    return None  # the sampler imports the real pynvml


class Node:
    """A running contributor node. Use ``async with Node(config) as node``."""

    def __init__(
        self,
        config: Config,
        *,
        nvml: Any | None = None,
        backend_env: dict[str, str] | None = None,
        network_url: str | None = None,
        network_mode: NetworkMode = "remote",
        resend_interval: float = 30.0,
    ) -> None:
        self.config = config
        # Joined at start when given; ``core.localnet.open_node`` decides it from the config.
        self._network_url = network_url
        self._network_mode = network_mode
        self._resend_interval = resend_interval
        self.link: NetworkLink | None = None
        self._link_task: asyncio.Task[None] | None = None
        self.devices: list[WorkDevice] = []  # filled once the backend is chosen
        self._nvml = nvml if nvml is not None else _make_nvml(config)
        self._backend_env = backend_env
        self._lock = DataDirLock(config.lock_path)
        self._subscribers: set[asyncio.Queue[NodeEvent]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._kernel_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernels")
        self.bench = Benchmarks(self, self._kernel_thread, backend_env, self._after_benchmark)
        self.identity: Identity | None = None
        self.store: NodeStore | None = None
        self.sampler: GpuSampler | None = None
        self.guard = ThermalGuard(
            GuardConfig(
                pause_temp_c=config.pause_temp_c,
                resume_temp_c=config.resume_temp_c,
                pause_power_fraction=config.pause_power_fraction,
                resume_power_fraction=config.resume_power_fraction,
            )
        )
        self.guard_state: GuardState | None = None
        self.alerts = AlertMonitor(config.alerts)
        self._paused_since: float | None = None  # when the guard last started holding work
        self.frame: TelemetryFrame | None = None
        self.backend_name = "unknown"
        self.backend_device = ""
        self.backend_error: str | None = None
        self.backend_note: str | None = None  # devices left out, and why (for status)
        self.model: ModelView | None = None  # the sentence-embedding model, or how to get it
        self.started_ts = 0.0
        self._started_mono = 0.0
        self.stopped = asyncio.Event()
        self.commands = NodeCommands(self)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        prepare_data_dir(self.config.data_dir)
        self._lock.acquire()
        try:
            self.identity, created = load_or_create_identity(self.config.data_dir)
            self.store = NodeStore(self.config.store_path)
            await self.store.connect()
            # The display name sticks to the data dir: set once, kept until set again.
            if self.config.name:
                await self.store.set_setting("name", self.config.name)
            else:
                stored_name = await self.store.get_setting("name")
                if stored_name:
                    self.config = dataclasses.replace(self.config, name=stored_name)
            self.started_ts = time.time()
            self._started_mono = time.monotonic()
            self.sampler = GpuSampler(self._nvml, interval=self.config.telemetry_interval)
            await self.sampler.__aenter__()
            self.frame = await self.sampler.sample()
            self.guard_state = self.guard.update(self.frame)
            await self._select_backend()
            self.model = await asyncio.to_thread(model_view, self.config.model_dir)
        except BaseException:
            await self._close_resources()
            raise
        if created:
            await self.emit_log("info", "identity", f"created node key {short_id(self.node_id)}")
        status = self.frame.status
        gpus = (
            f"{status.gpu_count} GPU(s), driver {status.driver_version}"
            if status.available
            else f"no GPU: {status.reason}"
        )
        await self.emit_log(
            "info",
            "node",
            f"node {self.display_name} ({short_id(self.node_id)}) started; {gpus}; "
            f"backend {self.backend_name}",
        )
        self._tasks.append(asyncio.create_task(self._telemetry_loop(), name="node.telemetry"))
        if self._network_url:
            self.join_network(self._network_url, mode=self._network_mode)

    def join_network(
        self, url: str, *, mode: NetworkMode = "remote", coordinator_key: str | None = None
    ) -> None:
        """Connect this (started) node to a network's broker; it keeps working offline."""
        from core.node.link import NetworkLink

        if self.link is not None:
            raise RuntimeError("the node is already on a network")
        if coordinator_key:
            broker = dataclasses.replace(self.config.broker, coordinator_key=coordinator_key)
            self.config = dataclasses.replace(self.config, broker=broker)
        self.link = NetworkLink(self, url, mode=mode, resend_interval=self._resend_interval)
        self._link_task = asyncio.create_task(self._run_link(self.link), name="node.link")

    async def _run_link(self, link: NetworkLink) -> None:
        assert self.store is not None
        first = self.config.first_benchmark and await self.store.last_benchmark() is None
        if first and not self.backend_error:
            # Like BOINC's first-run benchmark: the network rewards measured capability.
            self._tasks.append(
                asyncio.create_task(self._first_benchmark(), name="node.first-benchmark")
            )
        await link.run()

    async def _first_benchmark(self) -> None:
        with contextlib.suppress(CommandError):
            await self.run_benchmark(quick=True)

    async def leave_network(self) -> None:
        if self._link_task is not None:
            from core.transport.mqtt import cancel_and_wait

            if self.link is not None:
                self.link.close()
            await cancel_and_wait(self._link_task)
            self._link_task = None

    async def _select_backend(self) -> None:
        """Probe the devices (off the loop: a tiny GEMM on each) and give each a thread."""
        plan = await probe_devices(self.config, self._backend_env, self.frame, self._kernel_thread)
        first = plan.devices[0][0]
        self.backend_name, self.backend_device = first.name, first.device
        self.backend_note = plan.note or None
        self.devices = make_devices(plan, self._kernel_thread)

    async def run_in_kernel_thread(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(backend)`` on the first device's thread (which owns its context)."""
        return await self.run_on_device(0, fn)

    async def run_on_device(self, index: int, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(backend)`` on device ``index``'s own thread."""
        if not self.devices:
            raise CommandError(self.backend_error or "no device to work on")
        return await self.devices[index].run(fn)

    def work_paused(self, device: int | None = None) -> bool:
        """True while the guard holds work back: on that device's GPU, or on any GPU."""
        guard = self.guard_state
        if guard is None:
            return False
        gpu = self.devices[device].gpu if device is not None and self.devices else None
        if gpu is None:
            return guard.paused
        return any(g.paused for g in guard.per_gpu if g.index == gpu)

    async def stop(self) -> None:
        await self.leave_network()
        await self.bench.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.store is not None and self.identity is not None:
            with contextlib.suppress(Exception):
                await self.emit_log("info", "node", "node stopped")
        await self._close_resources()
        self.stopped.set()

    async def _close_resources(self) -> None:
        if self.sampler is not None:
            await self.sampler.aclose()
            self.sampler = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        for device in self.devices[1:]:
            device.close()
        self._kernel_thread.shutdown(wait=True, cancel_futures=True)
        self._lock.release()

    # -- identity --------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        assert self.identity is not None
        return self.identity.node_id

    @property
    def display_name(self) -> str:
        return self.config.name or f"node-{short_id(self.node_id)[:6]}"

    # -- events ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[NodeEvent]]:
        """A queue receiving every event from now on, until the context exits."""
        queue: asyncio.Queue[NodeEvent] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: NodeEvent) -> None:
        for queue in self._subscribers:
            # A stalled reader loses events; telemetry is superseded by the next frame.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    async def emit_log(
        self, level: LogLevel, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record a node event: the store, the subscribers and the Python log."""
        log.log(logging.getLevelName(level.upper()), message, extra={"kind": kind})
        if self.store is not None:
            await self.store.add_event(level, kind, message, data)
        self.publish(
            LogEvent(ts=time.time(), level=level, kind=kind, message=message, data=data or {})
        )

    # -- telemetry and guard ---------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        assert self.sampler is not None
        async for frame in self.sampler.frames():
            self.frame = frame
            previous = self.guard_state
            self.guard_state = self.guard.update(frame)
            await self._log_guard_changes(previous, self.guard_state)
            if not self.guard_state.paused:
                self._paused_since = None
            elif self._paused_since is None:
                self._paused_since = time.time()
            await self._check_alerts()
            self.publish(
                TelemetryEvent(telemetry=telemetry_view(frame), guard=guard_view(self.guard_state))
            )

    async def _check_alerts(self) -> None:
        """Raise and clear alerts (once each); the owner's command hears of both."""
        link = self.link
        game = link.game if link is not None else None
        inputs = AlertInputs(
            now=time.time(),
            frame=self.frame,
            guard=self.guard_state,
            paused_since=self._paused_since,
            offline_since=link.since_ts if link is not None and link.state == "offline" else None,
            broker=link.display_url if link is not None else "",
            wallet=game.wallet if game is not None else None,
            quests=game.quests.quests if game is not None and game.quests is not None else (),
            up_since=self.started_ts,
        )
        raised, cleared = self.alerts.evaluate(inputs)
        for alert in raised:
            await self.emit_log("warning", "alert", alert.message, {"alert": alert.id})
            self.alerts.run_command(alert, "raised")
        for alert in cleared:
            await self.emit_log("info", "alert", f"cleared: {alert.message}", {"alert": alert.id})
            self.alerts.run_command(alert, "cleared")

    async def _log_guard_changes(self, before: GuardState | None, after: GuardState) -> None:
        was = {g.index: g.paused for g in before.per_gpu} if before else {}
        for gpu in after.per_gpu:
            if gpu.paused and not was.get(gpu.index, False):
                await self.emit_log("warning", "guard", f"GPU {gpu.index} {gpu.reason}")
            elif not gpu.paused and was.get(gpu.index, False):
                await self.emit_log("info", "guard", f"GPU {gpu.index} resumed")

    # -- state and commands ----------------------------------------------------------------

    async def snapshot(self) -> NodeSnapshot:
        return await node_snapshot(self)

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started_mono, 3)

    async def command(self, request: Request[R]) -> R:
        """Answer a command of ``core.api.commands``; CommandError when refused."""
        return await self.commands.run(request)

    async def run_benchmark(self, *, quick: bool = True, join: bool = False) -> BenchmarkResult:
        """Run the benchmark suite in the kernel thread, publishing progress events.

        One runs at a time: another is refused, or with ``join`` its result is awaited.
        """
        if self.bench.running:
            if join:
                return await self.bench.join()
            raise CommandError("a benchmark is already running")
        if self.backend_error:
            raise CommandError(self.backend_error)
        if self.guard_state is not None and self.guard_state.paused:
            raise CommandError(f"work is paused ({self.guard_state.summary()})")
        return await self.bench.run(quick=quick)

    async def _after_benchmark(self, result: BenchmarkResult) -> None:
        if self.link is not None:
            # Display only: the hello carries it; the network measures capability itself.
            await self.link.announce()
