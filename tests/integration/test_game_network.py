"""The game over the real broker: quests, claims, stakes, events, slashing."""

from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from pathlib import Path

import pytest

from core.api.commands import (
    AcceptQuest,
    ClaimQuest,
    GetQuests,
    GetSeason,
    GetWallet,
    Stake,
    StartQuest,
    Unstake,
)
from core.coordinator.game_store import GameService
from core.errors import CommandError
from core.game import EventError, MultiplierEvent
from core.node.store import NodeStore
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_network import node_for, running_coordinator, wait_until

pytestmark = pytest.mark.broker


async def enough_units(store: NodeStore, count: int) -> bool:
    return (await store.work_counters())["work.acknowledged"] >= count


async def test_quest_flow_stake_and_refusals(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with (
        running_coordinator(tmp_path / "coord", mosquitto.url) as coordinator,
        node_for(tmp_path / "n", mosquitto.url) as node,
    ):
        store = node.store
        assert store is not None

        async def some_credit() -> bool:
            return (await store.work_counters())["work.acknowledged"] >= 2

        await wait_until(some_credit, what="credited work")
        quests = (await node.command(GetQuests())).quests
        bench = next(q for q in quests if q.action == "bench")
        assert bench.state == "offered"
        compute = next(q for q in quests if q.kind == "tflop-hours")

        # Claiming before accepting, and starting before accepting, are refused with reasons.
        with pytest.raises(CommandError, match=r"not completed|not accepted"):
            await node.command(ClaimQuest(id=bench.id))
        with pytest.raises(CommandError, match="not accepted"):
            await node.command(StartQuest(id=bench.id))

        await node.command(AcceptQuest(id=bench.id))
        with pytest.raises(CommandError, match="already accepted"):
            await node.command(AcceptQuest(id=bench.id))
        started = await node.command(StartQuest(id=bench.id))
        assert "verified" in started.message

        async def completed() -> bool:
            qs = (await node.command(GetQuests())).quests
            return any(q.id == bench.id and q.state == "completed" for q in qs)

        await wait_until(completed, what="benchmark quest completed")
        # Sybil resistance: no quest pays before the node has enough verified work on record.
        rules = coordinator.state.game.rules
        coordinator.state.game.rules = dataclasses.replace(
            rules, quest_rules=dataclasses.replace(rules.quest_rules, min_verified_units=10**6)
        )
        with pytest.raises(CommandError, match="claims need 1000000 verified work units"):
            await node.command(ClaimQuest(id=bench.id))
        coordinator.state.game.rules = rules
        await wait_until(
            lambda: enough_units(store, rules.quest_rules.min_verified_units),
            within=60,
            what="verified units for quests",
        )
        before = (await node.command(GetWallet())).balance
        claimed = await node.command(ClaimQuest(id=bench.id))
        # The reward is capped by what verified work earned in the payout window.
        entries = (await node.command(GetWallet())).entries
        earned = sum(e.amount for e in entries if e.kind == "reward")
        assert 0 < claimed.credited <= earned
        with pytest.raises(CommandError, match="already claimed"):
            await node.command(ClaimQuest(id=bench.id))
        wallet = await node.command(GetWallet())
        quest_entries = [e for e in wallet.entries if e.kind == "quest"]
        assert len(quest_entries) == 1 and quest_entries[0].amount == claimed.credited
        assert wallet.balance >= before + claimed.credited

        # An accepted compute quest gains progress from verified work only.
        await node.command(AcceptQuest(id=compute.id))

        async def progressed() -> bool:
            qs = (await node.command(GetQuests())).quests
            q = next(q for q in qs if q.id == compute.id)
            return Fraction(q.progress.exact.current) > 0

        await wait_until(progressed, what="compute quest progress")

        # Staking: more than the balance is refused; a valid stake shows in the wallet.
        with pytest.raises(CommandError, match="cannot stake"):
            await node.command(Stake(amount=wallet.balance + 10**12))
        staked = await node.command(Stake(amount=wallet.balance // 2))
        assert staked.staked == wallet.balance // 2
        assert (await node.command(GetWallet())).staked == staked.staked
        with pytest.raises(CommandError, match="cannot unstake"):
            await node.command(Unstake(amount=staked.staked + 1))

        season = await node.command(GetSeason())
        assert season.ranks["gpu-contributors"].rank == 1
        assert season.days_left >= 0
        assert any(a.id for a in season.achievements)  # first verified work badge

        uptime = next(q for q in quests if q.kind == "uptime")
        await node.command(AcceptQuest(id=uptime.id))

        # Liveness: one base reward per window for a node that worked in it, never twice;
        # the same window counts as an hour online for the uptime quest.
        window_end = time.time() + 1
        assert await coordinator.credit_liveness(window_end - 3600, window_end) == 1
        qs = (await node.command(GetQuests())).quests
        steady = next(q for q in qs if q.id == uptime.id)
        assert Fraction(steady.progress.exact.current) == 1  # hours observed, all online
        assert await coordinator.credit_liveness(window_end - 3600, window_end) == 0
        kinds = [e.kind for e in (await node.command(GetWallet())).entries]
        assert kinds.count("liveness") == 1

        # Slashing: work proven wrong burns a share of the stake and resets reputation.
        game = coordinator.game
        assert game is not None and coordinator.store is not None
        slashed = await game.on_failed_work(node.node_id, "w-forged", "verification failed: x")
        account = await game.account(node.node_id)
        assert slashed > 0 and account.staked == staked.staked - slashed
        assert account.reputation.consecutive == 0
        _minted, burned = await coordinator.store.supply()
        assert burned == slashed


async def test_events_are_capped_at_3x(tmp_path: Path) -> None:
    from core.coordinator.store import CoordinatorStore

    now = time.time()
    start = now + 2 * 86400

    def event(name: str, factor: str, offset_h: float = 0) -> MultiplierEvent:
        return MultiplierEvent(
            id=name,
            kind="stress-test",
            name=name,
            factor=Fraction(factor),
            start=start + offset_h * 3600,
            end=start + (offset_h + 10) * 3600,
            announced_at=now,
        )

    async with CoordinatorStore(tmp_path / "c.db") as store:
        game = GameService(store)
        await game.announce(event("a", "2"), now)
        await game.announce(event("b", "3/2", offset_h=5), now)  # 2 x 1.5 = 3: allowed
        with pytest.raises(EventError, match="3"):
            await game.announce(event("c", "11/10", offset_h=6), now)  # 3.3x: refused
        late = MultiplierEvent(
            id="late",
            kind="stress-test",
            name="late",
            factor=Fraction(2),
            start=now + 60,
            end=now + 3600,
            announced_at=now,
        )
        with pytest.raises(EventError):
            await game.announce(late, now)  # not announced in advance
        assert await game.multiplier(start + 6 * 3600) == 3
        assert [e.id for e in await game.events()] == ["a", "b"]
