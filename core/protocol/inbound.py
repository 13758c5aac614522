"""Receiving: the checks an authentic message must still pass (topic, sender, clock, replay)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Final

from core.errors import ProtocolError
from core.protocol.envelope import MAX_MESSAGE_BYTES, Message, decode
from core.protocol.topics import DEFAULT_TOPICS, Topics

log = logging.getLogger("omnitensor.protocol")

DEFAULT_MAX_FUTURE_SKEW_S: Final = 600.0
DEFAULT_REPLAY_WINDOW: Final = 64


LoadHighWater = Callable[[str, str], int]


class InboundFilter:
    """Stateful guard deciding whether an authentic message is acceptable on a topic.

    Checks, in order: the topic is ours; the message type belongs on it; the sender may speak
    there (a node only on its own ``node/{id}/...`` topics, the coordinator's topics only from
    a pinned ``coordinator_ids`` key); the optional ``allowed_senders`` list; the timestamp is
    not too far in the future (nor older than ``max_age_s`` when set); and it is not a replay.

    Replay state is one high-water seq per (sender, topic) stream. Streams are per topic because
    MQTT only orders messages within a topic: a last will signed at connect time, or a retained
    message delivered on subscribe, would otherwise look older than the sender's later traffic
    on other topics. A window of ``replay_window`` seqs below the high water is accepted once
    each, because a QoS 1 message resent after a reconnect can arrive after newer ones. A
    retained message equal to the high water is accepted again: re-subscribing re-delivers it.

    Persist :attr:`high_water` (``{(sender, topic): seq}``) and hand values back through
    ``load_high_water(sender, topic)`` to keep replay protection across restarts.
    """

    def __init__(
        self,
        *,
        coordinator_ids: Collection[str] = (),
        allowed_senders: Collection[str] | None = None,
        max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
        max_age_s: float | None = None,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        load_high_water: LoadHighWater | None = None,
        topics: Topics = DEFAULT_TOPICS,
        clock: Callable[[], float] = time.time,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        if replay_window < 0:
            raise ValueError("replay_window must be >= 0")
        self.coordinator_ids = frozenset(coordinator_ids)
        self.allowed_senders = None if allowed_senders is None else frozenset(allowed_senders)
        self.max_future_skew_s = max_future_skew_s
        self.max_age_s = max_age_s
        self.replay_window = replay_window
        self.topics = topics
        self.max_bytes = max_bytes
        self.drops: Counter[str] = Counter()
        self._load_high_water = load_high_water
        self._clock = clock
        # (sender, topic) -> [high water, bitmask of seen seqs: bit i is high - i].
        self._streams: dict[tuple[str, str], list[int]] = {}
        # Streams whose high-water message came from the broker's retained store and whose
        # live delivery may still follow (a subscription racing the publish delivers both).
        self._retained_high: set[tuple[str, str]] = set()
        self._mask = (1 << (replay_window + 1)) - 1

    @property
    def high_water(self) -> dict[tuple[str, str], int]:
        """A snapshot of the highest accepted seq per (sender, topic), for persisting."""
        return {key: state[0] for key, state in self._streams.items()}

    def receive(
        self, payload: bytes | bytearray | memoryview, *, topic: str, retained: bool = False
    ) -> Message | None:
        """Decode and check one MQTT payload; None (after one log line) when it is dropped."""
        try:
            message = decode(payload, max_bytes=self.max_bytes)
        except ProtocolError as exc:
            self._drop(exc.reason, topic, exc.detail)
            return None
        reason = self.accept(message, topic=topic, retained=retained)
        return None if reason is not None else message

    def accept(self, message: Message, *, topic: str, retained: bool = False) -> str | None:
        """None when ``message`` is acceptable on ``topic`` (and record its seq), else why not.

        Pass ``retained=True`` for a message the broker delivered from its retained store.
        """
        reason = self._check(message, topic, retained)
        if reason is not None:
            self._drop(reason, topic, f"{message.type} from {message.sender[:12]}")
        return reason

    def _check(self, message: Message, topic: str, retained: bool) -> str | None:
        info = self.topics.parse(topic)
        if info is None:
            return "unknown topic"
        kinds = type(message.data).TOPIC_KINDS
        if kinds and info.kind not in kinds:
            return f"{message.type} does not belong on {info.kind}"
        if info.spec.origin == "node":
            if message.sender != info.node_id:
                return "sender does not own the topic"
        elif message.sender not in self.coordinator_ids:
            return "sender is not the pinned coordinator"
        if self.allowed_senders is not None and message.sender not in self.allowed_senders:
            return "sender not allowed"
        now = self._clock()
        if message.ts > now + self.max_future_skew_s:
            return "timestamp too far in the future"
        if self.max_age_s is not None and message.ts < now - self.max_age_s:
            return "message too old"
        return self._check_seq(message.sender, topic, message.seq, retained)

    def _check_seq(self, sender: str, topic: str, seq: int, retained: bool) -> str | None:
        key = (sender, topic)
        state = self._streams.get(key)
        if state is None:
            high = self._load_high_water(sender, topic) if self._load_high_water else 0
            state = [high, 1 if high > 0 else 0]
            self._streams[key] = state
        high, seen = state
        if seq > high:
            shift = seq - high
            state[0] = seq
            state[1] = ((seen << shift) | 1) & self._mask if shift <= self.replay_window else 1
            if retained:
                self._retained_high.add(key)
            else:
                self._retained_high.discard(key)
            return None
        if seq == high and retained:
            return None
        if seq == high and key in self._retained_high:
            # The live twin of the retained copy just delivered: the same message, once.
            self._retained_high.discard(key)
            return None
        behind = high - seq
        if behind > self.replay_window:
            return "replayed or stale seq"
        if seen >> behind & 1:
            return "replayed seq"
        state[1] = seen | (1 << behind)
        return None

    def _drop(self, reason: str, topic: str, detail: str) -> None:
        self.drops[reason] += 1
        log.warning("dropped message on %s: %s (%s)", topic[:200], reason, detail[:200])
