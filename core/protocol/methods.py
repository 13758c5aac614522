"""The request methods a node may call on the coordinator: one typed table.

Each method names its parameters as a msgspec Struct (checked on both ends: a node cannot
send, and the coordinator will not run, a request whose parameters do not fit) and whether it
changes state. State-changing requests are the ones a replay could abuse: the coordinator
records the sender's sequence mark before running them (docs/protocol.md, "Threat model").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec

from core.errors import ProtocolError
from core.protocol.data import (
    DataCommitParams,
    DataGetParams,
    DataOfferParams,
    DataPutParams,
    DataReportParams,
    DatasetsParams,
    DataTaskParams,
)
from core.protocol.fields import Category, Ident, Name
from core.protocol.governance import VoteParams
from core.protocol.inference import MAX_SENTENCE_CHARS

Offset = Annotated[int, msgspec.Meta(ge=0, le=10**9)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
# OMNIT moved by a request: positive integer base units (never floats).
Amount = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A method without parameters."""


class LeaderboardParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    category: Category = "gpu-contributors"
    season: Name | None = None
    offset: Offset = 0
    limit: Limit = 10


class WalletParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    limit: Limit = 100


class QuestParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Ident


class AmountParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Amount


# The protocol's ceiling on one job; the coordinator's rules (assets/game.toml) may set less.
MAX_JOB_SENTENCES = 4096
# Vectors per job.result page: 256 x 384 float32 is 512 KiB of base64, inside one message.
MAX_RESULT_PAGE = 256
JobText = Annotated[str, msgspec.Meta(max_length=MAX_SENTENCE_CHARS)]


class JobSubmitParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    texts: Annotated[list[JobText], msgspec.Meta(min_length=1, max_length=MAX_JOB_SENTENCES)]


class JobResultParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    job_id: Ident
    offset: Offset = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_RESULT_PAGE)] = MAX_RESULT_PAGE


@dataclass(frozen=True)
class MethodSpec:
    params: type[msgspec.Struct]
    mutating: bool
    summary: str


METHODS: Final[Mapping[str, MethodSpec]] = {
    "ping": MethodSpec(NoParams, False, "the coordinator's id and clock"),
    "leaderboard": MethodSpec(LeaderboardParams, False, "a page of a leaderboard"),
    "wallet": MethodSpec(WalletParams, False, "balance, stake, entries with reasons"),
    "events": MethodSpec(NoParams, False, "active and upcoming multiplier events"),
    "season": MethodSpec(NoParams, False, "the season, ranks, awards, badges"),
    "quests": MethodSpec(NoParams, False, "this node's quests (new offers included)"),
    "quest.accept": MethodSpec(QuestParams, True, "accept an offered quest"),
    "quest.claim": MethodSpec(QuestParams, True, "claim a completed quest's reward"),
    "stake": MethodSpec(AmountParams, True, "move OMNIT into the security deposit"),
    "unstake": MethodSpec(AmountParams, True, "start returning staked OMNIT (unbonding)"),
    "bench.challenge": MethodSpec(NoParams, True, "ask for a benchmark work unit"),
    "job.submit": MethodSpec(JobSubmitParams, True, "submit an embedding job (fee held)"),
    "job.result": MethodSpec(JobResultParams, False, "a job's state and a page of vectors"),
    "jobs": MethodSpec(WalletParams, False, "this node's jobs, newest first"),
    "data.offer": MethodSpec(DataOfferParams, True, "offer a dataset's manifest (resumable)"),
    "data.put": MethodSpec(DataPutParams, True, "send pieces of an offered dataset's records"),
    "data.commit": MethodSpec(DataCommitParams, True, "register a fully received dataset"),
    "data.task": MethodSpec(DataTaskParams, True, "take a validation task"),
    "data.get": MethodSpec(DataGetParams, False, "fetch records of one's validation task"),
    "data.report": MethodSpec(DataReportParams, True, "report a validation task's findings"),
    "datasets": MethodSpec(DatasetsParams, False, "the dataset registry and this node's part"),
    "proposals": MethodSpec(NoParams, False, "governance proposals, tallies, this node's vote"),
    "vote": MethodSpec(VoteParams, True, "vote on a proposal (again to change the vote)"),
}


def parse_params(method: str, params: Mapping[str, Any]) -> msgspec.Struct:
    """The parameters of a request as its method's Struct; ProtocolError when they do not fit."""
    spec = METHODS.get(method)
    if spec is None:
        raise ProtocolError("bad-payload", f"unknown method {method!r}")
    try:
        return msgspec.convert(dict(params), type=spec.params)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad-payload", f"{method}: {exc}") from None
