"""Display helpers: how the CLI and the console write amounts, times and missing values.

Display-only decisions live here, never rules (like nvitop's ``tui/library``); both front
ends use them, so a duration or an amount reads the same in both. ``None`` always means
"not available" and is shown as ``n/a``. No Textual here: the CLI imports this too.
"""

from __future__ import annotations

import math
import time
from typing import Any

from core.money import BASE_UNITS_PER_OMNIT, format_omnit

NA = "n/a"
# Eighths of a cell, for bars finer than one character.
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def na(value: Any, fmt: str = "{}") -> str:
    """``fmt`` applied to ``value``, or ``n/a`` when it is None."""
    return NA if value is None else fmt.format(value)


# -- OMNIT amounts (integer base units; ``core.money`` parses them) ---------------------------


def omnit_amount(base_units: int | None, *, exact: bool = False, grouped: bool = True) -> str:
    """An amount in base units as OMNIT digits, by integer arithmetic: ``1,200``.

    Whole OMNIT by default (truncated toward zero, as a ledger shows a balance), except
    under 1 OMNIT, which shows 3 significant digits (``small_omnit``); ``exact`` adds the
    fractional digits that are not zero, so nothing is rounded away. ``grouped``
    puts thousands separators in the whole part (the console); the CLI's documented lines
    have none (``1200 OMNIT``).
    """
    if base_units is None:
        return NA
    amount = int(base_units)
    if not exact and 0 < abs(amount) < BASE_UNITS_PER_OMNIT:
        # Below 1 OMNIT whole digits say 0 for every small rig: show 3 significant digits
        # (truncated, never rounded up).
        return small_omnit(amount)
    text = format_omnit(amount, exact=exact)
    if not grouped:
        return text
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = digits.partition(".")
    return f"{sign}{int(whole):,}{dot}{frac}"


def small_omnit(base_units: int, digits: int = 3) -> str:
    """An amount under 1 OMNIT to ``digits`` significant digits, truncated: ``0.000894``."""
    sign = "-" if base_units < 0 else ""
    frac = f"{abs(base_units):09d}"
    first = len(frac) - len(frac.lstrip("0"))
    kept = frac[: first + digits].rstrip("0")
    return f"{sign}0.{kept}"


def omnit_label(base_units: int | None, *, exact: bool = True, grouped: bool = True) -> str:
    """``12.5 OMNIT``, or ``n/a`` (without a unit) when not available."""
    if base_units is None:
        return NA
    return f"{omnit_amount(base_units, exact=exact, grouped=grouped)} OMNIT"


def signed_omnit(base_units: int | None, *, grouped: bool = True) -> str:
    """An exact ledger amount with an explicit sign: ``+12.5`` or ``-3``."""
    if base_units is None:
        return NA
    return ("+" if base_units >= 0 else "") + omnit_amount(base_units, exact=True, grouped=grouped)


def gib(n_bytes: int | None) -> str:
    """Bytes as GiB with one decimal."""
    return NA if n_bytes is None else f"{n_bytes / 2**30:.1f}"


def bar(fraction: float | None, width: int) -> str:
    """A horizontal bar ``width`` cells wide, in eighths of a cell; blank when unknown."""
    if width <= 0:
        return ""
    if fraction is None or math.isnan(fraction):
        return " " * width
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part else "")
    return text.ljust(width)


def duration(seconds: float | None) -> str:
    """A short human duration: ``3d 04h``, ``2h 05m``, ``12m 30s``, ``45s``."""
    if seconds is None:
        return NA
    s = max(0, int(seconds))
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def uptime(seconds: float | None) -> str:
    """Uptime as ``1d 2:03:04`` (the same form as ``omnitensor status``)."""
    if seconds is None:
        return NA
    s = max(0, int(seconds))
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours}:{minutes:02d}:{secs:02d}"


def time_left(deadline: float | None, now: float | None = None) -> str:
    """``2h 05m left``, ``ended`` or ``n/a``."""
    if deadline is None:
        return NA
    left = deadline - (time.time() if now is None else now)
    return "ended" if left <= 0 else f"{duration(left)} left"


def days_or_hours_left(deadline: float, now: float | None = None) -> str:
    """``2.5 days left`` (two days or more), ``3.0 h left`` or ``ended``: the CLI's form."""
    seconds = deadline - (time.time() if now is None else now)
    if seconds <= 0:
        return "ended"
    hours = seconds / 3600
    return f"{hours / 24:.1f} days left" if hours >= 48 else f"{hours:.1f} h left"


def clock(ts: float | None) -> str:
    """Local ``HH:MM`` of a timestamp."""
    return NA if ts is None else time.strftime("%H:%M", time.localtime(ts))


def clock_seconds(ts: float | None) -> str:
    """Local ``HH:MM:SS`` of a timestamp."""
    return NA if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def date_time(ts: float | None) -> str:
    """Local ``YYYY-MM-DD HH:MM`` of a timestamp."""
    return NA if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def date_time_seconds(ts: float | None) -> str:
    """Local ``YYYY-MM-DD HH:MM:SS`` of a timestamp."""
    return NA if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def date(ts: float | None) -> str:
    """Local ``YYYY-MM-DD`` of a timestamp."""
    return NA if ts is None else time.strftime("%Y-%m-%d", time.localtime(ts))


# -- benchmark results -----------------------------------------------------------------------

# Backends whose fp16 GEMM has no BLAS behind it: a number measured there (NumPy's fp16 matmul
# is a plain loop, ~0.000 TFLOPS) reads as a broken GPU, so it is not shown as a rate.
NO_FP16_BACKENDS = frozenset({"numpy"})


def fp16_rate(backend: str, tflops: float) -> str:
    """The fp16 GEMM rate, or why there is none: ``12.345 TFLOPS``, ``n/a on numpy ...``."""
    if backend in NO_FP16_BACKENDS:
        return f"n/a on {backend} (no fp16 BLAS)"
    return f"{tflops:.3f} TFLOPS"


# -- text in narrow columns --------------------------------------------------------------------


def clip_words(text: str, width: int) -> str:
    """``text`` in ``width`` cells, cut at a word with ``…`` when longer.

    A word longer than most of the width (an id, a hash) is cut inside, so the cell stays
    full rather than nearly empty.
    """
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    room = width - 1  # the ellipsis takes one cell
    cut = text.rfind(" ", 0, room + 1)
    if cut < room // 2:
        cut = room
    return text[:cut].rstrip(" ,;:(") + "…"
