"""A SQLite file through aiosqlite: connect, append-only migrations, one writer at a time.

Durability choice: WAL journal with ``synchronous=NORMAL``. In WAL mode a committed
transaction survives a crash or ``kill -9`` of the process; only an OS crash or power loss
can lose the last few commits (the database is never corrupted). Schema changes are
append-only migrations, recorded in ``schema_version``. The node's and the coordinator's
stores subclass :class:`SqliteStore` with their own migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Self

import aiosqlite

from core.errors import StoreError


class SqliteStore:
    """Async access to one SQLite file; use as ``async with SomeStore(path) as store``."""

    #: The schema this store's file follows (append only); each subclass brings its own.
    migrations: Sequence[str] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on this connection.

        aiosqlite runs statements one by one on its thread, so two coroutines writing at
        once would interleave inside each other's transactions: every write goes through here.
        """
        async with self._write_lock:
            try:
                # Inside the try: a cancel that lands while BEGIN runs must still roll back.
                await self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    @contextlib.asynccontextmanager
    async def consistent(self) -> AsyncIterator[aiosqlite.Connection]:
        """Reads that must not see half of a write transaction on this same connection
        (SQLite isolates connections, not statements on one): they wait for it to end."""
        async with self._write_lock:
            yield self.db

    async def read_rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one read, taken between write transactions (``consistent``)."""
        async with self.consistent() as db, db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def read_row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one read (None when there is none), as ``read_rows``."""
        async with self.consistent() as db, db.execute(sql, params) as cur:
            return await cur.fetchone()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def connect(self) -> None:
        try:
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self.migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreError(f"store {self.path}: {exc}") from None
        except BaseException:
            # Whatever stops the start (a newer schema, a cancel): never leak the connection.
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def schema_version(self) -> int:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_ts REAL)"
        )
        async with self.db.execute("SELECT MAX(version) FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def migrate(self, migrations: Sequence[str] | None = None) -> int:
        """Apply pending migrations, each in its own transaction. Returns the new version."""
        migrations = self.migrations if migrations is None else migrations
        current = await self.schema_version()
        await self.db.commit()
        if current > len(migrations):
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this program "
                f"knows ({len(migrations)}); upgrade omnitensor"
            )
        for version in range(current + 1, len(migrations) + 1):
            script = migrations[version - 1]
            # executescript would commit implicitly; run statements in one explicit txn.
            await self.db.execute("BEGIN")
            try:
                for statement in _split_sql(script):
                    await self.db.execute(statement)
                await self.db.execute(
                    "INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)",
                    (version, time.time()),
                )
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        return len(migrations)


class ReplayMarksMixin(SqliteStore):
    """For stores whose schema has the ``high_water`` table: replay marks across restarts.

    Receivers keep one high-water seq per (sender, topic) (``core.protocol.inbound``); both
    the node and the coordinator store theirs here.
    """

    async def load_high_water(self) -> dict[tuple[str, str], int]:
        async with self.db.execute("SELECT sender, topic, seq FROM high_water") as cur:
            return {(r[0], r[1]): int(r[2]) async for r in cur}

    async def save_high_water(self, marks: dict[tuple[str, str], int]) -> None:
        if not marks:
            return
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO high_water (sender, topic, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (sender, topic) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                [(sender, topic, seq) for (sender, topic), seq in marks.items()],
            )


def _split_sql(script: str) -> list[str]:
    """The script's statements; a trigger's body keeps its inner semicolons."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip().rstrip(";").strip():
                statements.append(current.strip())
            current = ""
    return statements
