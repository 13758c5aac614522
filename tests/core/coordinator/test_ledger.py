"""The coordinator's ledger: exact amounts, supply cap, idempotence, boards."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiosqlite
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.calendar import month_id, season_bounds, season_id
from core.coordinator.ledger import SupplyCapReached
from core.coordinator.store import CoordinatorStore
from core.coordinator.work_records import Verdict
from core.game.boards import ALL_TIME
from core.money import MAX_SUPPLY, format_omnit, parse_omnit

ALICE, BOB = "a" * 64, "b" * 64


def verdict(sender: str, task_id: str, credited: int, accepted: bool = True) -> Verdict:
    flops = 10**12 if accepted else 0
    return Verdict(sender, task_id, accepted, "" if accepted else "bad", flops, credited, None)


def test_amount_helpers_are_exact() -> None:
    assert parse_omnit(150) == 150_000_000_000
    assert parse_omnit("0.000000001") == 1
    with pytest.raises(ValueError, match="finer than one base unit"):
        parse_omnit("0.0000000001")
    assert format_omnit(parse_omnit("1200.5")) == "1200"
    assert format_omnit(parse_omnit("1200.5"), exact=True) == "1200.5"
    assert format_omnit(-parse_omnit(3), exact=True) == "-3"


def test_season_ids() -> None:
    ts = 1795000000.0  # 2026-11-18
    assert season_id(ts) == "2026-Q4"
    assert month_id(ts) == "2026-11"
    start, end = season_bounds("2026-Q4")
    assert start <= ts < end
    assert season_id(end) == "2027-Q1"


async def test_work_credited_once_with_reason(tmp_path: Path) -> None:
    async with CoordinatorStore(tmp_path / "c.db") as store:
        await store.upsert_node(ALICE, name="alice")
        first, fresh = await store.record_verdicts([(verdict(ALICE, "w1", 500), None)])
        assert first[0].accepted and first[0].entry_id is not None and fresh == {(ALICE, "w1")}
        # The same unit again, twice in one batch: no change, the stored verdict back.
        again, fresh = await store.record_verdicts(
            [(verdict(ALICE, "w1", 500), None), (verdict(ALICE, "w1", 700), None)]
        )
        assert [v.entry_id for v in again] == [first[0].entry_id] * 2 and fresh == set()
        assert await store.balance(ALICE) == 500
        [entry] = await store.entries(ALICE)
        assert entry.kind == "reward" and "w1" in entry.reason
        rejected, _ = await store.record_verdicts([(verdict(ALICE, "w2", 0, False), None)])
        assert not rejected[0].accepted
        [row] = await store.rejected_work(ALICE)
        assert (row["work_id"], row["reason"]) == ("w2", "bad")
        assert await store.supply() == (500, 0)
        assert await store.work_counts(ALICE) == {"accepted": 1, "rejected": 1, "flops": 10**12}


async def test_supply_cap_is_enforced_by_the_database(tmp_path: Path) -> None:
    async with CoordinatorStore(tmp_path / "c.db") as store:
        await store.add_entry(
            account=ALICE, amount=MAX_SUPPLY - 10, kind="award", reason="genesis test"
        )
        with pytest.raises(SupplyCapReached):
            await store.add_entry(account=BOB, amount=11, kind="reward", reason="over")
        assert await store.balance(BOB) == 0
        [v], _ = await store.record_verdicts([(verdict(BOB, "w", 11), None)])
        assert not v.accepted and v.reason == "maximum supply reached" and v.flops == 0
        await store.add_entry(account=BOB, amount=10, kind="reward", reason="exactly to the cap")
        assert await store.supply() == (MAX_SUPPLY, 0)
        await store.add_entry(account=BOB, amount=-4, kind="burn", reason="burn test")
        assert await store.supply() == (MAX_SUPPLY, 4)
        assert await store.balance(BOB) == 6
        with pytest.raises(ValueError, match="reason"):
            await store.add_entry(account=BOB, amount=1, kind="reward", reason="")
        with pytest.raises(TypeError):
            await store.add_entry(account=BOB, amount=1.5, kind="reward", reason="float")


async def test_boards_rank_and_page(tmp_path: Path) -> None:
    async with CoordinatorStore(tmp_path / "c.db") as store:
        for i, amount in enumerate([300, 100, 200, 200]):
            node = f"{i:064x}"
            await store.upsert_node(node, name=f"n{i}")
            await store.add_entry(
                account=node, amount=amount, kind="reward", reason="r", category="gpu-contributors"
            )
        season = season_id()
        rows, total = await store.leaderboard("gpu-contributors", season, limit=10)
        assert total == 4
        assert [(r.rank, r.name, r.amount) for r in rows] == [
            (1, "n0", 300),
            (2, "n2", 200),
            (3, "n3", 200),
            (4, "n1", 100),
        ]
        page, _ = await store.leaderboard("gpu-contributors", ALL_TIME, offset=2, limit=1)
        assert [(r.rank, r.name) for r in page] == [(3, "n3")]
        assert await store.rank_of("gpu-contributors", season, f"{3:064x}") == (3, 200)
        assert await store.rank_of("gpu-contributors", season, "f" * 64) == (None, 0)
        await store.add_entry(
            account=ALICE, amount=5, kind="reward", reason="v", category="data-validators"
        )
        rows, _ = await store.leaderboard("data-validators-monthly", month_id())
        assert [r.node_id for r in rows] == [ALICE]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([ALICE, BOB]),
            st.integers(0, 5),  # work id: repeats are duplicates
            st.integers(1, MAX_SUPPLY // 3),
        ),
        max_size=20,
    )
)
def test_property_never_over_cap_never_twice(
    tmp_path: Path, works: list[tuple[str, int, int]]
) -> None:
    async def run() -> None:
        path = tmp_path / f"p{abs(hash(tuple(works)))}.db"
        async with CoordinatorStore(path) as store:
            for sender, work, amount in works:
                await store.record_verdicts([(verdict(sender, f"w{work}", amount), None)])
            minted, burned = await store.supply()
            assert minted <= MAX_SUPPLY and burned == 0
            for account in (ALICE, BOB):
                entries = await store.entries(account, limit=1000)
                refs = [e.ref for e in entries]
                assert len(refs) == len(set(refs))  # one credit per piece of work
                assert sum(e.amount for e in entries) == await store.balance(account)
            assert minted == await store.balance(ALICE) + await store.balance(BOB)
        path.unlink()

    asyncio.run(run())


async def test_earnings_by_time_read_the_whole_ledger(tmp_path: Path) -> None:
    """What the wallet shows as earned today and charts per hour: every entry in the range,
    not a page of the newest (a busy node gets a receipt every few seconds)."""
    now = time.time()
    async with CoordinatorStore(tmp_path / "c.db") as store:
        for i in range(300):  # one receipt every 10 s for 50 minutes: three wallet pages
            await store.add_entry(
                account=ALICE, amount=10, kind="reward", reason="u", ts=now - i * 10
            )
        await store.add_entry(
            account=ALICE, amount=1000, kind="job-fee", reason="f", ts=now - 18001
        )
        await store.add_entry(account=ALICE, amount=7, kind="quest", reason="q", ts=now - 60)
        await store.add_entry(account=ALICE, amount=5000, kind="grant", reason="g", ts=now - 30)
        await store.add_entry(
            account=ALICE, amount=11, kind="reward", reason="old", ts=now - 8 * 86400
        )
        await store.add_entry(account=BOB, amount=99, kind="reward", reason="bob", ts=now - 5)
        # Earned: work, fee shares and quests; a grant is a starter balance, not earnings.
        assert await store.earned_since(ALICE, now - 3600) == 300 * 10 + 7
        assert await store.earned_since(ALICE, now - 86400) == 300 * 10 + 7 + 1000
        hourly = await store.work_earned_by_period(ALICE, now, 3600, 24)
        assert len(hourly) == 24 and hourly[-1] == 3000  # the last hour, newest last
        assert hourly[-6] == 1000 and sum(hourly) == 4000  # 5 h 0 min 1 s ago; no quest
        daily = await store.work_earned_by_period(ALICE, now, 86400, 7)
        assert daily == (0, 0, 0, 0, 0, 0, 4000)  # 8 days ago is out of the window


async def _ledger_sums(store: CoordinatorStore) -> dict[str, int]:
    async with store.db.execute("SELECT account, SUM(amount) FROM ledger GROUP BY account") as cur:
        return {str(account): int(total) async for account, total in cur}


async def test_balance_is_a_running_total_whichever_code_inserts(tmp_path: Path) -> None:
    async with CoordinatorStore(tmp_path / "c.db") as store:
        await store.upsert_node(ALICE, name="alice")
        for i in range(20):  # the batched verdict path writes ledger rows itself
            await store.record_verdicts([(verdict(ALICE, f"w{i}", 100 + i), None)])
        await store.add_entry(account=ALICE, amount=parse_omnit(2), kind="award", reason="a")
        await store.add_entry(account=ALICE, amount=-parse_omnit(1), kind="escrow", reason="e")
        await store.add_entry(account=BOB, amount=7, kind="reward", reason="b")
        await store.add_entry(account=BOB, amount=-3, kind="slash", reason="s")
        with pytest.raises(SupplyCapReached):  # rolled back: no running total moves either
            await store.add_entry(account=BOB, amount=MAX_SUPPLY, kind="reward", reason="x")
        sums = await _ledger_sums(store)
        assert sums[BOB] == 4 and sums[ALICE] == sum(range(100, 120)) + parse_omnit(1)
        for account, total in sums.items():
            assert await store.balance(account) == total
        assert await store.balance("c" * 64) == 0  # no entries at all


async def test_upgrade_totals_the_ledger_already_there(tmp_path: Path) -> None:
    from core.coordinator.schema import MIGRATIONS

    path = tmp_path / "c.db"
    old = CoordinatorStore(path)
    old._db = await aiosqlite.connect(path)
    await old.migrate(MIGRATIONS[:7])  # a coordinator from before the running totals
    await old.db.executemany(
        "INSERT INTO ledger (ts, account, amount, kind, reason) VALUES (?, ?, ?, 'reward', 'r')",
        [(1.0, ALICE, 5), (2.0, ALICE, 6), (3.0, BOB, 9)],
    )
    await old.db.commit()
    await old.close()
    async with CoordinatorStore(path) as store:
        assert await store.balance(ALICE) == 11 and await store.balance(BOB) == 9
        await store.add_entry(account=ALICE, amount=1, kind="reward", reason="after")
        assert await store.balance(ALICE) == 12 == (await _ledger_sums(store))[ALICE]
