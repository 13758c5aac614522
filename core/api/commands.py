"""Every command a node answers, in one table: its name, its parameters and its result.

A command is a ``Request[R]`` Struct: the class names the command (``name``), its fields are
the parameters, and ``R`` is the result's view. Front ends call ``client.command(RunBench())``
and get a ``BenchmarkResult``, typed; the control socket sends ``name`` and the fields, and
``parse`` turns them back into the request (an unknown command or bad parameters is a
``CommandError``). Commands the coordinator answers say which of its methods does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Generic, TypeVar, get_args

import msgspec

from core.api.data import (
    DataOffered,
    DataPieces,
    DataReported,
    DatasetList,
    DatasetRegistered,
    DataStored,
    DataTask,
)
from core.api.events import LogHistory
from core.api.governance import ProposalList, VoteCast
from core.api.network import (
    JobList,
    JobResult,
    JobSubmitted,
    LeaderboardPage,
    MultiplierEvents,
    Pong,
    QuestAccepted,
    QuestClaimed,
    QuestList,
    Season,
    StakeResult,
    Wallet,
)
from core.api.views import BenchmarkResult, NodeSnapshot
from core.errors import CommandError

R = TypeVar("R")

QuestId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Request(msgspec.Struct, Generic[R], frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A command with its parameters; its result is an ``R``."""

    name: ClassVar[str]
    coordinator_method: ClassVar[str | None] = None
    """The coordinator's method that answers it; None: the node answers it itself."""
    changes_game: ClassVar[bool] = False
    """It changes what the node keeps of the game (refresh that after it)."""


# -- the node's own ---------------------------------------------------------------------------


class GetSnapshot(Request[NodeSnapshot], frozen=True, kw_only=True):
    """The node's whole state now."""

    name: ClassVar[str] = "snapshot"


class RunBench(Request[BenchmarkResult], frozen=True, kw_only=True):
    """Run the benchmark suite (quick: small sizes, a few seconds)."""

    name: ClassVar[str] = "bench"
    quick: bool = True


class GetLog(Request[LogHistory], frozen=True, kw_only=True):
    """The node's last ``limit`` log lines (its ``events``; the network's are multipliers)."""

    name: ClassVar[str] = "events"
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100


