"""The network's core messages: hello, presence, tasks, work results, receipts, requests."""

from __future__ import annotations

import time
from typing import Annotated, TypeVar

import msgspec

from core.errors import ProtocolError
from core.identity import Identity
from core.protocol.envelope import Payload, b64decode_strict, encode, register_message_type
from core.protocol.fields import (
    DTYPE_ITEMSIZE,
    BaseUnits,
    Category,
    DType,
    EntryId,
    Ident,
    MatrixSize,
    Method,
    Name,
    NodeId,
    NonNegFloat,
    ParamValue,
    Rank,
    Seed,
    Text,
)
from core.protocol.sequence import SequenceCounter

T = TypeVar("T")


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
        size = len(b64decode_strict(self.result_b64, "result_b64"))
        if size != self.n * self.n * DTYPE_ITEMSIZE[self.dtype]:
            raise ProtocolError("bad-payload", f"result is {size} bytes, not {self.n}x{self.n}")

    def result_bytes(self) -> bytes:
        """The product matrix bytes (row-major)."""
        return b64decode_strict(self.result_b64, "result_b64")


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
