"""Exact numbers: fractions for factors and quantities, integer base units for money."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

Exact = int | Fraction | Decimal | str | float


def exact(value: Exact) -> Fraction:
    """``value`` as an exact Fraction.

    A float is read as the decimal it prints as (``0.1`` is 1/10, not the binary double), so
    a measured 0.2 TFLOPS means 1/5 TFLOPS; strings may be ``"3/2"`` or ``"1.5"``.
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return Fraction(repr(value))
    if isinstance(value, str):
        return Fraction(value.strip())
    if isinstance(value, int | Fraction | Decimal):
        return Fraction(value)
    raise TypeError(f"{value!r} is not a number")


def floor_int(value: Fraction) -> int:
    """Round down to an integer, exactly."""
    return value.numerator // value.denominator


def number_text(value: Fraction, places: int = 2) -> str:
    """A quantity for people: at most ``places`` decimals (rounded down), no trailing zeros."""
    scale = 10**places
    scaled = floor_int(value * scale)
    whole, frac = divmod(abs(scaled), scale)
    sign = "-" if scaled < 0 else ""
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{places}d}".rstrip("0")


def fraction_text(value: Fraction) -> str:
    """A Fraction for data files and the wire: ``"3/2"`` or ``"3"``."""
    return str(value)
