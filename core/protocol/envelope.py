"""The wire protocol: a versioned MQTT topic tree and signed JSON envelopes.

Every MQTT payload is one UTF-8 JSON envelope::

    {"body": {"v": 1, "type": "hello", "sender": "<node id>", "seq": 7, "ts": 1.7e9,
              "data": {...}},
     "sig": "<base64 Ed25519 signature over the exact bytes of the body value>"}

The signature covers the body bytes *as transmitted*, so the receiver verifies the raw slice
(decoded with ``msgspec.Raw``) and never a re-serialisation, and the sender builds the wire
bytes by concatenation so that slice is exactly what it signed. The envelope stays plain JSON
so ``mosquitto_sub`` and MQTT Explorer can show it.

Receivers treat every inbound payload as hostile: :func:`decode` checks size, JSON, schema and
signature; :class:`InboundFilter` then checks that the sender may speak on the topic, that the
message is not a replay and that its clock is sane. Both give a short reason for each drop.

Amounts of OMNIT are always integers in base units, never floats.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Final, Literal, TypeVar

import msgspec

from core.errors import DataDirError, ProtocolError
from core.identity import Identity, verify_signature

log = logging.getLogger("omnitensor.protocol")

PROTOCOL_VERSION: Final = 1
TOPIC_PREFIX: Final = "omnitensor/v1"
# Larger than any result we expect (a 256x256 float32 product is ~350 kB of base64) yet small
# enough that a hostile peer cannot make a receiver parse megabytes per message.
MAX_MESSAGE_BYTES: Final = 1_048_576
SIGNATURE_BYTES: Final = 64
DEFAULT_MAX_FUTURE_SKEW_S: Final = 600.0
DEFAULT_REPLAY_WINDOW: Final = 64
SEQ_MAX: Final = 2**63 - 1

_NODE_ID_RE: Final = re.compile(r"[0-9a-f]{64}")
_SEGMENT_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_TYPE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


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
            case ["net", leaf] if leaf in _NET_LEAVES:
                return TopicInfo(f"net.{leaf}", TOPIC_SPECS[f"net.{leaf}"])
        return None


DEFAULT_TOPICS: Final = Topics()


# --------------------------------------------------------------------------------------------
# Payload schemas

NodeId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
# Ids chosen by peers end up in logs, file names and SQL: keep them to a safe alphabet.
Ident = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Name = Annotated[str, msgspec.Meta(max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=512)]
Category = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_-]{0,63}$")]
Method = Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_.]{0,63}$")]
DType = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
MatrixSize = Annotated[int, msgspec.Meta(ge=1, le=65_536)]
BaseUnits = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
Rank = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
EntryId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ParamValue = str | int | bool | None

# Bytes per element of each matrix dtype a result may carry; extend when a kernel adds one.
DTYPE_ITEMSIZE: Final[dict[str, int]] = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "int8": 1,
    "int32": 4,
}


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every message payload (the envelope's ``data``).

    Subclasses set ``TYPE`` (the wire type name), optionally ``TOPIC_KINDS`` (the topic kinds
    it may arrive on; empty means any of ours) and register with :func:`register_message_type`.
    Unknown fields are ignored, so a newer sender can add optional fields within ``v: 1``.
    """

    TYPE: ClassVar[str] = ""
    TOPIC_KINDS: ClassVar[frozenset[str]] = frozenset()

    def validate(self) -> None:
        """Checks the schema cannot express; raise :class:`ProtocolError`."""


P = TypeVar("P", bound=Payload)
T = TypeVar("T")

MESSAGE_TYPES: Final[dict[str, type[Payload]]] = {}
_DECODERS: Final[dict[str, msgspec.json.Decoder[Payload]]] = {}


def register_message_type(cls: type[P]) -> type[P]:
    """Class decorator adding a payload type to the registry (type names are unique)."""
    name = cls.TYPE
    if not _TYPE_NAME_RE.fullmatch(name):
        raise ValueError(f"{cls.__name__}: bad message type name {name!r}")
    if name in MESSAGE_TYPES:
        raise ValueError(f"message type {name!r} is already registered")
    unknown = cls.TOPIC_KINDS - TOPIC_SPECS.keys()
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown topic kinds {sorted(unknown)}")
    MESSAGE_TYPES[name] = cls
    _DECODERS[name] = msgspec.json.Decoder(cls)
    return cls


