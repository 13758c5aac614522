from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from core.errors import StoreError
from core.node.store import MIGRATIONS, NodeStore, ReceivedUnit


async def test_fresh_store_is_wal_and_at_latest_version(tmp_path: Path) -> None:
    async with NodeStore(tmp_path / "s.db") as store:
        assert await store.schema_version() == len(MIGRATIONS)
        async with store.db.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone()) == ("wal",)
        async with store.db.execute("PRAGMA synchronous") as cur:
            assert (await cur.fetchone()) == (1,)  # NORMAL


async def test_migrations_apply_in_order_and_keep_data(tmp_path: Path) -> None:
    import aiosqlite

    v1 = ("CREATE TABLE t (a INTEGER)",)
    v2 = (*v1, "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'")
    # Drive migrate() with test migrations on a bare connection (connect() applies the real ones).
    store = NodeStore(tmp_path / "o.db")
    store._db = await aiosqlite.connect(tmp_path / "o.db")
    assert await store.migrate(v1) == 1
    await store.db.execute("INSERT INTO t (a) VALUES (7)")
    await store.db.commit()
    assert await store.migrate(v2) == 2
    async with store.db.execute("SELECT a, b FROM t") as cur:
        assert list(await cur.fetchall()) == [(7, "x")]
    async with store.db.execute("SELECT version FROM schema_version ORDER BY version") as cur:
        assert [r[0] for r in await cur.fetchall()] == [1, 2]
    # Re-running is a no-op.
    assert await store.migrate(v2) == 2
    await store.close()


async def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    import aiosqlite

    store = NodeStore(tmp_path / "f.db")
    store._db = await aiosqlite.connect(tmp_path / "f.db")
    await store.migrate(("CREATE TABLE t (a INTEGER)",))
    with pytest.raises(sqlite3.OperationalError):
        await store.migrate(("CREATE TABLE t (a INTEGER)", "CREATE TABLE u (a); BROKEN SQL"))
    assert await store.schema_version() == 1
    async with store.db.execute("SELECT name FROM sqlite_master WHERE name = 'u'") as cur:
        assert await cur.fetchone() is None
    await store.close()


async def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    async with NodeStore(path) as store:
        await store.db.execute("INSERT INTO schema_version VALUES (999, 0)")
        await store.db.commit()
    with pytest.raises(StoreError, match="newer than this program"):
        await NodeStore(path).connect()


async def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        await NodeStore(path).connect()
    assert path.read_bytes().startswith(b"this is not")


async def test_events_and_benchmarks_round_trip(tmp_path: Path) -> None:
    async with NodeStore(tmp_path / "s.db") as store:
        await store.add_event("info", "node", "hello", {"k": 1})
        await store.add_event("warning", "guard", "hot")
        events = await store.recent_events(10)
        assert [(e.kind, e.message) for e in events] == [("node", "hello"), ("guard", "hot")]
        assert events[0].data == {"k": 1}
        assert await store.last_benchmark() is None
        await store.add_benchmark({"backend": "numpy", "device": "cpu", "verified": True})
        row = await store.last_benchmark()
        assert row is not None and row.verified and row.backend == "numpy"


async def test_hourly_credits_bucket_receipts_by_hour(tmp_path: Path) -> None:
    async with NodeStore(tmp_path / "node.db") as store:
        for i in range(3):
            unit = ReceivedUnit(f"u{i}", "work", "00" * 32, 8, 8, 8, 4, 0.0, 1e12)
            await store.add_unit(unit)
            await store.apply_receipt(
                f"u{i}", accepted=True, reason="", flops=1, credited=10 * (i + 1), entry_id=i
            )
        now = time.time()
        hours = await store.hourly_credits(now + 2 * 3600 + 5)  # receipts two hours ago
    assert len(hours) == 24 and sum(hours) == 60 and hours[-3] == 60


async def test_reads_never_see_an_open_transaction(tmp_path: Path) -> None:
    """A read between two statements of another task's write transaction (one connection)
    waits for it: it never sees a message that is then rolled back."""
    async with NodeStore(tmp_path / "node.db") as store:
        now = time.time()
        assert await store.add_unit(ReceivedUnit("t1", "work", "00", 8, 8, 8, 8, now, now + 60))
        written, release = asyncio.Event(), asyncio.Event()

        async def failing_write() -> None:
            async with store.transaction() as db:
                await db.execute("UPDATE units SET status = 'committed' WHERE task_id = 't1'")
                await db.execute(
                    "INSERT INTO outbox (task_id, stage, topic, payload, created_ts)"
                    " VALUES ('t1', 'committed', 'x', x'00', 0)"
                )
                await db.execute("INSERT INTO kv (key, value) VALUES ('k', 'half')")
                written.set()
                await release.wait()
                raise RuntimeError("disk full")  # rolls the transaction back

        writer = asyncio.create_task(failing_write())
        await asyncio.wait_for(written.wait(), 5)
        reads = asyncio.gather(store.outbox(), store.get_setting("k"), store.work_counters())
        await asyncio.sleep(0.05)
        assert not reads.done()  # waiting for the transaction, not reading through it
        release.set()
        with pytest.raises(RuntimeError, match="disk full"):
            await writer
        outbox, setting, counters = await reads
        assert outbox == []
        assert setting is None
        assert counters["outbox.pending"] == 0
        assert counters["work.submitted"] == 0
