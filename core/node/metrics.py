"""Prometheus metrics of a running node: ``[metrics] listen = "127.0.0.1:9400"``.

prometheus-client's HTTP server answers scrapes in its own threads. It never touches the
node or the event loop: the node's side (``MetricsServer.following``, a task on the loop)
takes a snapshot after each telemetry frame and hands it over under a lock, and the
collector renders whatever snapshot it holds. A scrape therefore costs the node nothing and
shows state at most one telemetry interval old.

Names follow Prometheus conventions (base units, ``_ratio``, ``_total`` counters); money is
OMNIT as a float (a metric is for graphs; the wallet keeps exact base units).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from core.api.events import TelemetryEvent
from core.api.views import NodeSnapshot
from core.config import Config
from core.config_values import split_listen
from core.errors import ConfigError
from core.money import BASE_UNITS_PER_OMNIT

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from core.node.service import Node

log = logging.getLogger("omnitensor.node")

_GPU_LABELS = ("gpu", "uuid", "name")


class SnapshotCache:
    """The node's last snapshot, handed from the event loop to the scrape threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: NodeSnapshot | None = None

    def set(self, snapshot: NodeSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def get(self) -> NodeSnapshot | None:
        # NodeSnapshot is frozen and built afresh each time: the reader may keep it.
        with self._lock:
            return self._snapshot


def _omnit(base_units: int) -> float:
    return base_units / BASE_UNITS_PER_OMNIT


def snapshot_metrics(snap: NodeSnapshot) -> Iterator[Metric]:
    """The metric families of one snapshot."""
    info = InfoMetricFamily("omnitensor", "The node: version, id, name and compute backend")
    info.add_metric(
        [],
        {
            "version": snap.node.version,
            "node_id": snap.node.id,
            "name": snap.node.name,
            "backend": snap.backend.name,
        },
    )
    yield info
    started = GaugeMetricFamily(
        "omnitensor_start_time_seconds", "When the node started, seconds since the epoch"
    )
    started.add_metric([], snap.node.started_ts)
    yield started

    yield from _gpu_metrics(snap)

    paused = GaugeMetricFamily(
        "omnitensor_guard_paused",
        "1 while the thermal/power guard holds the GPU's work back",
        labels=["gpu"],
    )
    for gpu in snap.guard.gpus if snap.guard is not None else ():
        paused.add_metric([str(gpu.index)], 1.0 if gpu.paused else 0.0)
    yield paused

    counters = snap.counters
    units = CounterMetricFamily(
        "omnitensor_work_units",
        "Work units by state: submitted (committed), acknowledged (a verdict came), rejected",
        labels=["state"],
    )
    units.add_metric(["submitted"], counters.submitted)
    units.add_metric(["acknowledged"], counters.acknowledged)
    units.add_metric(["rejected"], counters.rejected)
    yield units
    credited = CounterMetricFamily(
        "omnitensor_work_credited_omnit", "OMNIT credited for verified work units"
    )
    credited.add_metric([], _omnit(counters.credited))
    yield credited
    pending = GaugeMetricFamily(
        "omnitensor_outbox_pending", "Messages waiting in the store-and-forward outbox"
    )
    pending.add_metric([], counters.outbox_pending)
    yield pending

    link = GaugeMetricFamily("omnitensor_link_up", "1 while connected to the network's broker")
    link.add_metric([], 1.0 if snap.link.state == "connected" else 0.0)
    yield link

    if snap.wallet is not None:  # unknown until the coordinator answered
        balance = GaugeMetricFamily("omnitensor_balance_omnit", "The wallet's balance, OMNIT")
        balance.add_metric([], _omnit(snap.wallet.balance))
        yield balance
        today = GaugeMetricFamily("omnitensor_earned_today_omnit", "OMNIT earned today (UTC)")
        today.add_metric([], _omnit(snap.wallet.earned_today))
        yield today


def _gpu_metrics(snap: NodeSnapshot) -> Iterator[Metric]:
    def family(name: str, help_text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, help_text, labels=list(_GPU_LABELS))

    util = family("omnitensor_gpu_utilization_ratio", "GPU busy time, 0..1")
    used = family("omnitensor_gpu_memory_used_bytes", "GPU memory in use")
    total = family("omnitensor_gpu_memory_total_bytes", "GPU memory in all")
    temp = family("omnitensor_gpu_temperature_celsius", "GPU core temperature")
    power = family("omnitensor_gpu_power_watts", "GPU power draw")
    clock = family("omnitensor_gpu_clock_sm_hertz", "GPU SM clock")
    for gpu in snap.telemetry.gpus if snap.telemetry is not None else ():
        if gpu.error:
            continue
        labels = [str(gpu.index), gpu.uuid or "", gpu.name or ""]
        values: list[tuple[GaugeMetricFamily, float | None]] = [
            (util, None if gpu.utilization_pct is None else gpu.utilization_pct / 100),
            (used, gpu.memory_used_bytes),
            (total, gpu.memory_total_bytes),
            (temp, gpu.temperature_c),
            (power, gpu.power_w),
            (clock, None if gpu.clock_sm_mhz is None else gpu.clock_sm_mhz * 1e6),
        ]
        for metric, value in values:
            if value is not None:  # not reported by this GPU: no sample, not a fake 0
                metric.add_metric(labels, float(value))
    yield from (util, used, total, temp, power, clock)


class NodeCollector(Collector):
    """Renders the cached snapshot on each scrape (in the server's thread)."""

    def __init__(self, cache: SnapshotCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        snap = self._cache.get()
        if snap is None:
            return iter(())
        return snapshot_metrics(snap)


class MetricsServer:
    """The ``/metrics`` endpoint: bound on enter (an unusable address is a ConfigError),
    fed while in ``following(node)``, shut down on exit."""

    def __init__(self, listen: str) -> None:
        self.host, self.port = split_listen(listen)
        self.cache = SnapshotCache()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(self.cache))
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def __aenter__(self) -> MetricsServer:
        try:
            # Off the loop: resolving a host name may block.
            self._httpd, self._thread = await asyncio.to_thread(
                start_http_server, self.port, self.host, self.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics listen {self.host}:{self.port}: cannot serve there "
                f"({exc.strerror or exc})"
            ) from None
        log.info("metrics on %s", self.url, extra={"kind": "metrics"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._httpd is not None:
            httpd, self._httpd = self._httpd, None
            await asyncio.to_thread(_shutdown, httpd, self._thread)

    @contextlib.asynccontextmanager
    async def following(self, node: Node) -> AsyncIterator[None]:
        """Keep the cache current while in the context: a snapshot now and after each
        telemetry frame. Leave it before the node stops."""
        task = asyncio.create_task(self._follow(node), name="node.metrics")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, node: Node) -> None:
        async with node.subscribe() as queue:
            await self._refresh(node)
            while True:
                event = await queue.get()
                if isinstance(event, TelemetryEvent):
                    await self._refresh(node)

    async def _refresh(self, node: Node) -> None:
        try:
            self.cache.set(await node.snapshot())
        except Exception as exc:  # a store hiccup must not end the metrics
            log.warning("metrics: no snapshot (%r)", exc, extra={"kind": "metrics"})


def _shutdown(httpd: WSGIServer, thread: threading.Thread | None) -> None:
    httpd.shutdown()  # waits for serve_forever to return (it polls every 0.5 s)
    httpd.server_close()
    if thread is not None:
        thread.join(timeout=5)


async def serve_metrics(config: Config, stack: contextlib.AsyncExitStack) -> MetricsServer | None:
    """Bind the configured metrics endpoint on ``stack`` (None when not configured).

    Called before the node starts, so an address in use stops the start with one line
    before anything else changes.
    """
    if config.metrics_listen is None:
        return None
    return await stack.enter_async_context(MetricsServer(config.metrics_listen))
