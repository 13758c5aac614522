"""What the coordinator's parts share: settings, the stores, per-node scheduling state, stats."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import BrokerConfig
from core.coordinator.game_store import GameService
from core.coordinator.store import CoordinatorStore
from core.game.rules import GameRules

# Publishes a signed payload: (topic, type name, payload, retain) -> None; raises MqttError.
Publish = Callable[[str, str, Any, bool], Awaitable[None]]


@dataclass
class CoordinatorSettings:
    data_dir: Path
    broker_url: str
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    # A unit is sized to take this long at the node's measured rate; the next is issued
    # once it is judged and ``task_interval_s`` after the last one was issued.
    unit_seconds: float = 2.0
    task_interval_s: float = 10.0
    samples: int = 32  # blocks drawn per unit (docs/work-units.md: P(caught) vs f)
    # A node heartbeats (re-sends its hello) every minute; silent this long, it gets no work.
    ghost_after_s: float = 150.0
    board_interval_s: float = 5.0
    batch_max: int = 256
    # The starter balance (assets/game.toml [inference] starter_omnit) is granted to new
    # nodes only where this is set: the embedded local network and devnet, never production.
    starter_grants: bool = False
    quality_interval_s: float = 1800.0  # a node gets a quality round about this often
    quality_bank: Path | None = None  # None: the shipped (public) bank
    liveness_interval_s: float = 3600.0  # one liveness credit per node per window
    # Room for data uploads in progress (pieces of datasets not committed yet), all nodes.
    data_staging_bytes: int = 1 << 30
    rules: GameRules | None = None  # None: assets/game.toml


@dataclass
class WorkerSlot:
    """One of a node's devices, as the scheduler sees it: sized and measured on its own."""

    open_task: str | None = None
    next_issue: float = 0.0
    sizing_rate: float = 1e9  # FLOP/s its next unit is sized for (measured, grown, halved)
    rates: deque[float] = field(default_factory=lambda: deque(maxlen=3))  # measured, FLOP/s
    missed: int = 0  # deadlines missed in a row


@dataclass
class NodeState:
    """What the scheduler knows of one node (in memory; the store keeps the record)."""

    name: str = ""
    online: bool = False
    last_traffic: float = 0.0  # the last authentic message from it (hello is its heartbeat)
    workers: list[WorkerSlot] = field(default_factory=lambda: [WorkerSlot()])
    bench_wanted: bool = False  # the node asked for a benchmark unit
    models: frozenset[str] = frozenset()  # it says it serves these (PoI checks every answer)
    # Set by quality rounds: 0 gets no inference tasks, 2 is preferred; 1 until tested.
    tier: int = 1
    inference_open: set[str] = field(default_factory=set)  # its inference tasks in flight
    quality_open: str | None = None  # its quality round in flight
    next_quality: float = 0.0

    def slot(self, worker: int) -> WorkerSlot:
        """A worker's slot; one the node no longer announces is kept while it has a unit."""
        while len(self.workers) <= worker:
            self.workers.append(WorkerSlot(sizing_rate=self.workers[0].sizing_rate))
        return self.workers[worker]

    @property
    def open_tasks(self) -> list[str]:
        return [w.open_task for w in self.workers if w.open_task is not None]


@dataclass
class CoordinatorState:
    """Shared by the scheduler, the ingest, the request handlers and the publisher."""

    settings: CoordinatorSettings
    node_id: str
    store: CoordinatorStore
    game: GameService
    publish: Publish
    is_connected: Callable[[], bool]
    nodes: dict[str, NodeState] = field(default_factory=dict)
    # node -> [(from, to)]: time its verified units vouch it was online (liveness, uptime)
    covered: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    stats: dict[str, int] = field(
        default_factory=lambda: {"verified": 0, "rejected": 0, "duplicates": 0, "dropped": 0}
    )
    boards_dirty: bool = True

    def node(self, node_id: str) -> NodeState:
        return self.nodes.setdefault(node_id, NodeState())

    async def has_work_on_record(self, node_id: str) -> bool:
        """The quests' sybil gate, shared by quality rounds and data validation: enough
        verified work units on record (``min_verified_units``) to be trusted with more."""
        need = self.game.rules.quest_rules.min_verified_units
        verified, _credited = await self.store.verified_since(node_id, 0.0)
        return verified >= need
