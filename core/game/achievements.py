"""Achievements: badges unlocked by milestones (counters reaching a level) or by quests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from core.game.rules import AchievementDef, GameRules, NodeStats
from core.game.rules_file import default_rules


@dataclass(frozen=True)
class EarnedAchievement:
    """A badge a node holds, with the moment it was earned (the caller records it)."""

    id: str
    name: str
    earned_at: float


def check_milestones(
    stats: NodeStats, rules: GameRules | None = None, earned: Iterable[str] = ()
) -> list[str]:
    """Ids of milestone achievements ``stats`` reach and ``earned`` does not hold yet.

    In the rules' order, so a node that jumps several levels at once gets them in order.
    """
    rules = default_rules() if rules is None else rules
    have = set(earned)
    out: list[str] = []
    for achievement in rules.achievements:
        if achievement.id in have or achievement.stat is None or achievement.at_least is None:
            continue
        value = getattr(stats, achievement.stat)
        if Fraction(value) >= achievement.at_least:
            out.append(achievement.id)
    return out


def earn(ids: Iterable[str], now: float, rules: GameRules | None = None) -> list[EarnedAchievement]:
    """Records for newly earned badges (from :func:`check_milestones` or a quest claim)."""
    rules = default_rules() if rules is None else rules
    return [EarnedAchievement(aid, rules.achievement(aid).name, now) for aid in ids]


def milestone_achievements(rules: GameRules | None = None) -> list[AchievementDef]:
    rules = default_rules() if rules is None else rules
    return [a for a in rules.achievements if a.stat is not None]
