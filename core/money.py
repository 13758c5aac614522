"""OMNIT amounts: integer base units, parsed from and formatted to OMNIT in one place.

Money is exact: 1 OMNIT = 10**9 base units, amounts are ``int`` everywhere (never floats), and
the 1,000,000,000 OMNIT maximum supply is expressed here once.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

BASE_UNITS_PER_OMNIT: Final = 10**9
MAX_SUPPLY_OMNIT: Final = 1_000_000_000
MAX_SUPPLY: Final = MAX_SUPPLY_OMNIT * BASE_UNITS_PER_OMNIT  # 10**18 fits SQLite's int64


def parse_omnit(amount: int | str | Decimal) -> int:
    """Whole or decimal OMNIT to base units, exactly (``"1.5"`` is 1_500_000_000).

    ValueError when the text is not a number or is finer than one base unit.
    """
    try:
        value = Decimal(amount) * BASE_UNITS_PER_OMNIT
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{amount!r} is not an amount of OMNIT") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not an amount of OMNIT")
    if value != value.to_integral_value():
        raise ValueError(f"{amount} OMNIT is finer than one base unit")
    return int(value)


def format_omnit(base_units: int, *, exact: bool = False) -> str:
    """Base units as OMNIT: whole (rounded down) by default, or exact with all decimals."""
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), BASE_UNITS_PER_OMNIT)
    if not exact or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


def omnit_text(base_units: int) -> str:
    """``"120 OMNIT"`` / ``"0.5 OMNIT"``: exact, for messages about stakes and balances."""
    return f"{format_omnit(base_units, exact=True)} OMNIT"
