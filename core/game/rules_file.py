"""Reading the game's rules: ``assets/game.toml`` into :class:`GameRules`, every value checked.

Every bad value is a :class:`core.errors.ConfigError` naming the file and the dotted key, so
an operator editing the rules sees exactly what to fix. Cross-checks catch what a single
value cannot show: a quest naming an unknown achievement, a board the ledger does not keep,
and a quest too hard to finish in its window (the failure of earlier gamified clients).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Final, cast

from core.assets import asset_path
from core.calendar import PeriodKind
from core.game.boards import BOARDS, MONTHLY_VALIDATORS
from core.game.capability import sharing_hours_needed
from core.game.rates import MAX_MULTIPLIER
from core.game.rules import (
    COUNTED_KINDS,
    PERIOD_KINDS,
    QUEST_ACTIONS,
    QUEST_KINDS,
    QUEST_UNITS,
    STAT_NAMES,
    AchievementDef,
    BoardRules,
    DataRules,
    GameRules,
    InferenceRules,
    MultiplierRules,
    QuestDef,
    QuestKind,
    QuestRules,
    ReputationRules,
    StakingRules,
)
from core.game.toml_table import TomlTable, read_toml

ONE: Final = Fraction(1)
ZERO: Final = Fraction(0)
BIG: Final = Fraction(10**12)


def load_rules(path: Path | None = None) -> GameRules:
    """Load and check the game rules (default: the packaged ``game.toml``)."""
    path = asset_path("game.toml") if path is None else path
    root = TomlTable(path, read_toml(path))
    root.integer("version", 1, 1)

    liveness = root.table("liveness")
    liveness_per_day = liveness.omnit("omnit_per_day")
    liveness.finish()

    multipliers = _multiplier_rules(root.table("multipliers"))

    seasons = root.table("seasons")
    calendar = seasons.text("calendar", choices=("quarterly",))
    seasons.finish()

    boards = tuple(_board(category, table) for category, table in root.table("boards").tables())

    quest_rules = _quest_rules(root.table("quest_rules"))
    achievements = tuple(
        _achievement(aid, table) for aid, table in root.table("achievements").tables()
    )
    achievement_ids = {a.id for a in achievements}
    quests_table = root.table("quests")
    quests = tuple(
        _quest(qid, table, quest_rules, achievement_ids) for qid, table in quests_table.tables()
    )
    if not quests:
        raise quests_table.error("", "defines no quest")

    staking = root.table("staking")
    staking_rules = StakingRules(
        free_task_value=staking.omnit("free_task_value_omnit"),
        min_stake=staking.omnit("min_stake_omnit"),
        stake_per_task_value=staking.fraction("stake_per_task_value", ZERO, BIG),
        slash_fraction=staking.fraction("slash_fraction", ZERO, ONE, low_open=True),
        unbonding_s=staking.integer("unbonding_hours", 0, 24 * 90) * 3600,
    )
    staking.finish()

    reputation = root.table("reputation")
    reputation_rules = ReputationRules(
        trusted_after=reputation.integer("trusted_after", 1, 1_000_000),
    )
    reputation.finish()

    inference = root.table("inference")
    inference_rules = InferenceRules(
        fee_per_1000=inference.omnit("fee_omnit_per_1000_sentences"),
        workers_per_task=inference.integer("workers_per_task", 2, 5),
        max_job_sentences=inference.integer("max_job_sentences", 1, 4096),
        starter_grant=inference.omnit("starter_omnit"),
        quality_reward=inference.omnit("quality_reward_omnit_per_answer"),
    )
    inference.finish()
    data = root.table("data")
    data_rules = DataRules(
        contributor_reward=data.omnit("contributor_reward_omnit_per_record"),
        validator_reward=data.omnit("validator_reward_omnit_per_record"),
        max_paid_records_per_dataset=data.integer("max_paid_records_per_dataset", 0, 10**6),
        max_paid_records_per_day=data.integer("max_paid_records_per_day", 0, 10**7),
        max_dataset_records=data.integer("max_dataset_records", 1, 4000),
        max_dataset_bytes=data.integer("max_dataset_mib", 1, 1024) << 20,
        validators_per_task=data.integer("validators_per_task", 2, 5),
        max_validators_per_task=data.integer("max_validators_per_task", 3, 9),
        task_s=data.integer("task_hours", 1, 72) * 3600,
    )
    data.finish()
    root.finish()
    return GameRules(
        source=path,
        liveness_per_day=liveness_per_day,
        multipliers=multipliers,
        season_calendar=calendar,
        boards=boards,
        quest_rules=quest_rules,
        quests=quests,
        achievements=achievements,
        staking=staking_rules,
        reputation=reputation_rules,
        inference=inference_rules,
        data=data_rules,
    )


@lru_cache(maxsize=1)
def default_rules() -> GameRules:
    """The packaged rules, loaded once."""
    return load_rules()


def _multiplier_rules(table: TomlTable) -> MultiplierRules:
    rules = MultiplierRules(
        kinds=table.text_list("kinds"),
        # The reward arithmetic refuses multipliers above MAX_MULTIPLIER: the cap cannot be more.
        max_combined=table.fraction("max_combined", ONE, MAX_MULTIPLIER),
        min_notice_s=table.integer("min_notice_hours", 0, 24 * 365) * 3600,
    )
    table.finish()
    return rules


def _board(category: str, table: TomlTable) -> BoardRules:
    if category not in BOARDS:
        raise table.error(
            "", f"the ledger keeps no board {category!r} (it has {', '.join(BOARDS)})"
        )
    period = cast(PeriodKind, table.text("period", choices=("season", "month")))
    # The ledger keeps a monthly board only for the Data Validators of the Month.
    expected = "month" if category == MONTHLY_VALIDATORS else "season"
    if period != expected:
        raise table.error("period", f"the ledger's {category} board is per {expected}")
    top_n = table.integer("top_n", 1, 1000)
    board = BoardRules(
        category=category,
        title=table.text("title"),
        period=period,
        top_n=top_n,
        bonus=table.omnit_list("bonus_omnit", top_n),
        governance_weight=table.integer_list("governance_weight", top_n, 0, 1_000_000),
        collectible=table.text("collectible"),
    )
    table.finish()
    return board


def _quest_rules(table: TomlTable) -> QuestRules:
    rules = QuestRules(
        reference_tflops=table.fraction("reference_tflops", ZERO, BIG, low_open=True),
        unknown_capability_tflops=table.fraction(
            "unknown_capability_tflops", ZERO, BIG, low_open=True
        ),
        max_capability_tflops=table.fraction("max_capability_tflops", ZERO, BIG, low_open=True),
        reward_scales_with_capability=table.boolean("reward_scales_with_capability"),
        max_fill=table.fraction("max_fill", ZERO, ONE, low_open=True),
        records_per_tflop_hour=table.fraction("records_per_tflop_hour", ZERO, BIG, low_open=True),
        quality_round_interval_s=table.integer("quality_round_interval_hours", 1, 24 * 30) * 3600,
        benchmark_s=table.integer("benchmark_minutes", 1, 24 * 60) * 60,
        min_verified_units=table.integer("min_verified_units", 0, 1_000_000),
        payout_window_s=table.integer("payout_window_days", 1, 366) * 86_400,
        max_payout_share_of_work=table.fraction("max_payout_share_of_work", ZERO, BIG),
        max_payout_per_window=table.omnit("max_payout_per_window_omnit"),
    )
    table.finish()
    return rules


def _quest(quest_id: str, table: TomlTable, rules: QuestRules, achievements: set[str]) -> QuestDef:
    kind = cast(QuestKind, table.text("kind", choices=QUEST_KINDS))
    goal = table.fraction("goal", ZERO, BIG, low_open=True)
    if kind in COUNTED_KINDS and goal.denominator != 1:
        raise table.error("goal", f"{goal}: {QUEST_UNITS[kind]} are counted in whole numbers")
    min_uptime = None
    if kind == "uptime":
        min_uptime = table.fraction("min_uptime", ZERO, ONE, low_open=True)
    achievement = table.optional_text("achievement")
    if achievement is not None and achievement not in achievements:
        raise table.error("achievement", f"no achievement {achievement!r} is defined")
    action = table.optional_text("action")
    if action is not None and action not in QUEST_ACTIONS:
        raise table.error("action", f"{action!r} is not one of {', '.join(sorted(QUEST_ACTIONS))}")
    reward = table.omnit("reward_omnit", default=0)
    if reward == 0 and achievement is None:
        raise table.error("reward_omnit", "a quest needs an OMNIT reward or an achievement")
    quest = QuestDef(
        id=quest_id,
        kind=kind,
        title=table.text("title"),
        description=table.text("description"),
        goal=goal,
        period=cast(PeriodKind, table.text("period", choices=PERIOD_KINDS)),
        duration_s=table.integer("duration_hours", 1, 24 * 92) * 3600,
        reward=reward,
        achievement=achievement,
        min_uptime=min_uptime,
        action=action,
    )
    table.finish()
    # The guard against levels too hard to reach: at full-time sharing, any node must be able
    # to finish within max_fill of the window (so it can miss the rest and still make it).
    needed = sharing_hours_needed(quest, rules.reference_tflops, rules)
    allowed = Fraction(quest.duration_s, 3600) * rules.max_fill
    if needed > allowed:
        raise table.error(
            "goal",
            f"needs {float(needed):g} h of full-time sharing, more than {float(allowed):g} h "
            f"({rules.max_fill} of its {quest.duration_s // 3600} h window)",
        )
    return quest


def _achievement(achievement_id: str, table: TomlTable) -> AchievementDef:
    stat = table.optional_text("stat")
    at_least = None
    if stat is not None:
        if stat not in STAT_NAMES:
            raise table.error("stat", f"{stat!r} is not one of {', '.join(sorted(STAT_NAMES))}")
        at_least = table.fraction("at_least", ZERO, BIG, low_open=True)
    achievement = AchievementDef(
        id=achievement_id,
        name=table.text("name"),
        description=table.text("description"),
        stat=stat,
        at_least=at_least,
    )
    table.finish()
    return achievement


# --------------------------------------------------------------------------------------------
# Quest goals (here because the loader's feasibility check needs them)
