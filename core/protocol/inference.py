"""Inference as network work: embedding tasks with commit-then-reveal, and quality rounds.

A requester's job (the ``job.submit`` request) is split by the coordinator into tasks, each
a batch of sentences sent to at least two nodes (``task.infer``). A worker encodes them and
publishes only a commitment first (``infer.commit``: a hash bound to its node id, the task
and a fresh salt); once every assigned worker committed, or the commit deadline passed, the
coordinator calls for the reveals (``task.reveal``) and each worker sends its embeddings and
salt (``infer.reveal``). Nobody can copy an answer it has not seen, and a commitment copied
from another node never opens. Quality rounds (``task.quality`` / ``quality.answer``) are
short semantic-similarity tests with answers only the coordinator knows.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.errors import ProtocolError
from core.protocol.envelope import Payload, b64decode_strict, register_message_type
from core.protocol.fields import Count, Digest, Ident, Name, NodeId, NonNegFloat

# A task's sentences and a reveal's vectors both fit well inside one 1 MiB message:
# 128 sentences of at most 2,000 characters, or 128 x 1,024 float32 (512 KiB, 683 KiB base64).
MAX_TASK_SENTENCES = 128
MAX_SENTENCE_CHARS = 2_000
MAX_EMBEDDING_DIM = 1_024
MAX_EMBEDDINGS_B64 = 4 * ((MAX_TASK_SENTENCES * MAX_EMBEDDING_DIM * 4 + 2) // 3)
MAX_QUESTIONS = 16
MAX_CANDIDATES = 8

SentenceText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SENTENCE_CHARS)]
Salt = Digest  # 32 random bytes, hex


@register_message_type
class InferTask(Payload, frozen=True, kw_only=True):
    """Encode these sentences with ``model`` and commit to the result by ``commit_by``."""

    TYPE = "task.infer"
    TOPIC_KINDS = frozenset({"node.task"})

    task_id: Ident
    recipient: NodeId
    job_id: Ident
    model: Name
    texts: Annotated[list[SentenceText], msgspec.Meta(min_length=1, max_length=MAX_TASK_SENTENCES)]
    issued_ts: NonNegFloat
    commit_by: NonNegFloat


@register_message_type
class InferCommit(Payload, frozen=True, kw_only=True):
    """A worker's commitment to its embeddings (``kernels.inference.poi.commitment``)."""

    TYPE = "infer.commit"
    TOPIC_KINDS = frozenset({"node.work"})

    task_id: Ident
    commitment: Digest


@register_message_type
class RevealCall(Payload, frozen=True, kw_only=True):
    """Every worker of the task has committed (or the deadline passed): reveal now."""

    TYPE = "task.reveal"
    TOPIC_KINDS = frozenset({"node.task"})

    task_id: Ident
    recipient: NodeId
    reveal_by: NonNegFloat


@register_message_type
class InferReveal(Payload, frozen=True, kw_only=True):
    """The embeddings committed to: ``count`` x ``dim`` float32, little-endian, base64."""

    TYPE = "infer.reveal"
    TOPIC_KINDS = frozenset({"node.work"})

    task_id: Ident
    salt: Salt
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_TASK_SENTENCES)]
    dim: Annotated[int, msgspec.Meta(ge=1, le=MAX_EMBEDDING_DIM)]
    embeddings_b64: Annotated[str, msgspec.Meta(max_length=MAX_EMBEDDINGS_B64)]

    def validate(self) -> None:
        raw = self.raw()
        if len(raw) != self.count * self.dim * 4:
            raise ProtocolError(
                "bad-payload",
                f"embeddings are {len(raw)} bytes, not {self.count} x {self.dim} float32",
            )

    def raw(self) -> bytes:
        return b64decode_strict(self.embeddings_b64, "embeddings_b64")


class QualityQuestion(msgspec.Struct, frozen=True, kw_only=True):
    """Which candidate is closest in meaning to the query (never carries the answer)."""

    id: Ident
    query: SentenceText
    candidates: Annotated[list[SentenceText], msgspec.Meta(min_length=2, max_length=MAX_CANDIDATES)]


@register_message_type
class QualityRound(Payload, frozen=True, kw_only=True):
    """A short test of a node's encoder: answer every question by ``deadline_ts``."""

    TYPE = "task.quality"
    TOPIC_KINDS = frozenset({"node.task"})

    round_id: Ident
    recipient: NodeId
    questions: Annotated[
        list[QualityQuestion], msgspec.Meta(min_length=1, max_length=MAX_QUESTIONS)
    ]
    issued_ts: NonNegFloat
    deadline_ts: NonNegFloat


@register_message_type
class QualityAnswer(Payload, frozen=True, kw_only=True):
    """The candidate index chosen for each question, in the round's order."""

    TYPE = "quality.answer"
    TOPIC_KINDS = frozenset({"node.work"})

    round_id: Ident
    answers: Annotated[
        list[Annotated[int, msgspec.Meta(ge=0, lt=MAX_CANDIDATES)]],
        msgspec.Meta(min_length=1, max_length=MAX_QUESTIONS),
    ]
    elapsed_s: NonNegFloat  # the node's own timing: display only


__all__ = [
    "MAX_EMBEDDING_DIM",
    "MAX_SENTENCE_CHARS",
    "MAX_TASK_SENTENCES",
    "Count",
    "InferCommit",
    "InferReveal",
    "InferTask",
    "QualityAnswer",
    "QualityQuestion",
    "QualityRound",
    "RevealCall",
]