def _b64decode_strict(value: str, field: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad-base64", f"{field} is not valid base64") from None


@register_message_type
class Hello(Payload, frozen=True, kw_only=True):
    """A node announces itself and its hardware (retained)."""

    TYPE = "hello"
    TOPIC_KINDS = frozenset({"node.hello"})

    name: Name
    version: Name
    backend: Name
    device: Text
    gpus: Annotated[list[Text], msgspec.Meta(max_length=64)]
    gemm_tflops: NonNegFloat


@register_message_type
class Presence(Payload, frozen=True, kw_only=True):
    """Online/offline state of a node or the coordinator (retained; offline is the will)."""

    TYPE = "presence"
    TOPIC_KINDS = frozenset({"node.presence", "coordinator.presence"})

    online: bool


@register_message_type
class WorkResult(Payload, frozen=True, kw_only=True):
    """A node's answer to a task; ``work_id`` is unique per node (the credit key)."""

    TYPE = "work.result"
    TOPIC_KINDS = frozenset({"node.work"})

    work_id: Ident
    task_id: Ident
    kind: Name
    seed: Seed
    n: MatrixSize
    dtype: DType
    commitment: Text
    result_b64: str
    elapsed_s: NonNegFloat
    tflops: NonNegFloat

    def validate(self) -> None:
        if self.dtype not in DTYPE_ITEMSIZE:
            raise ProtocolError("bad-payload", f"unknown dtype {self.dtype!r}")
        if self.kind != "gemm":
            raise ProtocolError("bad-payload", f"unknown work kind {self.kind!r}")
        size = len(_b64decode_strict(self.result_b64, "result_b64"))
        if size != self.n * self.n * DTYPE_ITEMSIZE[self.dtype]:
            raise ProtocolError("bad-payload", f"result is {size} bytes, not {self.n}x{self.n}")

    def result_bytes(self) -> bytes:
        """The product matrix bytes (row-major)."""
        return _b64decode_strict(self.result_b64, "result_b64")


@register_message_type
class Receipt(Payload, frozen=True, kw_only=True):
    """The coordinator's verdict on one work result."""

    TYPE = "receipt"
    TOPIC_KINDS = frozenset({"node.receipt"})

    work_id: Ident
    accepted: bool
    reason: Text
    credited_base_units: BaseUnits
    entry_id: EntryId | None


@register_message_type
class TaskGemm(Payload, frozen=True, kw_only=True):
    """A GEMM task for one node: multiply two seeded n x n matrices before the deadline."""

    TYPE = "task.gemm"
    TOPIC_KINDS = frozenset({"node.task"})

    task_id: Ident
    seed: Seed
    n: MatrixSize
    dtype: DType
    deadline_ts: NonNegFloat

    def validate(self) -> None:
        if self.dtype not in DTYPE_ITEMSIZE:
            raise ProtocolError("bad-payload", f"unknown dtype {self.dtype!r}")


class LeaderboardEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One row of a leaderboard."""

    rank: Rank
    node_id: NodeId
    name: Name
    amount_base_units: BaseUnits


@register_message_type
class Leaderboard(Payload, frozen=True, kw_only=True):
    """The standings of one category for a season (retained)."""

    TYPE = "leaderboard"
    TOPIC_KINDS = frozenset({"net.leaderboard"})

    category: Category
    season: Name
    entries: Annotated[list[LeaderboardEntry], msgspec.Meta(max_length=1000)]
    updated_ts: NonNegFloat


@register_message_type
class Request(Payload, frozen=True, kw_only=True):
    """A node's query to the coordinator (leaderboard, wallet, ...)."""

    TYPE = "request"
    TOPIC_KINDS = frozenset({"node.request"})

    request_id: Ident
    method: Method
    params: Annotated[dict[Name, ParamValue], msgspec.Meta(max_length=64)]


@register_message_type
class Response(Payload, frozen=True, kw_only=True):
    """The coordinator's answer to one request; ``result`` is JSON kept raw until asked for."""

    TYPE = "response"
    TOPIC_KINDS = frozenset({"node.response"})

    request_id: Ident
    ok: bool
    error: Text = ""
    result: msgspec.Raw = msgspec.Raw(b"null")

    def result_as(self, type_: type[T]) -> T:
        """Decode ``result`` into ``type_``; ProtocolError("bad-payload") when it does not fit."""
        try:
            return msgspec.json.decode(self.result, type=type_)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise ProtocolError("bad-payload", f"response result: {exc}") from None


def raw_json(value: object) -> msgspec.Raw:
    """``value`` encoded as JSON, for :attr:`Response.result`."""
    return msgspec.Raw(msgspec.json.encode(value))


# --------------------------------------------------------------------------------------------
# Envelopes


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message whose signature has been verified."""

    type: str
    sender: str
    seq: int
    ts: float
    data: Payload
    size: int

    def expect(self, type_: builtins.type[P]) -> P:
        """``data`` as ``type_``; ProtocolError when it is another type."""
        if not isinstance(self.data, type_):
            raise ProtocolError("bad-payload", f"expected {type_.TYPE}, got {self.type}")
        return self.data


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    body: msgspec.Raw
    sig: str


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    type: str
    sender: str
    seq: int
    ts: float
    data: msgspec.Raw


class _BodyVersion(msgspec.Struct):
    v: int


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_BODY_DECODER: Final = msgspec.json.Decoder(_Body)
_VERSION_DECODER: Final = msgspec.json.Decoder(_BodyVersion)
_ENCODER: Final = msgspec.json.Encoder()


def encode(
    identity: Identity, seq: int, type_name: str, data: Payload, ts: float | None = None
) -> bytes:
    """Sign ``data`` as message ``type_name`` from ``identity`` and return the wire bytes.

    ``data`` is round-tripped through the receivers' decoder first: msgspec checks constraints
    only when decoding, and a sender should fail loudly rather than emit what peers will drop.
    """
    cls = MESSAGE_TYPES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown message type {type_name!r}")
    if type(data) is not cls:
        raise TypeError(f"{type_name} needs a {cls.__name__}, not {type(data).__name__}")
    if not 1 <= seq <= SEQ_MAX:
        raise ValueError(f"seq out of range: {seq}")
    ts = time.time() if ts is None else ts
    if not (math.isfinite(ts) and ts >= 0):
        raise ValueError(f"bad timestamp: {ts}")
    data_json = _ENCODER.encode(data)
    try:
        _DECODERS[type_name].decode(data_json).validate()
    except (msgspec.DecodeError, ProtocolError) as exc:
        # DecodeError too: a Response.result Raw holding broken JSON breaks the whole body.
        raise ValueError(f"{type_name} payload is invalid: {exc}") from None
    body = _ENCODER.encode(
        _Body(
            v=PROTOCOL_VERSION,
            type=type_name,
            sender=identity.node_id,
            seq=seq,
            ts=ts,
            data=msgspec.Raw(data_json),
        )
    )
    sig = base64.b64encode(identity.sign(body))
    # Concatenate rather than encode a dict: the body bytes on the wire are the signed bytes.
    return b'{"body":' + body + b',"sig":"' + sig + b'"}'


def decode(raw: bytes | bytearray | memoryview, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and authenticate one wire payload; ProtocolError (with a reason) when it is bad."""
    size = len(raw)
    if size > max_bytes:
        raise ProtocolError("oversized", f"{size} bytes > {max_bytes}")
    try:
        envelope = _ENVELOPE_DECODER.decode(raw)
        body = _decode_body(envelope.body)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad-envelope", str(exc)) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        # msgspec recurses on nested containers: deep nesting is "not JSON we accept".
        raise ProtocolError("not-json", str(exc)[:200]) from None

    cls = MESSAGE_TYPES.get(body.type)
    if cls is None:
        raise ProtocolError("unknown-type", repr(body.type[:64]))
    if not _NODE_ID_RE.fullmatch(body.sender):
        raise ProtocolError("bad-sender", "sender is not a node id")
    if not 1 <= body.seq <= SEQ_MAX:
        raise ProtocolError("bad-envelope", f"seq out of range: {body.seq}")
    if not (math.isfinite(body.ts) and body.ts >= 0):
        raise ProtocolError("bad-envelope", "bad timestamp")
    signature = _b64decode_strict(envelope.sig, "sig")
    if len(signature) != SIGNATURE_BYTES:
        raise ProtocolError("bad-signature", f"signature is {len(signature)} bytes")
    if not verify_signature(body.sender, signature, bytes(envelope.body)):
        raise ProtocolError("bad-signature", f"from {body.sender[:12]}")
    try:
        data = _DECODERS[body.type].decode(body.data)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad-payload", f"{body.type}: {exc}") from None
    except RecursionError:
        raise ProtocolError("bad-payload", f"{body.type}: nested too deeply") from None
    data.validate()
    return Message(body.type, body.sender, body.seq, body.ts, data, size)


def _decode_body(raw_body: msgspec.Raw) -> _Body:
    try:
        body = _BODY_DECODER.decode(raw_body)
    except msgspec.ValidationError:
        # A future version may change the body's fields: report the version, not the field.
        try:
            version = _VERSION_DECODER.decode(raw_body).v
        except msgspec.DecodeError:
            raise ProtocolError("bad-envelope", "body has no integer version") from None
        if version != PROTOCOL_VERSION:
            raise ProtocolError("bad-version", f"v={version}") from None
        raise
    if body.v != PROTOCOL_VERSION:
        raise ProtocolError("bad-version", f"v={body.v}")
    return body


# --------------------------------------------------------------------------------------------
# Receiving


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
            return None
        if seq == high and retained:
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


# --------------------------------------------------------------------------------------------
# Sending


class SequenceCounter:
    """Strictly increasing message seqs for one sender, never reused across restarts.

    The store holds a reservation: every seq handed out so far is below it. A new reservation
    (``block`` seqs ahead) is stored *before* the first seq of a block is used, so the store is
    written once per block, and after a crash the counter skips to the next block instead of
    reusing seqs. The start is also at least the wall clock in milliseconds, so a lost or
    restored-from-backup store still moves forward (as long as the sender averages fewer than
    1000 messages a second).

    Give either ``path`` (a small text file) or both ``load`` and ``store``; neither keeps the
    reservation in memory only (for throwaway identities).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        load: Callable[[], int | None] | None = None,
        store: Callable[[int], None] | None = None,
        block: int = 1000,
        clock_floor: bool = True,
    ) -> None:
        if block < 1:
            raise ValueError("block must be >= 1")
        if path is not None and (load is not None or store is not None):
            raise ValueError("give either path or load/store, not both")
        if (load is None) != (store is None):
            raise ValueError("load and store go together")
        if path is not None:
            self.path: Path | None = path
            self._load: Callable[[], int | None] = self._load_file
            self._store: Callable[[int], None] = self._store_file
        else:
            self.path = None
            self._load = load or (lambda: None)
            self._store = store or (lambda _value: None)
        self._block = block
        self._lock = threading.Lock()
        start = max(self._load() or 1, 1)
        if clock_floor:
            start = max(start, int(time.time() * 1000))
        self._next = start
        self._reserved = start  # nothing reserved yet: reserve on first use
        self._last = 0
        # Reservations are written ahead, off the caller's thread (the event loop): the
        # store fsyncs. Writes are serialised and only ever move the stored value up.
        self._store_lock = threading.Lock()
        self._stored = 0
        self._ahead_pending = False

    def next(self) -> int:
        """The next seq (strictly greater than any returned before, in any run)."""
        with self._lock:
            if self._next >= self._reserved:
                # The read-ahead has not landed (or this is the first use): store now.
                reserved = self._next + self._block
                self._store_at_least(reserved)
                self._reserved = reserved
            value = self._next
            self._next += 1
            self._last = value
            if not self._ahead_pending and self._reserved - self._next < self._block // 2:
                self._ahead_pending = True
                threading.Thread(
                    target=self._reserve_ahead,
                    args=(self._reserved + self._block,),
                    name="seq-reserve",
                    daemon=True,
                ).start()
            return value

    def _store_at_least(self, value: int) -> None:
        with self._store_lock:
            if value > self._stored:
                self._store(value)
                self._stored = value

    def _reserve_ahead(self, target: int) -> None:
        try:
            self._store_at_least(target)
        except Exception:
            log.exception("could not reserve sequence numbers ahead")
            with self._lock:
                self._ahead_pending = False
            return
        with self._lock:
            self._reserved = max(self._reserved, target)
            self._ahead_pending = False

    @property
    def last(self) -> int:
        """The last seq handed out (0 if none yet in this run)."""
        return self._last

    def _load_file(self) -> int | None:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataDirError(f"cannot read sequence file {self.path}: {exc}") from None
        if not text.isdigit():
            raise DataDirError(
                f"sequence file {self.path} is corrupt; delete it to restart from the clock"
            )
        return int(text)

    def _store_file(self, value: int) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, f"{value}\n".encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            # fsync the directory so the rename itself survives a power cut.
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise DataDirError(f"cannot write sequence file {self.path}: {exc.strerror}") from None


def presence_messages(
    identity: Identity, seqs: SequenceCounter, *, ts: float | None = None
) -> tuple[bytes, bytes]:
    """The (online, offline) presence envelopes for one MQTT connection.

    A last will is handed to the broker in CONNECT and published later by the broker, so it
    cannot be signed at disconnect time: it is signed now, at connect time. Its seq is taken
    *after* the online message's, so on the presence topic the sequence stays increasing
    (online N, will N+1, next connection's online N+2...) and receivers accept the will even
    though it carries the connect-time timestamp. Publish the online one retained after
    connecting and pass the offline one as the will (retained, QoS 1).
    """
    ts = time.time() if ts is None else ts
    online = encode(identity, seqs.next(), Presence.TYPE, Presence(online=True), ts)
    offline = encode(identity, seqs.next(), Presence.TYPE, Presence(online=False), ts)
    return online, offline
