"""Display helpers: how the console writes numbers, amounts, times and missing values.

This is the adapter layer between the node's JSON and the widgets (like nvitop's
``tui/library``): display-only decisions live here, never rules. ``None`` always means
"not available" and is shown as ``n/a``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

NA = "n/a"
BASE_UNITS_PER_OMNIT = 10**9
# Eighths of a cell, for bars finer than one character.
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def na(value: Any, fmt: str = "{}") -> str:
    """``fmt`` applied to ``value``, or ``n/a`` when it is None."""
    return NA if value is None else fmt.format(value)


def omnit(base_units: int | None, *, exact: bool = False) -> str:
    """An amount in base units as OMNIT with thousands separators, by integer arithmetic.

    Whole OMNIT by default (truncated toward zero, as a ledger shows a balance); ``exact``
    adds the fractional digits that are not zero, so nothing is rounded away.
    """
    if base_units is None:
        return NA
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(int(base_units)), BASE_UNITS_PER_OMNIT)
    text = f"{sign}{whole:,}"
    if exact and frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text


def omnit_text(base_units: int | None, *, exact: bool = True) -> str:
    """``12.5 OMNIT``, or ``n/a`` (without a unit) when not available."""
    return NA if base_units is None else f"{omnit(base_units, exact=exact)} OMNIT"


def signed_omnit(base_units: int | None) -> str:
    """An exact ledger amount with an explicit sign: ``+12.5`` or ``-3``."""
    if base_units is None:
        return NA
    return ("+" if base_units >= 0 else "") + omnit(base_units, exact=True)


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


def clock(ts: float | None) -> str:
    """Local ``HH:MM`` of a timestamp."""
    return NA if ts is None else time.strftime("%H:%M", time.localtime(ts))


def clock_seconds(ts: float | None) -> str:
    """Local ``HH:MM:SS`` of a timestamp."""
    return NA if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def date_time(ts: float | None) -> str:
    """Local ``YYYY-MM-DD HH:MM`` of a timestamp."""
    return NA if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def first(data: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` present (and not None) in ``data``.

    The network's payloads are still being built; accepting a field's likely spellings
    (``end_ts`` or ``ends``) keeps the console showing them while the names settle.
    """
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return default


def fraction_of(data: Mapping[str, Any]) -> float | None:
    """Progress 0..1 from ``progress`` (a fraction) or ``current``/``target`` counts."""
    progress = data.get("progress")
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        return max(0.0, min(1.0, float(progress)))
    if isinstance(progress, Mapping):
        data = progress
        fraction = data.get("fraction")
        if isinstance(fraction, int | float):
            return max(0.0, min(1.0, float(fraction)))
    current, target = data.get("current"), data.get("target")
    if isinstance(current, int | float) and isinstance(target, int | float) and target > 0:
        return max(0.0, min(1.0, current / target))
    return None
