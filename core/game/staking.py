"""Staking, slashing and reputation, BOINC-style; exact integers in base units.

An account's ``balance`` is what it can spend; ``staked`` is its security deposit and
``unbonding`` what it asked back, locked (and still slashable) until the unbonding period
ends. Reputation counts verified results (in a row, and in total); one failure starts the
run again. Every result is verified whatever the reputation (docs/work-units.md, section 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from core.game.amounts import floor_int
from core.game.errors import StakeError
from core.game.rules import GameRules
from core.game.rules_file import default_rules
from core.money import omnit_text


def _check_amount(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} is an integer number of base units, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Reputation:
    consecutive: int = 0  # verified results in a row since the last failure
    verified: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Account:
    balance: int = 0  # spendable base units
    staked: int = 0  # base units held as a security deposit
    reputation: Reputation = field(default_factory=Reputation)
    unbonding: int = 0  # unstaked, locked until the unbonding period ends (still slashable)

    def __post_init__(self) -> None:
        if _check_amount(self.balance, "balance") < 0:
            raise ValueError("balance cannot be negative")
        if _check_amount(self.staked, "staked") < 0:
            raise ValueError("stake cannot be negative")
        if _check_amount(self.unbonding, "unbonding") < 0:
            raise ValueError("unbonding cannot be negative")


def stake(account: Account, amount: int) -> Account:
    """Move ``amount`` from the balance into the stake."""
    if _check_amount(amount, "amount") <= 0:
        raise StakeError("the amount to stake must be positive")
    if amount > account.balance:
        raise StakeError(
            f"cannot stake {omnit_text(amount)}: balance is {omnit_text(account.balance)}"
        )
    return replace(account, balance=account.balance - amount, staked=account.staked + amount)


def unstake(account: Account, amount: int) -> Account:
    """Start returning ``amount`` of the stake: it unbonds (locked, slashable) first."""
    if _check_amount(amount, "amount") <= 0:
        raise StakeError("the amount to unstake must be positive")
    if amount > account.staked:
        raise StakeError(
            f"cannot unstake {omnit_text(amount)}: staked is {omnit_text(account.staked)}"
        )
    return replace(account, staked=account.staked - amount, unbonding=account.unbonding + amount)


def release(account: Account) -> Account:
    """The unbonding period ended: what was unbonding is spendable again."""
    return replace(account, balance=account.balance + account.unbonding, unbonding=0)


def slash(account: Account, fraction: Fraction) -> tuple[Account, int]:
    """Work proven wrong: forfeit ``fraction`` of the deposit (rounded down), reset reputation.

    The deposit is what is staked and unbonding at the time of the slash, so unstaking just
    before a bad result is judged saves nothing. Returns the new account and the amount
    slashed (to burn); the stake is cut first, then the unbonding part.
    """
    if isinstance(fraction, float | bool) or not isinstance(fraction, Fraction | int):
        raise TypeError("the slash fraction is a Fraction (floats are not exact)")
    if not 0 <= fraction <= 1:
        raise ValueError(f"slash fraction {fraction} is outside 0..1")
    slashed = floor_int((account.staked + account.unbonding) * Fraction(fraction))
    from_stake = min(slashed, account.staked)
    reputation = record_failed(account.reputation)
    after = replace(
        account,
        staked=account.staked - from_stake,
        unbonding=account.unbonding - (slashed - from_stake),
        reputation=reputation,
    )
    return after, slashed


def record_verified(reputation: Reputation) -> Reputation:
    """One more verified result in a row."""
    return replace(
        reputation, consecutive=reputation.consecutive + 1, verified=reputation.verified + 1
    )


def record_failed(reputation: Reputation) -> Reputation:
    """A result failed verification: the run of verified results starts again."""
    return replace(reputation, consecutive=0, failed=reputation.failed + 1)


def stake_required(task_value: int, rules: GameRules | None = None) -> int:
    """Base units a node must have staked to take a task worth ``task_value`` base units."""
    rules = default_rules() if rules is None else rules
    if _check_amount(task_value, "task value") <= rules.staking.free_task_value:
        return 0
    proportional = task_value * rules.staking.stake_per_task_value
    # Round up: the deposit must cover the rule, never fall a base unit short of it.
    return max(rules.staking.min_stake, -((-proportional.numerator) // proportional.denominator))


def check_task(account: Account, task_value: int, rules: GameRules | None = None) -> None:
    """Refuse (StakeError) a task the account has not staked enough for."""
    needed = stake_required(task_value, rules)
    if account.staked < needed:
        raise StakeError(
            f"a task worth {omnit_text(task_value)} needs {omnit_text(needed)} staked; "
            f"staked is {omnit_text(account.staked)}"
        )


def can_take_task(account: Account, task_value: int, rules: GameRules | None = None) -> bool:
    """Whether the account's stake allows a task worth ``task_value`` base units."""
    return account.staked >= stake_required(task_value, rules)
