"""Game rules as data: the packaged assets load, and bad values name the file and the key."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from core.assets import ASSET_DIRS, asset_path
from core.errors import ConfigError
from core.game import QUEST_KINDS, NodeStats, default_rules, load_rules
from core.game.boards import BOARDS
from core.game.rates import MAX_MULTIPLIER
from core.money import parse_omnit

GAME_TOML = asset_path("game.toml").read_text(encoding="utf-8")


def write_rules(tmp_path: Path, old: str, new: str) -> Path:
    assert old in GAME_TOML, old
    path = tmp_path / "game.toml"
    path.write_text(GAME_TOML.replace(old, new, 1), encoding="utf-8")
    return path


def test_asset_path_finds_the_repo_assets() -> None:
    path = asset_path("game.toml")
    assert path.is_file() and path.parent in ASSET_DIRS
    with pytest.raises(ConfigError, match="not found"):
        asset_path("nothing-here.toml")
    with pytest.raises(ValueError, match="bad asset name"):
        asset_path("../pyproject.toml")


def test_packaged_rules_load_completely() -> None:
    rules = load_rules()
    assert rules is not None and default_rules() is default_rules()
    assert rules.liveness_per_day == parse_omnit(1)
    assert rules.multipliers.max_combined == MAX_MULTIPLIER == 3
    assert set(rules.multipliers.kinds) == {
        "early-participation",
        "network-expansion",
        "stress-test",
        "model-launch",
    }
    assert rules.multipliers.min_notice_s == 24 * 3600
    assert {q.kind for q in rules.quests} == set(QUEST_KINDS)
    assert {b.category for b in rules.boards} == set(BOARDS)
    assert rules.board("data-validators-monthly").period == "month"
    assert rules.board("gpu-contributors").bonus[0] == parse_omnit(1000)
    for quest in rules.quests:
        assert quest.reward > 0 or quest.achievement is not None
        if quest.achievement:
            rules.achievement(quest.achievement)  # exists
        assert quest.duration_s > 0
    bench = [q for q in rules.quests if q.kind == "benchmark"]
    assert bench and bench[0].action == "bench"
    milestones = {a.id: a for a in rules.achievements if a.stat}
    assert milestones["first-work"].at_least == 1
    assert milestones["centurion"].at_least == 100
    assert milestones["season-top-10"].stat == "season_top10"
    assert rules.staking.slash_fraction == Fraction(1, 10)
    assert rules.staking.min_stake == parse_omnit(100)
    assert rules.reputation.trusted_after == 20
    assert rules.staking.unbonding_s == 72 * 3600
    assert rules.quest_rules.min_verified_units == 10
    assert NodeStats().verified_results == 0


@pytest.mark.parametrize(
    ("old", "new", "where", "problem"),
    [
        ('omnit_per_day = "1"', "omnit_per_day = 1.5", "liveness.omnit_per_day", "quoted decimal"),
        (
            'omnit_per_day = "1"',
            'omnit_per_day = "0.0000000001"',
            "liveness.omnit_per_day",
            "exact",
        ),
        ('omnit_per_day = "1"', 'omnit_per_day = "-1"', "liveness.omnit_per_day", "negative"),
        ('max_combined = "3"', 'max_combined = "4"', "multipliers.max_combined", "at most 3"),
        ('max_combined = "3"', 'max_combined = "x"', "multipliers.max_combined", "not a number"),
        (
            "min_notice_hours = 24",
            "min_notice_hour = 24",
            "multipliers.min_notice_hours",
            "missing",
        ),
        ('calendar = "quarterly"', 'calendar = "weekly"', "seasons.calendar", "not one of"),
        (
            "bonus_omnit = [200, 100, 50]",
            "bonus_omnit = [200, 100]",
            "boards.data-validators-monthly.bonus_omnit",
            "needs 3",
        ),
        (
            '[boards.model-testers]\ntitle = "Top AI Model Testers"\nperiod = "season"',
            '[boards.model-testers]\ntitle = "Top AI Model Testers"\nperiod = "month"',
            "boards.model-testers.period",
            "per season",
        ),
        ("[boards.model-testers]", "[boards.gamers]", "boards.gamers", "ledger keeps no board"),
        ('kind = "uptime"', 'kind = "karma"', "quests.steady-uptime.kind", "not one of"),
        (
            'achievement = "steady"',
            'achievement = "nope"',
            "quests.steady-uptime.achievement",
            "no achievement",
        ),
        ('goal = "12"', 'goal = "12.5"', "quests.quality-rounds.goal", "whole numbers"),
        # Too hard to reach: 1000 h of sharing in a 720 h window.
        ('goal = "2000"', 'goal = "20000"', "quests.season-marathon.goal", "full-time sharing"),
        (
            'duration_hours = 24\nreward_omnit = "5"',
            'duration_hours = 24\nreward_omnit = "5"\ncolor = 1',
            "quests.compute-sprint.color",
            "unknown key",
        ),
        ('stat = "quests_claimed"', 'stat = "karma"', "achievements.quester.stat", "not one of"),
        (
            'slash_fraction = "1/10"',
            'slash_fraction = "3/2"',
            "staking.slash_fraction",
            "at most 1",
        ),
        ("trusted_after = 20", "trusted_after = 0", "reputation.trusted_after", "outside"),
        ("version = 1", "version = 2", "version", "outside"),
    ],
)
def test_bad_values_name_file_and_key(
    tmp_path: Path, old: str, new: str, where: str, problem: str
) -> None:
    path = write_rules(tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}: "), message
    assert problem in message


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "game.toml"
    path.write_text("version = = 1\n")
    with pytest.raises(ConfigError, match=r"game\.toml: not valid TOML"):
        load_rules(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


def test_quest_without_reward_or_badge_is_refused(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        'period = "week"\nduration_hours = 24\nreward_omnit = "5"\n',
        'period = "week"\nduration_hours = 24\n',
    )
    with pytest.raises(ConfigError, match=r"compute-sprint\.reward_omnit: a quest needs"):
        load_rules(path)
