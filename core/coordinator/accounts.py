"""Accounts on the coordinator: balances net of deposits, staking, unbonding, slashing.

A node's balance is what the ledger holds for it minus its deposit: what is staked and what
is unbonding (unstaked, locked and still slashable until ``unbond_at``). The unbonding part
is released lazily: reads count it as spendable once its time has come, and the next write
transaction on the account records the release.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from core.coordinator.game_base import GameBase
from core.game import (
    Account,
    Reputation,
    can_take_task,
    slash,
    stake_required,
)
from core.game import stake as stake_rule
from core.game import unstake as unstake_rule
from core.money import format_omnit


class AccountBook(GameBase):
    """Stakes move in one write transaction each; a slash lands with its burn or not at all."""

    async def account(self, node_id: str, now: float | None = None) -> Account:
        now = time.time() if now is None else now
        row = await self._account_row(node_id)
        owned = await self.store.balance(node_id)
        staked = int(row[0]) if row else 0
        unbonding = int(row[6]) if row and float(row[7]) > now else 0
        reputation = Reputation(*(int(x) for x in row[1:4])) if row else Reputation()
        return Account(
            balance=max(0, owned - staked - unbonding),
            staked=staked,
            reputation=reputation,
            unbonding=unbonding,
        )

    async def unbonding_until(self, node_id: str) -> float | None:
        """When the unbonding part becomes spendable (None when nothing is unbonding)."""
        row = await self._account_row(node_id)
        if row is None or int(row[6]) == 0 or float(row[7]) <= time.time():
            return None
        return float(row[7])

    async def stake(self, node_id: str, amount: int) -> dict[str, Any]:
        return await self._move_stake(node_id, amount, stake_rule)

    async def unstake(self, node_id: str, amount: int) -> dict[str, Any]:
        return await self._move_stake(node_id, amount, unstake_rule)

    async def _move_stake(
        self, node_id: str, amount: int, rule: Callable[[Account, int], Account]
    ) -> dict[str, Any]:
        """Check and apply a stake change in one write transaction (no lost updates)."""
        now = time.time()
        async with self.store.transaction() as db:
            account = await self._locked_account(db, node_id, now)
            after = rule(account, amount)
            # Every unstake (re)starts the unbonding clock of what is unbonding.
            unbond_at = (
                now + self.rules.staking.unbonding_s if after.unbonding > account.unbonding else 0
            )
            await db.execute(
                "INSERT INTO accounts (node_id, staked, unbonding, unbond_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (node_id) DO UPDATE SET staked = excluded.staked,"
                " unbonding = excluded.unbonding,"
                " unbond_at = MAX(accounts.unbond_at, excluded.unbond_at)",
                (node_id, after.staked, after.unbonding, unbond_at),
            )
        return {"staked": after.staked, "balance": after.balance, "unbonding": after.unbonding}

    async def _locked_account(
        self, db: aiosqlite.Connection, node_id: str, now: float | None = None
    ) -> Account:
        """The account inside a write transaction, with a due release recorded."""
        now = time.time() if now is None else now
        async with db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (node_id,)
        ) as cur:
            owned_row = await cur.fetchone()
        async with db.execute(
            "SELECT staked, unbonding, unbond_at FROM accounts WHERE node_id = ?", (node_id,)
        ) as cur:
            row = await cur.fetchone()
        owned = int(owned_row[0]) if owned_row else 0
        staked, unbonding = (int(row[0]), int(row[1])) if row else (0, 0)
        if row is not None and unbonding and float(row[2]) <= now:
            await db.execute("UPDATE accounts SET unbonding = 0 WHERE node_id = ?", (node_id,))
            unbonding = 0
        return Account(
            balance=max(0, owned - staked - unbonding), staked=staked, unbonding=unbonding
        )

    async def spendable(self, db: aiosqlite.Connection, node_id: str, now: float) -> int:
        """What the account may spend, read inside the caller's write transaction."""
        return (await self._locked_account(db, node_id, now)).balance

    async def reputations(self, node_ids: Iterable[str]) -> dict[str, Reputation]:
        """Reputations of several nodes in one query (the ingest path)."""
        ids = sorted(set(node_ids))
        found = dict.fromkeys(ids, Reputation())
        if not ids:
            return found
        marks = ",".join("?" * len(ids))
        async with self.store.db.execute(
            "SELECT node_id, consecutive, verified, failed FROM accounts"  # noqa: S608
            f" WHERE node_id IN ({marks})",
            ids,
        ) as cur:
            async for row in cur:
                found[row[0]] = Reputation(int(row[1]), int(row[2]), int(row[3]))
        return found

    async def stakes(self, node_ids: Iterable[str]) -> dict[str, int]:
        ids = sorted(set(node_ids))
        found = dict.fromkeys(ids, 0)
        if not ids:
            return found
        marks = ",".join("?" * len(ids))
        async with self.store.db.execute(
            f"SELECT node_id, staked FROM accounts WHERE node_id IN ({marks})",  # noqa: S608
            ids,
        ) as cur:
            async for row in cur:
                found[row[0]] = int(row[1])
        return found

    def cap_for_stake(self, value: int, staked: int) -> tuple[int, str]:
        """Higher-value tasks need a stake: without enough, a task pays the free value only.

        Returns the amount to credit and, when capped, the reason to add to the entry.
        """
        if can_take_task(Account(staked=staked), value, self.rules):
            return value, ""
        free = self.rules.staking.free_task_value
        need = stake_required(value, self.rules)
        return free, (
            f"capped at {format_omnit(free, exact=True)} OMNIT: a task worth "
            f"{format_omnit(value, exact=True)} OMNIT needs {format_omnit(need, exact=True)} "
            f"OMNIT staked"
        )

    @staticmethod
    async def count_failure(db: aiosqlite.Connection, node_id: str) -> None:
        """A failure on the node's record with nothing slashed (a validation report the
        others outvoted or the coordinator's own check contradicted): the streak resets.
        Inside the caller's transaction."""
        await db.execute(
            "INSERT INTO accounts (node_id, failed) VALUES (?, 1) ON CONFLICT (node_id)"
            " DO UPDATE SET consecutive = 0, failed = failed + 1",
            (node_id,),
        )

    async def on_failed_work(self, node_id: str, work_id: str, reason: str) -> int:
        """Work proven wrong: slash the deposit (burned, with the reason), reset reputation.

        One transaction, once per piece of work: the cut and its burn entry land together or
        not at all, and a second call for the same work changes nothing. The deposit is read
        now, at slash time: staked plus what is still unbonding.
        """
        fraction = self.rules.staking.slash_fraction
        async with self.store.transaction() as db:
            async with db.execute(
                "SELECT 1 FROM ledger WHERE kind = 'slash' AND account = ? AND ref = ?",
                (node_id, work_id),
            ) as cur:
                if await cur.fetchone() is not None:
                    return 0
            account = await self._locked_account(db, node_id)
            after, slashed = slash(account, fraction)
            await db.execute(
                "INSERT INTO accounts (node_id, failed) VALUES (?, 1) ON CONFLICT (node_id)"
                " DO UPDATE SET staked = ?, unbonding = ?, consecutive = 0, failed = failed + 1",
                (node_id, after.staked, after.unbonding),
            )
            if slashed > 0:
                await self.store._insert_entry(
                    account=node_id,
                    amount=-slashed,
                    kind="slash",
                    reason=(
                        f"slashed {fraction} of the stake: work {work_id} failed "
                        f"verification ({reason[:200]})"
                    ),
                    ref=work_id,
                )
        return slashed
