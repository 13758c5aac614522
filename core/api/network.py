"""What the network answers a node, as front ends see it: boards, wallet, quests, season.

The coordinator answers a node's requests with JSON (``core.coordinator.handlers``); the node
decodes each answer into these Structs at its boundary, so a malformed answer is a clear
``CommandError`` there and never reaches a reader. The fields are the coordinator's, in its
order, so ``--json`` prints what the network said. Money is int base units; multiplier
factors are exact fraction text (``"3/2"``); floats are display-only (progress bars).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated

import msgspec

from core.game.quests import QuestStatus
from core.game.rules import QuestKind

FractionText = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(/[0-9]+)?$")]
"""An exact number as ``str(Fraction)`` writes it: ``"2"``, ``"3/2"``."""

# -- leaderboards -------------------------------------------------------------------------------


class BoardEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One row of a leaderboard; ``amount`` in base units."""

    rank: int
    node_id: str
    name: str
    amount: int


class LeaderboardPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a board (``leaderboard``), its size and this node's standing on it."""

    category: str
    season: str
    total: int
    own_rank: int | None
    own_amount: int
    entries: tuple[BoardEntry, ...]


class Board(msgspec.Struct, frozen=True, kw_only=True):
    """A board's top rows as the network publishes them (retained), by category."""

    category: str
    season: str
    entries: tuple[BoardEntry, ...]
    updated_ts: float


# -- the wallet ---------------------------------------------------------------------------------


class ReputationDetail(msgspec.Struct, frozen=True, kw_only=True):
    consecutive: int
    verified: int
    failed: int


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger entry: a credit (positive) or a debit, with its reason."""

    id: int
    ts: float
    amount: int
    kind: str
    reason: str
    category: str
    season: str
    ref: str | None


class RejectedWork(msgspec.Struct, frozen=True, kw_only=True):
    work_id: str
    ts: float
    reason: str


class WorkCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Work results the coordinator verified (accepted) and refused."""

    accepted: int
    rejected: int


class Wallet(msgspec.Struct, frozen=True, kw_only=True):
    """The node's account in the coordinator's ledger (``wallet``), newest entries first."""

    staked: int
    available: int
    reputation: int
    reputation_detail: ReputationDetail
    balance: int
    entries: tuple[LedgerEntry, ...]
    rejected: tuple[RejectedWork, ...]
    earned_today: int  # everything earned since 00:00 UTC (work, liveness, quests, awards)
    work: WorkCounts
    # Pay for work and liveness in each of the last 24 hours and 7 days, oldest first (from
    # the whole ledger; empty from a coordinator older than this field).
    work_hourly: tuple[int, ...] = ()
    work_daily: tuple[int, ...] = ()


class StakeResult(msgspec.Struct, frozen=True, kw_only=True):
    """After ``stake`` or ``unstake``: staked and available, in base units."""

    staked: int
    balance: int


# -- quests -------------------------------------------------------------------------------------


class ExactProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Progress and goal as exact fraction text."""

    current: FractionText
    target: FractionText


class QuestProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Progress toward the goal, in ``unit``; the floats are for a progress bar."""

    current: float
    target: float
    unit: str
    exact: ExactProgress

    @property
    def fraction(self) -> float | None:
        """Done, 0..1 (None without a goal)."""
        if self.target <= 0:
            return None
        return max(0.0, min(1.0, self.current / self.target))


class Quest(msgspec.Struct, frozen=True, kw_only=True):
    """One of this node's quests."""

    id: str
    title: str
    kind: QuestKind
    state: QuestStatus
    progress: QuestProgress
    progress_text: str
    deadline_ts: float
    """The deadline once accepted, else the last moment to accept."""
    reward: int
    reward_text: str
    achievement: str | None
    action: str | None
    """What ``quest.start`` runs (``bench``), or None for quests that progress by work."""
    description: str
    duration_s: float | None = None
    """From acceptance to the deadline (None from a coordinator that does not say)."""


class QuestList(msgspec.Struct, frozen=True, kw_only=True):
    quests: tuple[Quest, ...]


class QuestAccepted(msgspec.Struct, frozen=True, kw_only=True):
    quest: Quest
    message: str


class QuestClaimed(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed reward: ``credited`` base units and the badge, if the quest gives one."""

    quest_id: str
    credited: int
    achievement: str | None
    entry_id: int | None
    message: str


# -- the season ---------------------------------------------------------------------------------


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """The node on one board: rank (None: not on it), the board's size, its amount."""

    rank: int | None
    total: int
    amount: int


class AwardProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Toward a season award: ``progress`` 0..1 (display), ``detail`` in words."""

    name: str
    progress: float
    detail: str


class WonAward(msgspec.Struct, frozen=True, kw_only=True):
    """An award granted at a season's (or month's) end."""

    award_id: str
    period: str
    category: str
    rank: int
    node_id: str
    amount: int
    bonus: int
    governance_weight: int
    collectible: str


class Achievement(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str
    earned_ts: float


class Season(msgspec.Struct, frozen=True, kw_only=True):
    """The current season and this node's standing (``season``)."""

    id: str
    start_ts: float
    end_ts: float
    days_left: int
    ranks: dict[str, Standing]
    """By board category."""
    awards: tuple[AwardProgress, ...]
    won: tuple[WonAward, ...]
    achievements: tuple[Achievement, ...]


# -- multiplier events --------------------------------------------------------------------------


class MultiplierEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An announced reward multiplier; ``factor`` is exact fraction text."""

    id: str
    kind: str
    name: str
    factor: FractionText
    start_ts: float
    end_ts: float

    @property
    def ratio(self) -> Fraction:
        """``factor`` as an exact number."""
        return Fraction(self.factor)


class MultiplierEvents(msgspec.Struct, frozen=True, kw_only=True):
    """The combined factor now (fraction text), the active and the upcoming events."""

    factor: FractionText
    active: tuple[MultiplierEvent, ...]
    upcoming: tuple[MultiplierEvent, ...]

    @property
    def ratio(self) -> Fraction:
        """``factor`` as an exact number."""
        return Fraction(self.factor)


class Pong(msgspec.Struct, frozen=True, kw_only=True):
    """The coordinator's answer to ``ping``."""

    coordinator: str
    ts: float


# -- inference jobs ----------------------------------------------------------------------------


class JobSubmitted(msgspec.Struct, frozen=True, kw_only=True):
    """A job accepted by the network (``job.submit``): its fee is held until delivery."""

    job_id: str
    sentences: int
    tasks: int
    fee: int
    model: str


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One of the node's jobs: ``running``, ``delivered`` or ``failed`` (refunded)."""

    job_id: str
    state: str
    reason: str
    sentences: int
    fee: int
    submitted_ts: float
    finished_ts: float | None = None


class JobTaskInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A task's provenance: the workers that agreed, how closely, who was rejected and why."""

    task_id: str
    first: int
    count: int
    state: str
    workers: tuple[str, ...] = ()
    min_similarity: float | None = None
    rejected: dict[str, str] = {}


class JobResult(JobInfo, frozen=True, kw_only=True):
    """A job's state and a page of its vectors (``count`` x ``dim`` float32, base64)."""

    offset: int
    count: int
    dim: int
    embeddings_b64: str
    tasks: tuple[JobTaskInfo, ...]


class JobList(msgspec.Struct, frozen=True, kw_only=True):
    jobs: tuple[JobInfo, ...]
