"""The node: owns the data dir, identity, store, telemetry, guard and work.

One ``Node`` runs per data dir (an advisory lock enforces it). It publishes events to
subscribers (the console, the control socket, the headless logger) and answers commands.
Blocking work never runs on the event loop: NVML runs in the sampler's own thread, kernels
in one kernel thread (which owns the CUDA context on a GPU), sqlite in aiosqlite's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from core import __version__
from core.api.client import JSON
from core.config import Config
from core.datadir import DataDirLock, prepare_data_dir
from core.errors import CommandError
from core.identity import Identity, load_or_create_identity, short_id
from core.node.guard import GuardConfig, GuardState, ThermalGuard
from core.node.store import NodeStore
from core.node.telemetry import GpuSampler, TelemetryFrame

if TYPE_CHECKING:
    from core.node.link import NetworkLink

log = logging.getLogger("omnitensor.node")

# Node commands answered by the coordinator (forwarded over the network link).
# Node command -> coordinator method. "events" is the node's own log, so the network's
# multiplier events are "multipliers" here.
NETWORK_COMMANDS = {
    "leaderboard": "leaderboard",
    "wallet": "wallet",
    "ping": "ping",
    "multipliers": "events",
    "quests": "quests",
    "quest.accept": "quest.accept",
    "quest.claim": "quest.claim",
    "season": "season",
    "stake": "stake",
    "unstake": "unstake",
}
# Commands that change what the console shows: refresh the cached game state after them.
REFRESHING_COMMANDS = frozenset({"quest.accept", "quest.claim", "stake", "unstake"})

# How long `quest start` waits for the coordinator to verify the benchmark unit.
QUEST_START_WAIT_S = 300.0
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
        network_mode: str = "remote",
        resend_interval: float = 30.0,
    ) -> None:
        self.config = config
        # Joined at start when given; ``core.localnet.open_node`` decides it from the config.
        self._network_url = network_url
        self._network_mode = network_mode
        self._resend_interval = resend_interval
        self.link: NetworkLink | None = None
        self._link_task: asyncio.Task[None] | None = None
        self._backend: Any | None = None  # created and used only on the kernel thread
        self._nvml = nvml if nvml is not None else _make_nvml(config)
        self._backend_env = backend_env
        self._lock = DataDirLock(config.lock_path)
        self._subscribers: set[asyncio.Queue[JSON]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._kernel_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernels")
        self._bench_task: asyncio.Task[JSON] | None = None
        self._bench_cancel = False
        self._bench_progress: JSON | None = None
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
        self.frame: TelemetryFrame | None = None
        self.backend_name = "unknown"
        self.backend_device = ""
        self.backend_error: str | None = None
        self.started_ts = 0.0
        self._started_mono = 0.0
        self.stopped = asyncio.Event()
        self.extra_commands: dict[str, Callable[..., Any]] = {}

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
        self, url: str, *, mode: str = "remote", coordinator_key: str | None = None
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
        if await self.store.last_benchmark() is None and not self.backend_error:
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
        from kernels.backend import BackendError, select_backend

        loop = asyncio.get_running_loop()
        try:
            backend = await loop.run_in_executor(
                self._kernel_thread, select_backend, self._backend_env
            )
        except BackendError as exc:
            self.backend_name, self.backend_error = "none", str(exc)
            return
        self.backend_name, self.backend_device = backend.name, backend.device

    async def run_in_kernel_thread(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(backend)`` on the kernel thread (which owns the device context)."""
        from kernels.backend import select_backend

        def call() -> Any:
            if self._backend is None:
                self._backend = select_backend(self._backend_env)
            return fn(self._backend)

        return await asyncio.get_running_loop().run_in_executor(self._kernel_thread, call)

    def work_paused(self) -> bool:
        return self.guard_state is not None and self.guard_state.paused

    async def stop(self) -> None:
        await self.leave_network()
        if self._bench_task is not None and not self._bench_task.done():
            self._bench_cancel = True
            with contextlib.suppress(BaseException):
                await self._bench_task
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
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[JSON]]:
        """A queue receiving every event from now on, until the context exits."""
        queue: asyncio.Queue[JSON] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: JSON) -> None:
        for queue in self._subscribers:
            # A stalled reader loses events; telemetry is superseded by the next frame.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    async def emit_log(
        self, level: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record a node event: the store, the subscribers and the Python log."""
        log.log(logging.getLevelName(level.upper()), message, extra={"kind": kind})
        if self.store is not None:
            await self.store.add_event(level, kind, message, data)
        self.publish(
            {
                "type": "log",
                "ts": time.time(),
                "level": level,
                "kind": kind,
                "message": message,
                "data": data or {},
            }
        )

    # -- telemetry and guard ---------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        assert self.sampler is not None
        async for frame in self.sampler.frames():
            self.frame = frame
            previous = self.guard_state
            self.guard_state = self.guard.update(frame)
            await self._log_guard_changes(previous, self.guard_state)
            self.publish({"type": "telemetry", **self._telemetry_json()})

    async def _log_guard_changes(self, before: GuardState | None, after: GuardState) -> None:
        was = {g.index: g.paused for g in before.per_gpu} if before else {}
        for gpu in after.per_gpu:
            if gpu.paused and not was.get(gpu.index, False):
                await self.emit_log("warning", "guard", f"GPU {gpu.index} {gpu.reason}")
            elif not gpu.paused and was.get(gpu.index, False):
                await self.emit_log("info", "guard", f"GPU {gpu.index} resumed")

    def _telemetry_json(self) -> JSON:
        frame = self.frame
        guard = self.guard_state
        return {
            "telemetry": frame.to_dict() if frame else None,
            "guard": guard_to_json(guard),
        }

    # -- state and commands ----------------------------------------------------------------

    async def snapshot(self) -> JSON:
        assert self.store is not None
        last = await self.store.last_benchmark()
        return {
            "node": {
                "id": self.node_id,
                "short_id": short_id(self.node_id),
                "name": self.display_name,
                "version": __version__,
                "pid": os.getpid(),
                "data_dir": str(self.config.data_dir),
                "started_ts": self.started_ts,
                "uptime_s": round(time.monotonic() - self._started_mono, 3),
            },
            "backend": {
                "name": self.backend_name,
                "device": self.backend_device,
                "error": self.backend_error,
            },
            **self._telemetry_json(),
            "work": self._work_json(),
            "link": self.link.to_json() if self.link else {"mode": "none", "state": "no network"},
            "counters": await self.store.work_counters(),
            "leaderboards": self.link.game.leaderboards if self.link else {},
            **(self.link.game.snapshot() if self.link else {}),
            "last_benchmark": (
                {"ts": last.ts, "verified": last.verified, **last.result} if last else None
            ),
        }

    def _work_json(self) -> JSON:
        if self._bench_task is not None and not self._bench_task.done():
            return {"state": "benchmarking", "progress": self._bench_progress}
        if self.guard_state is not None and self.guard_state.paused:
            return {"state": "paused", "reason": self.guard_state.summary()}
        return {"state": "idle"}

    async def command(self, name: str, **params: Any) -> JSON:
        if name == "snapshot":
            return await self.snapshot()
        if name == "bench":
            return await self.run_benchmark(quick=bool(params.get("quick", True)))
        if name == "events":
            assert self.store is not None
            rows = await self.store.recent_events(int(params.get("limit", 100)))
            return {"events": [row.__dict__ for row in rows]}
        if name in NETWORK_COMMANDS:
            if self.link is None:
                raise CommandError("this node is not on a network (no broker configured)")
            method = NETWORK_COMMANDS[name]
            answer = await self.link.request(method, params)
            if not isinstance(answer, dict):
                raise CommandError(f"{name}: the coordinator sent a malformed answer")
            if name in REFRESHING_COMMANDS:
                self.link.refresh_soon()
            else:
                self.link.game.store_answer(method, answer)
            return answer
        if name == "quest.start":
            return await self._start_quest(str(params.get("id", "")))
        if name in self.extra_commands:
            result: JSON = await self.extra_commands[name](**params)
            return result
        raise CommandError(f"unknown command {name!r}")

    async def _start_quest(self, quest_id: str) -> JSON:
        """A benchmark quest's action: a benchmark unit from the coordinator, verified by it."""
        if self.link is None:
            raise CommandError("this node is not on a network (no broker configured)")
        quest = await self._quest(quest_id)
        if quest.get("action") != "bench":
            raise CommandError(f"quest {quest_id}: has no action to start; it progresses by work")
        if quest.get("state") == "completed":
            return {"message": f"{quest.get('title')} is already complete: claim it"}
        if quest.get("state") not in ("accepted", "in_progress"):
            raise CommandError(f"quest {quest_id}: accept it first (it is {quest.get('state')})")
        await self.link.request_benchmark_unit()
        await self.emit_log("info", "bench", f"benchmark unit requested for {quest.get('title')}")
        # The quest completes when the coordinator has verified the unit this node computes.
        deadline = time.monotonic() + QUEST_START_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            quest = await self._quest(quest_id)
            if quest.get("state") == "completed":
                self.link.refresh_soon()
                return {"message": f"benchmark unit verified for {quest.get('title')}: claim it"}
        raise CommandError(
            f"quest {quest_id}: the benchmark unit was not verified within "
            f"{QUEST_START_WAIT_S:g}s; it still counts if it is"
        )

    async def _quest(self, quest_id: str) -> JSON:
        assert self.link is not None
        quests = await self.link.request("quests", {})
        quest = next((q for q in quests.get("quests", []) if q.get("id") == quest_id), None)
        if quest is None:
            raise CommandError(f"quest {quest_id}: not offered to this node")
        return dict(quest)

    async def run_benchmark(self, *, quick: bool = True) -> JSON:
        """Run the benchmark suite in the kernel thread, publishing progress events."""
        if self._bench_task is not None and not self._bench_task.done():
            raise CommandError("a benchmark is already running")
        if self.backend_error:
            raise CommandError(self.backend_error)
        if self.guard_state is not None and self.guard_state.paused:
            raise CommandError(f"work is paused ({self.guard_state.summary()})")
        self._bench_cancel = False
        self._bench_task = asyncio.create_task(self._benchmark(quick), name="node.benchmark")
        return await asyncio.shield(self._bench_task)

    async def _benchmark(self, quick: bool) -> JSON:
        from kernels.backend import select_backend
        from kernels.suite import run_suite

        loop = asyncio.get_running_loop()

        def progress(stage: str, fraction: float) -> None:
            event = {"type": "bench.progress", "stage": stage, "fraction": fraction}
            loop.call_soon_threadsafe(self._on_bench_progress, event)

        def should_stop() -> bool:
            paused = self.guard_state is not None and self.guard_state.paused
            return self._bench_cancel or paused

        def work() -> dict[str, Any]:
            backend = select_backend(self._backend_env)
            return run_suite(backend, quick=quick, progress=progress, should_stop=should_stop)

        await self.emit_log("info", "bench", f"benchmark started ({'quick' if quick else 'full'})")
        try:
            result = await loop.run_in_executor(self._kernel_thread, work)
        except Exception as exc:
            reason = "cancelled" if type(exc).__name__ == "BenchmarkCancelled" else str(exc)
            await self.emit_log("warning", "bench", f"benchmark stopped: {reason}")
            raise CommandError(f"benchmark stopped: {reason}") from None
        finally:
            self._bench_progress = None
        assert self.store is not None
        await self.store.add_benchmark(result)
        gemm = result.get("gemm", {})
        await self.emit_log(
            "info",
            "bench",
            "benchmark done: fp32 {:.3f} TFLOPS, fp16 {:.3f} TFLOPS, {:.1f} GB/s, "
            "verified {}".format(
                gemm.get("fp32", {}).get("tflops", 0.0),
                gemm.get("fp16", {}).get("tflops", 0.0),
                result.get("bandwidth", {}).get("gbps", 0.0),
                result.get("verified"),
            ),
            {"result": result},
        )
        self.publish({"type": "bench.done", "result": result})
        if self.link is not None:
            # Display only: the hello carries it; the network measures capability itself.
            await self.link.announce()
        return result

    def _on_bench_progress(self, event: JSON) -> None:
        self._bench_progress = {"stage": event["stage"], "fraction": event["fraction"]}
        self.publish(event)


def guard_to_json(guard: GuardState | None) -> JSON | None:
    if guard is None:
        return None
    return {
        "paused": guard.paused,
        "summary": guard.summary(),
        "gpus": [{"index": g.index, "paused": g.paused, "reason": g.reason} for g in guard.per_gpu],
    }
