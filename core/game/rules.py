"""The game's rules as data: frozen dataclasses (loaded from ``assets/game.toml`` by
:mod:`core.game.rules_file`) and the fixed vocabularies they use."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Final, Literal

from core.calendar import PeriodKind

QuestKind = Literal["tflop-hours", "uptime", "benchmark", "validate-records", "quality-rounds"]

QUEST_KINDS: Final[tuple[QuestKind, ...]] = (
    "tflop-hours",
    "uptime",
    "benchmark",
    "validate-records",
    "quality-rounds",
)
# Throughput-bound kinds: their goals scale with the node's measured capability.
SCALED_KINDS: Final[frozenset[QuestKind]] = frozenset({"tflop-hours", "validate-records"})
# Kinds counted in whole units (a record, a round, a run).
COUNTED_KINDS: Final[frozenset[QuestKind]] = frozenset(
    {"benchmark", "validate-records", "quality-rounds"}
)
QUEST_UNITS: Final[dict[QuestKind, str]] = {
    "tflop-hours": "TFLOP-hours",
    "uptime": "hours",
    "benchmark": "benchmark runs",
    "validate-records": "records",
    "quality-rounds": "quality rounds",
}
PERIOD_KINDS: Final[tuple[PeriodKind, ...]] = ("week", "month", "season")
QUEST_ACTIONS: Final = frozenset({"bench"})

ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")


@dataclass(frozen=True)
class NodeStats:
    """A node's lifetime counters, as the coordinator keeps them (milestones test these)."""

    verified_results: int = 0
    consecutive_verified: int = 0
    tflop_hours: Fraction = Fraction(0)
    uptime_hours: Fraction = Fraction(0)
    quests_claimed: int = 0
    records_validated: int = 0
    quality_rounds: int = 0
    season_top10: int = 0  # seasons finished in the top 10 of any board
    season_wins: int = 0  # seasons finished first on any board


STAT_NAMES: Final = frozenset(f.name for f in fields(NodeStats))


@dataclass(frozen=True)
class MultiplierRules:
    kinds: tuple[str, ...]
    max_combined: Fraction
    min_notice_s: int


@dataclass(frozen=True)
class BoardRules:
    """Awards for the top N of one leaderboard at the end of each of its periods."""

    category: str
    title: str
    period: PeriodKind
    top_n: int
    bonus: tuple[int, ...]  # base units, by rank (1st first)
    governance_weight: tuple[int, ...]
    collectible: str


@dataclass(frozen=True)
class QuestRules:
    reference_tflops: Fraction
    unknown_capability_tflops: Fraction
    max_capability_tflops: Fraction
    reward_scales_with_capability: bool
    max_fill: Fraction
    records_per_tflop_hour: Fraction
    quality_round_interval_s: int
    benchmark_s: int
    # Sybil resistance (assets/game.toml explains): quest payouts need verified work.
    min_verified_units: int
    payout_window_s: int
    max_payout_share_of_work: Fraction
    max_payout_per_window: int  # base units


@dataclass(frozen=True)
class QuestDef:
    """One quest template; a node gets one instance of it per period."""

    id: str
    kind: QuestKind
    title: str
    description: str
    goal: Fraction  # in the kind's unit, at the reference capability
    period: PeriodKind
    duration_s: int  # from acceptance to the deadline
    reward: int  # base units, at the reference capability
    achievement: str | None = None
    min_uptime: Fraction | None = None  # uptime quests only
    action: str | None = None  # something the node can start for it ("bench")

    @property
    def unit(self) -> str:
        return QUEST_UNITS[self.kind]


@dataclass(frozen=True)
class AchievementDef:
    """A badge; a milestone one unlocks when ``stat >= at_least``, the others by quests."""

    id: str
    name: str
    description: str
    stat: str | None = None
    at_least: Fraction | None = None


@dataclass(frozen=True)
class StakingRules:
    free_task_value: int  # base units
    min_stake: int  # base units
    stake_per_task_value: Fraction
    slash_fraction: Fraction
    unbonding_s: int


@dataclass(frozen=True)
class ReputationRules:
    trusted_after: int


@dataclass(frozen=True)
class InferenceRules:
    """Inference as network work (assets/game.toml [inference]); amounts in base units."""

    fee_per_1000: int = 1_000_000_000  # what a requester pays per 1,000 sentences
    workers_per_task: int = 2
    max_job_sentences: int = 1024
    starter_grant: int = 10_000_000_000  # local network and devnet only
    quality_reward: int = 100_000  # per correct known answer in a quality round


@dataclass(frozen=True)
class DataRules:
    """Data contribution and validation (assets/game.toml [data]); amounts in base units."""

    contributor_reward: int = 1_000_000  # per unique, valid record of a validated dataset
    validator_reward: int = 500_000  # per record of a task whose report was accepted
    max_paid_records_per_dataset: int = 1000
    max_paid_records_per_day: int = 2000
    max_dataset_records: int = 2000
    max_dataset_bytes: int = 32 << 20
    validators_per_task: int = 2
    max_validators_per_task: int = 5
    task_s: int = 3600


@dataclass(frozen=True)
class GameRules:
    """All the rules; build with :func:`core.game.rules_file.load_rules`."""

    source: Path
    liveness_per_day: int  # base units per day online
    multipliers: MultiplierRules
    season_calendar: str
    boards: tuple[BoardRules, ...]
    quest_rules: QuestRules
    quests: tuple[QuestDef, ...]
    achievements: tuple[AchievementDef, ...]
    staking: StakingRules
    reputation: ReputationRules
    inference: InferenceRules = InferenceRules()
    data: DataRules = DataRules()

    def quest(self, quest_id: str) -> QuestDef:
        for quest in self.quests:
            if quest.id == quest_id:
                return quest
        raise KeyError(f"no quest {quest_id!r}")

    def achievement(self, achievement_id: str) -> AchievementDef:
        for achievement in self.achievements:
            if achievement.id == achievement_id:
                return achievement
        raise KeyError(f"no achievement {achievement_id!r}")

    def board(self, category: str) -> BoardRules:
        for board in self.boards:
            if board.category == category:
                return board
        raise KeyError(f"no board {category!r}")
