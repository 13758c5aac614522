"""What the coordinator's parts share: settings, the stores, per-node scheduling state, stats."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import BrokerConfig
from core.coordinator.game_store import GameService
from core.coordinator.store import CoordinatorStore

# Publishes a signed payload: (topic, type name, payload, retain) -> None; raises MqttError.
Publish = Callable[[str, str, Any, bool], Awaitable[None]]


@dataclass
class CoordinatorSettings:
    data_dir: Path
    broker_url: str
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    task_interval_s: float = 10.0  # one work unit covers this much shared time
    task_n: int = 128
    task_dtype: str = "float32"
    board_interval_s: float = 5.0
    freivalds_rounds: int = 2
    batch_max: int = 256
    liveness_interval_s: float = 3600.0  # one liveness credit per node per window


@dataclass
class NodeState:
    """What the scheduler knows of one node (in memory; the store keeps the record)."""

    open_task: str | None = None
    open_deadline: float = 0.0
    next_issue: float = 0.0
    online: bool = False
    tflops_claim: float = 0.0


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
    last_work: dict[str, float] = field(default_factory=dict)  # node -> last verified work
    stats: dict[str, int] = field(
        default_factory=lambda: {"verified": 0, "rejected": 0, "duplicates": 0, "dropped": 0}
    )
    boards_dirty: bool = True

    def node(self, node_id: str) -> NodeState:
        return self.nodes.setdefault(node_id, NodeState())