class QuestStarted(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``quest.start``'s answer: what happened, and the benchmark it ran (if it ran one)."""

    message: str
    result: BenchmarkResult | None = None


class StartQuest(Request[QuestStarted], frozen=True, kw_only=True):
    """Run an accepted quest's action (the benchmark suite) now."""

    name: ClassVar[str] = "quest.start"
    id: QuestId


# -- answered by the coordinator ----------------------------------------------------------------


class GetLeaderboard(Request[LeaderboardPage], frozen=True, kw_only=True):
    """A page of a leaderboard (the coordinator's defaults: gpu-contributors, top 10)."""

    name: ClassVar[str] = "leaderboard"
    coordinator_method: ClassVar[str | None] = "leaderboard"
    category: str | None = None
    season: str | None = None
    offset: int | None = None
    limit: int | None = None


class GetWallet(Request[Wallet], frozen=True, kw_only=True):
    name: ClassVar[str] = "wallet"
    coordinator_method: ClassVar[str | None] = "wallet"
    limit: int | None = None


class Ping(Request[Pong], frozen=True, kw_only=True):
    name: ClassVar[str] = "ping"
    coordinator_method: ClassVar[str | None] = "ping"


class GetMultipliers(Request[MultiplierEvents], frozen=True, kw_only=True):
    """The network's multiplier events (the coordinator's ``events``)."""

    name: ClassVar[str] = "multipliers"
    coordinator_method: ClassVar[str | None] = "events"


class GetQuests(Request[QuestList], frozen=True, kw_only=True):
    name: ClassVar[str] = "quests"
    coordinator_method: ClassVar[str | None] = "quests"


class AcceptQuest(Request[QuestAccepted], frozen=True, kw_only=True):
    name: ClassVar[str] = "quest.accept"
    coordinator_method: ClassVar[str | None] = "quest.accept"
    changes_game: ClassVar[bool] = True
    id: QuestId


class ClaimQuest(Request[QuestClaimed], frozen=True, kw_only=True):
    name: ClassVar[str] = "quest.claim"
    coordinator_method: ClassVar[str | None] = "quest.claim"
    changes_game: ClassVar[bool] = True
    id: QuestId


class GetSeason(Request[Season], frozen=True, kw_only=True):
    name: ClassVar[str] = "season"
    coordinator_method: ClassVar[str | None] = "season"


class Stake(Request[StakeResult], frozen=True, kw_only=True):
    """Stake ``amount`` base units as a security deposit."""

    name: ClassVar[str] = "stake"
    coordinator_method: ClassVar[str | None] = "stake"
    changes_game: ClassVar[bool] = True
    amount: int


class Unstake(Request[StakeResult], frozen=True, kw_only=True):
    name: ClassVar[str] = "unstake"
    coordinator_method: ClassVar[str | None] = "unstake"
    changes_game: ClassVar[bool] = True
    amount: int


class SubmitJob(Request[JobSubmitted], frozen=True, kw_only=True):
    """Submit an embedding job to the network, paid from this node's OMNIT."""

    name: ClassVar[str] = "job.submit"
    coordinator_method: ClassVar[str | None] = "job.submit"
    changes_game: ClassVar[bool] = True  # the fee is held: the wallet changed
    texts: list[str]


class GetJobResult(Request[JobResult], frozen=True, kw_only=True):
    """A job's state, provenance and a page of its vectors."""

    name: ClassVar[str] = "job.result"
    coordinator_method: ClassVar[str | None] = "job.result"
    job_id: str
    offset: int = 0
    limit: int = 256


class GetJobs(Request[JobList], frozen=True, kw_only=True):
    """This node's jobs, newest first."""

    name: ClassVar[str] = "jobs"
    coordinator_method: ClassVar[str | None] = "jobs"
    limit: int = 100


class OfferData(Request[DataOffered], frozen=True, kw_only=True):
    """Offer a dataset's manifest (``HASH:SIZE:LABEL`` lines); resumes the same upload."""

    name: ClassVar[str] = "data.offer"
    coordinator_method: ClassVar[str | None] = "data.offer"
    dataset: str
    kind: str
    records: list[str]
    licence: str = ""


class PutData(Request[DataStored], frozen=True, kw_only=True):
    name: ClassVar[str] = "data.put"
    coordinator_method: ClassVar[str | None] = "data.put"
    upload_id: str
    pieces: list[str]  # HASH:OFFSET:BASE64


class CommitData(Request[DatasetRegistered], frozen=True, kw_only=True):
    name: ClassVar[str] = "data.commit"
    coordinator_method: ClassVar[str | None] = "data.commit"
    upload_id: str


class TakeDataTask(Request[DataTask], frozen=True, kw_only=True):
    """A validation task: this node's open one, or a new seat (on ``dataset`` if named)."""

    name: ClassVar[str] = "data.task"
    coordinator_method: ClassVar[str | None] = "data.task"
    dataset: str | None = None
    kinds: list[str] = []


class GetDataRecords(Request[DataPieces], frozen=True, kw_only=True):
    name: ClassVar[str] = "data.get"
    coordinator_method: ClassVar[str | None] = "data.get"
    task_id: str
    want: list[str]  # HASH:OFFSET


class ReportData(Request[DataReported], frozen=True, kw_only=True):
    name: ClassVar[str] = "data.report"
    coordinator_method: ClassVar[str | None] = "data.report"
    changes_game: ClassVar[bool] = True  # an accepted report is paid
    task_id: str
    report: str  # JSON


class GetDatasets(Request[DatasetList], frozen=True, kw_only=True):
    name: ClassVar[str] = "datasets"
    coordinator_method: ClassVar[str | None] = "datasets"
    limit: int = 100


class GetProposals(Request[ProposalList], frozen=True, kw_only=True):
    """Governance proposals with their tallies, this node's vote and weight."""

    name: ClassVar[str] = "proposals"
    coordinator_method: ClassVar[str | None] = "proposals"


class CastVote(Request[VoteCast], frozen=True, kw_only=True):
    """Vote on a proposal (exact id and option; cast again to change the vote)."""

    name: ClassVar[str] = "vote"
    coordinator_method: ClassVar[str | None] = "vote"
    changes_game: ClassVar[bool] = True
    proposal_id: str
    option: str


# -- the table ----------------------------------------------------------------------------------


def _result_type(request: type[Request[Any]]) -> Any:
    """``R`` of ``request``'s base ``Request[R]``."""
    (result,) = get_args(request.__orig_bases__[0])  # type: ignore[attr-defined]
    return result


COMMANDS: Mapping[str, type[Request[Any]]] = {
    cls.name: cls
    for cls in (
        GetSnapshot,
        RunBench,
        GetLog,
        GetLeaderboard,
        GetWallet,
        Ping,
        GetMultipliers,
        GetQuests,
        AcceptQuest,
        StartQuest,
        ClaimQuest,
        GetSeason,
        Stake,
        Unstake,
        SubmitJob,
        GetJobResult,
        GetJobs,
        OfferData,
        PutData,
        CommitData,
        TakeDataTask,
        GetDataRecords,
        ReportData,
        GetDatasets,
        GetProposals,
        CastVote,
    )
}
"""Command name -> its request (parameters) type."""
RESULTS: Mapping[type[Request[Any]], Any] = {cls: _result_type(cls) for cls in COMMANDS.values()}
"""Request type -> its result type."""


def result_type(request: type[Request[R]]) -> type[R]:
    """The type ``request``'s command answers with."""
    result: type[R] = RESULTS[request]
    return result


def parse(name: str, params: msgspec.Raw | bytes | Mapping[str, Any] | None = None) -> Request[Any]:
    """The request for command ``name`` with ``params`` (JSON, or already decoded)."""
    request_type = COMMANDS.get(name)
    if request_type is None:
        raise CommandError(f"unknown command {name!r}")
    raw = bytes(params) if isinstance(params, msgspec.Raw | bytes) else None
    try:
        request: Request[Any]
        if raw:
            request = msgspec.json.decode(raw, type=request_type)
        else:  # no parameters (an empty Raw, None) or already decoded ones
            mapping = params if isinstance(params, Mapping) else {}
            request = msgspec.convert(dict(mapping), request_type)
    except msgspec.DecodeError as exc:
        raise CommandError(f"{name}: bad parameters: {exc}") from None
    return request


def convert_result(request: type[Request[R]], value: Any, *, source: str) -> R:
    """``value`` (decoded JSON) as ``request``'s result; CommandError naming ``source`` when
    it is not one (a malformed answer stops here, not in a reader)."""
    try:
        return msgspec.convert(value, result_type(request))
    except msgspec.ValidationError as exc:
        raise CommandError(f"{request.name}: {source} sent a malformed answer ({exc})") from None


def decode_result(request: type[Request[R]], raw: bytes, *, source: str) -> R:
    """Like ``convert_result`` from JSON bytes."""
    try:
        return msgspec.json.decode(raw, type=result_type(request))
    except msgspec.DecodeError as exc:
        raise CommandError(f"{request.name}: {source} sent a malformed answer ({exc})") from None


def params_of(request: Request[Any]) -> dict[str, Any]:
    """The request's parameters as a dict (what the coordinator's request carries)."""
    return msgspec.structs.asdict(request)
