"""The coordinator's game state on a real SQLite file: season roll-over awards."""

from __future__ import annotations

from pathlib import Path

from core.coordinator.game_store import GameService
from core.coordinator.store import CoordinatorStore
from core.game import season_by_id
from core.money import parse_omnit


async def test_season_roll_over_awards_top_nodes_once(tmp_path: Path) -> None:
    q3 = season_by_id("2026-Q3")
    in_q3 = q3.start + 86400
    async with CoordinatorStore(tmp_path / "c.db") as store:
        game = GameService(store)
        # The coordinator first ran during Q3: nothing before it is awarded.
        assert await game.roll_over(in_q3) == []
        for i, amount in enumerate((300, 100, 200)):
            node = f"{i:064x}"
            await store.upsert_node(node, name=f"n{i}")
            await store.add_entry(
                account=node,
                amount=parse_omnit(amount),
                kind="reward",
                reason="work",
                category="gpu-contributors",
                ts=in_q3,
            )
        # Still Q3: nothing ended yet.
        assert await game.roll_over(in_q3 + 3600) == []
        after = q3.end + 60
        awards = await game.roll_over(after)
        ranked = [(a["rank"], a["node_id"]) for a in awards if a["category"] == "gpu-contributors"]
        assert ranked == [(1, f"{0:064x}"), (2, f"{2:064x}"), (3, f"{1:064x}")]
        assert len({a["award_id"] for a in awards}) == len(awards)
        bonus = {e.ref: e.amount for e in await store.entries(f"{0:064x}") if e.kind == "award"}
        assert list(bonus.values()) == [parse_omnit(1000)]
        # A second roll-over (a restart) grants nothing twice.
        assert await game.roll_over(after + 60) == []
        assert len([e for e in await store.entries(f"{0:064x}") if e.kind == "award"]) == 1
        view = await game.season_view(f"{0:064x}", after)
        assert view["id"] == "2026-Q4" and view["won"][0]["rank"] == 1


async def test_higher_value_tasks_need_a_stake(tmp_path: Path) -> None:
    async with CoordinatorStore(tmp_path / "c.db") as store:
        game = GameService(store)
        free = game.rules.staking.free_task_value
        # Within the free value: paid in full, no stake needed.
        assert game.cap_for_stake(free, staked=0) == (free, "")
        # Above it without the stake: capped at the free value, with the reason.
        amount, reason = game.cap_for_stake(parse_omnit(5), staked=0)
        assert amount == free and "needs" in reason and "staked" in reason
        # With enough staked, the full value is paid.
        assert game.cap_for_stake(parse_omnit(5), staked=parse_omnit(100)) == (parse_omnit(5), "")
        assert await game.stakes(["a" * 64]) == {"a" * 64: 0}


async def test_achievements_carry_the_rules_names(tmp_path: Path) -> None:
    # The season view's badges: the rules' name and description, not the bare id (the
    # console showed "first-work" where the rules say "First Light").
    async with CoordinatorStore(tmp_path / "c.db") as store:
        game = GameService(store)
        node = "a" * 64
        await game._earn(node, ["first-work"], 1_000.0)
        [badge] = await game.achievements(node)
        [rule] = [a for a in game.rules.achievements if a.id == "first-work"]
    assert badge["id"] == "first-work"
    assert (badge["name"], badge["description"]) == (rule.name, rule.description)
    assert badge["name"] != badge["id"]
