"""Staking, slashing and reputation: exact integers, clear refusals, reputation resets."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.game import (
    Account,
    Reputation,
    StakeError,
    can_take_task,
    check_task,
    default_rules,
    record_failed,
    record_verified,
    release,
    slash,
    stake,
    stake_required,
    unstake,
)
from core.money import parse_omnit

RULES = default_rules()


def test_stake_and_unstake_move_exact_amounts_through_unbonding() -> None:
    account = Account(balance=parse_omnit(120))
    account = stake(account, parse_omnit(100))
    assert (account.balance, account.staked) == (parse_omnit(20), parse_omnit(100))
    account = unstake(account, parse_omnit("0.5"))
    # Unstaked OMNIT unbonds first: not spendable yet.
    assert (account.balance, account.staked, account.unbonding) == (
        parse_omnit(20),
        parse_omnit("99.5"),
        parse_omnit("0.5"),
    )
    account = release(account)
    assert (account.balance, account.unbonding) == (parse_omnit("20.5"), 0)


def test_a_slash_reaches_what_is_unbonding() -> None:
    account = unstake(Account(staked=parse_omnit(100)), parse_omnit(100))
    assert account.staked == 0
    after, slashed = slash(account, Fraction(1, 10))
    assert slashed == parse_omnit(10) and after.unbonding == parse_omnit(90)
    # Stake first, then unbonding.
    mixed = Account(staked=parse_omnit(5), unbonding=parse_omnit(95))
    after, slashed = slash(mixed, Fraction(1, 10))
    assert slashed == parse_omnit(10)
    assert (after.staked, after.unbonding) == (0, parse_omnit(90))


def test_staking_refusals() -> None:
    account = Account(balance=parse_omnit(120))
    with pytest.raises(StakeError) as info:
        stake(account, parse_omnit(500))
    assert str(info.value) == "cannot stake 500 OMNIT: balance is 120 OMNIT"
    with pytest.raises(StakeError, match="cannot unstake 50 OMNIT: staked is 20 OMNIT"):
        unstake(Account(balance=0, staked=parse_omnit(20)), parse_omnit(50))
    with pytest.raises(StakeError, match="must be positive"):
        stake(account, 0)
    with pytest.raises(StakeError, match="must be positive"):
        unstake(account, -1)
    with pytest.raises(TypeError, match="base units"):
        stake(account, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        Account(balance=-1)


def test_slash_is_exact_and_resets_reputation() -> None:
    reputation = Reputation(consecutive=57, verified=80, failed=1)
    account = Account(balance=parse_omnit(5), staked=parse_omnit(100) + 7, reputation=reputation)
    after, slashed = slash(account, RULES.staking.slash_fraction)
    # A tenth of 100 OMNIT + 7 base units, rounded down to a base unit.
    assert slashed == parse_omnit(10)
    assert after.staked == parse_omnit(90) + 7 and after.balance == parse_omnit(5)
    assert after.reputation == Reputation(consecutive=0, verified=80, failed=2)
    nothing, zero = slash(Account(), Fraction(1, 10))
    assert zero == 0 and nothing.reputation.failed == 1
    with pytest.raises(TypeError, match="floats are not exact"):
        slash(account, 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        slash(account, Fraction(3, 2))


@given(
    st.integers(0, 10**18),
    st.fractions(min_value=0, max_value=1),
)
def test_slash_never_creates_or_loses_base_units(staked: int, fraction: Fraction) -> None:
    account = Account(balance=3, staked=staked)
    after, slashed = slash(account, fraction)
    assert isinstance(slashed, int) and 0 <= slashed <= staked
    assert after.staked + slashed == staked and after.balance == 3
    assert slashed == staked * fraction.numerator // fraction.denominator


def test_reputation_counts_runs_and_resets_on_failure() -> None:
    reputation = Reputation()
    for _ in range(RULES.reputation.trusted_after):
        reputation = record_verified(reputation)
    assert reputation.consecutive == reputation.verified == RULES.reputation.trusted_after
    reputation = record_failed(reputation)
    assert reputation.consecutive == 0 and reputation.failed == 1
    assert reputation.verified == RULES.reputation.trusted_after


def test_higher_value_tasks_need_a_stake() -> None:
    assert stake_required(parse_omnit(1), RULES) == 0  # up to the free value
    assert stake_required(parse_omnit(2), RULES) == parse_omnit(100)  # the minimum stake
    assert stake_required(parse_omnit(50), RULES) == parse_omnit(500)  # 10 x the value
    poor = Account(balance=parse_omnit(1000))
    assert can_take_task(poor, parse_omnit(1), RULES)
    assert not can_take_task(poor, parse_omnit(2), RULES)
    with pytest.raises(
        StakeError, match="a task worth 2 OMNIT needs 100 OMNIT staked; staked is 0"
    ):
        check_task(poor, parse_omnit(2), RULES)
    staked = stake(poor, parse_omnit(100))
    assert can_take_task(staked, parse_omnit(2), RULES)
    check_task(staked, parse_omnit(10), RULES)
    assert not can_take_task(staked, parse_omnit(11), RULES)
