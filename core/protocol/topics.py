"""The MQTT topic tree under ``omnitensor/v1``: who publishes each topic, retained or not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

TOPIC_PREFIX: Final = "omnitensor/v2"
_NODE_ID_RE: Final = re.compile(r"[0-9a-f]{64}")
_SEGMENT_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

# --------------------------------------------------------------------------------------------
# Topics


TopicOrigin = Literal["node", "coordinator"]


@dataclass(frozen=True)
class TopicSpec:
    """How a topic kind is used: who publishes it, whether it is retained, at which QoS."""

    kind: str
    origin: TopicOrigin
    retained: bool
    qos: int


# All at QoS 1: every message here is either state (retained) or something a peer must not
# silently lose (work, receipts, tasks, answers); QoS 0 would save nothing that matters.
TOPIC_SPECS: Final[dict[str, TopicSpec]] = {
    spec.kind: spec
    for spec in (
        # Retained so a late subscriber (a restarted coordinator, a new console) sees state.
        TopicSpec("node.presence", "node", retained=True, qos=1),
        TopicSpec("node.hello", "node", retained=True, qos=1),
        TopicSpec("node.work", "node", retained=False, qos=1),
        TopicSpec("node.request", "node", retained=False, qos=1),
        TopicSpec("node.receipt", "coordinator", retained=False, qos=1),
        TopicSpec("node.task", "coordinator", retained=False, qos=1),
        TopicSpec("node.response", "coordinator", retained=False, qos=1),
        TopicSpec("coordinator.presence", "coordinator", retained=True, qos=1),
        TopicSpec("net.leaderboard", "coordinator", retained=True, qos=1),
        TopicSpec("net.quests", "coordinator", retained=True, qos=1),
        TopicSpec("net.season", "coordinator", retained=True, qos=1),
        TopicSpec("net.events", "coordinator", retained=True, qos=1),
        TopicSpec("net.governance", "coordinator", retained=True, qos=1),
    )
}
_NODE_LEAVES: Final = frozenset(k.split(".", 1)[1] for k in TOPIC_SPECS if k.startswith("node."))
_NET_LEAVES: Final = frozenset({"quests", "season", "events"})


@dataclass(frozen=True)
class TopicInfo:
    """A parsed topic: its kind and the node id or category it names."""

    kind: str
    spec: TopicSpec
    node_id: str | None = None
    category: str | None = None


def _check_node_id(node_id: str) -> str:
    if not _NODE_ID_RE.fullmatch(node_id):
        raise ValueError(f"not a node id: {node_id!r}")
    return node_id


class Topics:
    """Builds and parses the topic tree under one prefix (``omnitensor/v1`` by default).

    Names passed in are checked so that no caller can build a topic containing ``/``, ``+``
    or ``#`` from untrusted input.
    """

    def __init__(self, prefix: str = TOPIC_PREFIX) -> None:
        if not prefix or prefix.endswith("/") or any(c in prefix for c in "+#"):
            raise ValueError(f"bad topic prefix: {prefix!r}")
        self.prefix = prefix

    # Node topics: published by the node, except receipt/task/response (by the coordinator).
    def node(self, node_id: str, leaf: str) -> str:
        if leaf not in _NODE_LEAVES:
            raise ValueError(f"unknown node topic: {leaf!r}")
        return f"{self.prefix}/node/{_check_node_id(node_id)}/{leaf}"

    def node_presence(self, node_id: str) -> str:
        return self.node(node_id, "presence")

    def node_hello(self, node_id: str) -> str:
        return self.node(node_id, "hello")

    def node_work(self, node_id: str) -> str:
        return self.node(node_id, "work")

    def node_receipt(self, node_id: str) -> str:
        return self.node(node_id, "receipt")

    def node_task(self, node_id: str) -> str:
        return self.node(node_id, "task")

    def node_request(self, node_id: str) -> str:
        return self.node(node_id, "request")

    def node_response(self, node_id: str) -> str:
        return self.node(node_id, "response")

    @property
    def coordinator_presence(self) -> str:
        return f"{self.prefix}/coordinator/presence"

    def leaderboard(self, category: str) -> str:
        if not _SEGMENT_RE.fullmatch(category):
            raise ValueError(f"bad leaderboard category: {category!r}")
        return f"{self.prefix}/net/leaderboard/{category}"

    @property
    def quests(self) -> str:
        return f"{self.prefix}/net/quests"

    @property
    def season(self) -> str:
        return f"{self.prefix}/net/season"

    @property
    def events(self) -> str:
        return f"{self.prefix}/net/events"

    def governance(self, proposal_id: str) -> str:
        """A proposal and its tally (docs/governance.md); the id is a topic segment."""
        if not _SEGMENT_RE.fullmatch(proposal_id):
            raise ValueError(f"bad proposal id: {proposal_id!r}")
        return f"{self.prefix}/net/governance/{proposal_id}"

    # Subscription filters.
    def any_node(self, leaf: str) -> str:
        """``<prefix>/node/+/<leaf>``, e.g. every node's work results."""
        if leaf not in _NODE_LEAVES:
            raise ValueError(f"unknown node topic: {leaf!r}")
        return f"{self.prefix}/node/+/{leaf}"

    @property
    def all_leaderboards(self) -> str:
        return f"{self.prefix}/net/leaderboard/+"

    @property
    def all_net(self) -> str:
        return f"{self.prefix}/net/#"

    def coordinator_subscriptions(self) -> list[str]:
        """What a coordinator subscribes to."""
        return [self.any_node(leaf) for leaf in ("presence", "hello", "work", "request")]

    def node_subscriptions(self, node_id: str) -> list[str]:
        """What a node subscribes to: its inbox, the coordinator's presence, the net state."""
        return [
            self.node_receipt(node_id),
            self.node_task(node_id),
            self.node_response(node_id),
            self.coordinator_presence,
            self.all_net,
        ]

    def parse(self, topic: str) -> TopicInfo | None:
        """The kind of ``topic``, or None when it is not one of ours (or names a bad id)."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        match topic[len(head) :].split("/"):
            case ["node", node_id, leaf] if leaf in _NODE_LEAVES and _NODE_ID_RE.fullmatch(node_id):
                kind = f"node.{leaf}"
                return TopicInfo(kind, TOPIC_SPECS[kind], node_id=node_id)
            case ["coordinator", "presence"]:
                return TopicInfo("coordinator.presence", TOPIC_SPECS["coordinator.presence"])
            case ["net", "leaderboard", category] if _SEGMENT_RE.fullmatch(category):
                return TopicInfo(
                    "net.leaderboard", TOPIC_SPECS["net.leaderboard"], category=category
                )
            case ["net", "governance", proposal_id] if _SEGMENT_RE.fullmatch(proposal_id):
                # The proposal id rides in ``category``: the topic's one variable segment.
                spec = TOPIC_SPECS["net.governance"]
                return TopicInfo("net.governance", spec, category=proposal_id)
            case ["net", leaf] if leaf in _NET_LEAVES:
                return TopicInfo(f"net.{leaf}", TOPIC_SPECS[f"net.{leaf}"])
        return None


DEFAULT_TOPICS: Final = Topics()
