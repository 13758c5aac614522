"""Goals and rewards scaled to a node's measured capability (quests for every size of rig)."""

from __future__ import annotations

from fractions import Fraction

from core.game.rules import SCALED_KINDS, QuestDef, QuestRules


def effective_capability(capability_tflops: float | Fraction | int, rules: QuestRules) -> Fraction:
    """The capability a goal is scaled by: the measured value, or the default when unknown."""
    if isinstance(capability_tflops, bool):
        raise TypeError("capability is a number of TFLOPS")
    value = (
        Fraction(repr(capability_tflops))
        if isinstance(capability_tflops, float)
        else Fraction(capability_tflops)
    )
    if value <= 0:  # not benchmarked yet (or nonsense): treat as a CPU-class node
        value = rules.unknown_capability_tflops
    return min(value, rules.max_capability_tflops)


def goal_for(
    quest: QuestDef, capability_tflops: float | Fraction | int, rules: QuestRules
) -> Fraction:
    """The quest's goal for a node of this measured capability.

    Formula: for tflop-hours and validate-records, ``goal x c / reference_tflops`` with ``c``
    the node's measured TFLOPS (TFLOP-hours rounded down to 0.01, records rounded down to a
    whole record, never below the smallest unit). Everything a node does scales with ``c``,
    so the sharing time needed is the same for every node. Other kinds: ``goal`` unchanged.
    """
    if quest.kind not in SCALED_KINDS:
        return quest.goal
    c = effective_capability(capability_tflops, rules)
    scaled = quest.goal * c / rules.reference_tflops
    if quest.kind == "validate-records":
        return Fraction(max(1, scaled.numerator // scaled.denominator))
    hundredths = max(1, (scaled * 100).numerator // (scaled * 100).denominator)
    return Fraction(hundredths, 100)


def sharing_hours_needed(
    quest: QuestDef, capability_tflops: float | Fraction | int, rules: QuestRules
) -> Fraction:
    """Hours of full-time sharing a node of this capability needs to finish the quest."""
    goal = goal_for(quest, capability_tflops, rules)
    c = effective_capability(capability_tflops, rules)
    if quest.kind == "tflop-hours":
        return goal / c
    if quest.kind == "validate-records":
        return goal / (rules.records_per_tflop_hour * c)
    if quest.kind == "uptime":
        return goal
    if quest.kind == "benchmark":
        return goal * rules.benchmark_s / 3600
    return goal * rules.quality_round_interval_s / 3600


def quest_reward_for(
    quest: QuestDef, capability_tflops: float | Fraction | int, rules: QuestRules
) -> int:
    """The OMNIT reward (base units) of the quest for a node of this capability.

    With ``reward_scales_with_capability``: ``reward x c / reference_tflops`` rounded down,
    so one GPU split into many small nodes earns no more than it would as one node.
    """
    if not rules.reward_scales_with_capability:
        return quest.reward
    scaled = quest.reward * effective_capability(capability_tflops, rules) / rules.reference_tflops
    return scaled.numerator // scaled.denominator
