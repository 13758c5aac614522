"""The wire, shared by the node and the coordinator: topics, signed envelopes, payloads.

Importing the package registers every message type. Submodules: ``topics`` (the topic
tree), ``fields`` (constrained field types), ``envelope`` (signing, encoding, decoding),
``payloads`` (the core messages), ``game`` (the game's messages), ``governance`` (proposals
and tallies), ``inbound`` (checks on receipt: sender, clock, replay), ``sequence`` (message
seqs), ``methods`` (request methods).
"""

from core.errors import ProtocolError
from core.protocol.envelope import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Message,
    Payload,
    decode,
    encode,
    raw_json,
    register_message_type,
)
from core.protocol.fields import (
    BaseUnits,
    Category,
    Count,
    Digest,
    Flops,
    FractionText,
    Ident,
    Name,
    NodeId,
    NonNegFloat,
    Rank,
    Text,
)
from core.protocol.game import AwardRecord, MultiplierEvents, QuestBoard, QuestView, SeasonInfo
from core.protocol.governance import ProposalTally
from core.protocol.inbound import InboundFilter
from core.protocol.inference import (
    InferCommit,
    InferReveal,
    InferTask,
    QualityAnswer,
    QualityQuestion,
    QualityRound,
    RevealCall,
)
from core.protocol.payloads import (
    Challenge,
    Hello,
    Leaderboard,
    LeaderboardEntry,
    Presence,
    Receipt,
    Request,
    Response,
    TaskUnit,
    WorkCommit,
    WorkProof,
    check_display_name,
    presence_messages,
)
from core.protocol.sequence import SequenceCounter
from core.protocol.topics import DEFAULT_TOPICS, TOPIC_PREFIX, Topics

__all__ = [
    "DEFAULT_TOPICS",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "TOPIC_PREFIX",
    "AwardRecord",
    "BaseUnits",
    "Category",
    "Challenge",
    "Count",
    "Digest",
    "Flops",
    "FractionText",
    "Hello",
    "Ident",
    "InboundFilter",
    "InferCommit",
    "InferReveal",
    "InferTask",
    "Leaderboard",
    "LeaderboardEntry",
    "Message",
    "MultiplierEvents",
    "Name",
    "NodeId",
    "NonNegFloat",
    "Payload",
    "Presence",
    "ProposalTally",
    "ProtocolError",
    "QualityAnswer",
    "QualityQuestion",
    "QualityRound",
    "QuestBoard",
    "QuestView",
    "Rank",
    "Receipt",
    "Request",
    "Response",
    "RevealCall",
    "SeasonInfo",
    "SequenceCounter",
    "TaskUnit",
    "Text",
    "Topics",
    "WorkCommit",
    "WorkProof",
    "check_display_name",
    "decode",
    "encode",
    "presence_messages",
    "raw_json",
    "register_message_type",
]
