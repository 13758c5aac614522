"""The node's snapshot: its whole state in one view, built from its parts (``core.node.views``
turns each part into its view)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Protocol

from core import __version__
from core.api.views import NO_LINK, AlertView, BackendInfo, NodeInfo, NodeSnapshot
from core.identity import short_id
from core.node.views import (
    counters_view,
    cpu_view,
    guard_view,
    last_benchmark_view,
    telemetry_view,
    work_view,
    workers_view,
)

if TYPE_CHECKING:
    from core.api.network import Wallet
    from core.api.views import ModelView
    from core.config import Config
    from core.node.alerts import AlertMonitor
    from core.node.bench import Benchmarks
    from core.node.devices import WorkDevice
    from core.node.frames import TelemetryFrame
    from core.node.guard import GuardState
    from core.node.link import NetworkLink
    from core.node.store import NodeStore


class Node(Protocol):
    """What the snapshot reads of the node (``core.node.service.Node``)."""

    config: Config
    store: NodeStore | None
    link: NetworkLink | None
    devices: list[WorkDevice]
    bench: Benchmarks
    alerts: AlertMonitor
    frame: TelemetryFrame | None
    guard_state: GuardState | None
    model: ModelView | None
    backend_name: str
    backend_device: str
    backend_error: str | None
    backend_note: str | None
    started_ts: float

    @property
    def node_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def uptime_s(self) -> float: ...

    def work_paused(self, device: int | None = None) -> bool: ...


async def node_snapshot(node: Node) -> NodeSnapshot:
    """The node's whole state as front ends see it (``NodeAPI.snapshot``)."""
    assert node.store is not None
    game = node.link.game if node.link is not None else None
    return NodeSnapshot(
        node=NodeInfo(
            id=node.node_id,
            short_id=short_id(node.node_id),
            name=node.display_name,
            version=__version__,
            pid=os.getpid(),
            data_dir=str(node.config.data_dir),
            started_ts=node.started_ts,
            uptime_s=node.uptime_s,
        ),
        backend=BackendInfo(
            name=node.backend_name,
            device=node.backend_device,
            error=node.backend_error,
            note=node.backend_note,
        ),
        telemetry=telemetry_view(node.frame) if node.frame is not None else None,
        guard=guard_view(node.guard_state) if node.guard_state is not None else None,
        work=work_view(
            benchmarking=node.bench.running,
            progress=node.bench.progress,
            guard=node.guard_state,
        ),
        model=node.model,
        inference=node.link.inference.view() if node.link is not None else None,
        cpu=await asyncio.to_thread(cpu_view, node.backend_device),
        **await _earnings(node.store, game.wallet if game is not None else None),
        alerts=tuple(
            AlertView(id=a.id, kind=a.kind, message=a.message, since_ts=a.since_ts)
            for a in node.alerts.active.values()
        ),
        workers=workers_view(node.link.workers, node.devices, node.work_paused)
        if node.link is not None
        else (),
        link=node.link.view() if node.link is not None else NO_LINK,
        counters=counters_view(await node.store.work_counters()),
        leaderboards=dict(game.leaderboards) if game is not None else {},
        wallet=game.wallet if game is not None else None,
        quests=game.quests.quests if game is not None and game.quests is not None else None,
        season=game.season if game is not None else None,
        multiplier=game.multipliers if game is not None else None,
        governance=game.proposals if game is not None else None,
        last_benchmark=last_benchmark_view(await node.store.last_benchmark()),
    )


async def _earnings(store: NodeStore, wallet: Wallet | None) -> dict[str, tuple[int, ...]]:
    """Work pay per hour (24 h) and per day (7 d): the coordinator's ledger, which counts
    every kind of work; before its first answer, the receipts this node holds (units only)."""
    if wallet is not None and wallet.work_hourly and wallet.work_daily:
        return {"earnings_hourly": wallet.work_hourly, "earnings_daily": wallet.work_daily}
    now = time.time()
    return {
        "earnings_hourly": await store.hourly_credits(now),
        "earnings_daily": await store.credits_by_period(now, 86400, 7),
    }
