"""The network's core messages: hello, presence, work units, commitments, proofs, receipts."""

from __future__ import annotations

import time
from typing import Annotated, TypeVar

import msgspec

from core import textsafe
from core.errors import ProtocolError
from core.identity import Identity
from core.protocol.envelope import Payload, b64decode_strict, encode, register_message_type
from core.protocol.fields import (
    BaseUnits,
    BlockSide,
    Category,
    Digest,
    EntryId,
    Flops,
    Ident,
    LeafIndex,
    MatrixSide,
    Method,
    Name,
    NodeId,
    NonNegFloat,
    ParamValue,
    Rank,
    ReductionDepth,
    Text,
    WorkerCount,
    WorkerIndex,
)
from core.protocol.sequence import SequenceCounter

T = TypeVar("T")


# Base64 of a work proof: kernels/work_proof.py caps proofs at 65,832 bytes (64 samples of
# depth 32); a little headroom, and nothing a receiver must parse is bigger.
MAX_PROOF_B64 = 90_000
PURPOSES = ("work", "benchmark")


def check_display_name(name: str) -> None:
    """Display names end up on terminals and in logs: printable characters only."""
    try:
        textsafe.check_display_name(name)
    except ValueError as exc:
        raise ProtocolError("bad-payload", str(exc)) from None


@register_message_type
class Hello(Payload, frozen=True, kw_only=True):
    """A node announces itself (retained; re-sent as its heartbeat). Display only: nothing
    here moves pay, capability or quests; the coordinator measures those itself."""

    TYPE = "hello"
    TOPIC_KINDS = frozenset({"node.hello"})

    name: Name
    version: Name
    backend: Name
    device: Text
    gpus: Annotated[list[Text], msgspec.Meta(max_length=64)]
    claimed_tflops: NonNegFloat
    # Devices that take units at once (one worker per GPU); each is sized and measured alone.
    workers: WorkerCount = 1
    # Models this node serves inference tasks with (a claim: Proof of Inference checks it).
    models: Annotated[list[Name], msgspec.Meta(max_length=8)] = []

    def validate(self) -> None:
        check_display_name(self.name)


@register_message_type
class Presence(Payload, frozen=True, kw_only=True):
    """Online/offline state of a node or the coordinator (retained; offline is the will)."""

    TYPE = "presence"
    TOPIC_KINDS = frozenset({"node.presence", "coordinator.presence"})

    online: bool


@register_message_type
class TaskUnit(Payload, frozen=True, kw_only=True):
    """A work unit for one node (``recipient``): multiply the seeded operands, commit a root.

    ``purpose`` is "benchmark" for a unit a node asked for to prove its capability (quests).
    """

    TYPE = "task.unit"
    TOPIC_KINDS = frozenset({"node.task"})

    task_id: Ident
    recipient: NodeId
    worker: WorkerIndex = 0  # which of the node's devices the unit is for
    purpose: Name
    seed: Digest
    m: MatrixSide
    n: MatrixSide
    k: ReductionDepth
    block: BlockSide
    issued_ts: NonNegFloat
    deadline_ts: NonNegFloat

    def validate(self) -> None:
        if self.purpose not in PURPOSES:
            raise ProtocolError("bad-payload", f"unknown purpose {self.purpose!r}")


@register_message_type
class Challenge(Payload, frozen=True, kw_only=True):
    """The blocks the coordinator draws, after it stored the node's root, for one task."""

    TYPE = "task.challenge"
    TOPIC_KINDS = frozenset({"node.task"})

    task_id: Ident
    recipient: NodeId
    root: Digest
    indices: Annotated[list[LeafIndex], msgspec.Meta(min_length=1, max_length=64)]


@register_message_type
class WorkCommit(Payload, frozen=True, kw_only=True):
    """A node's commitment to a unit's result: the Merkle root over its blocks."""

    TYPE = "work.commit"
    TOPIC_KINDS = frozenset({"node.work"})

    task_id: Ident
    root: Digest
    elapsed_s: NonNegFloat  # the node's own timing: display only


@register_message_type
class WorkProof(Payload, frozen=True, kw_only=True):
    """A node's answer to a challenge: the sampled blocks' Merkle paths (kernels' format)."""

    TYPE = "work.proof"
    TOPIC_KINDS = frozenset({"node.work"})

    task_id: Ident
    root: Digest
    proof_b64: Annotated[str, msgspec.Meta(max_length=MAX_PROOF_B64)]

    def validate(self) -> None:
        b64decode_strict(self.proof_b64, "proof_b64")

    def proof_bytes(self) -> bytes:
        return b64decode_strict(self.proof_b64, "proof_b64")


@register_message_type
class Receipt(Payload, frozen=True, kw_only=True):
    """The coordinator's verdict on one task, to the node that had it."""

    TYPE = "receipt"
    TOPIC_KINDS = frozenset({"node.receipt"})

    task_id: Ident
    recipient: NodeId
    accepted: bool
    reason: Text
    flops: Flops  # verified work credited (0 when rejected)
    credited_base_units: BaseUnits
    entry_id: EntryId | None


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
    recipient: NodeId
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
