"""The dashboard's one-line summaries: node and link, work and earnings, multiplier, events.

Pure functions from snapshot sections to ``Content``: easy to test and cheap to compare, so
the widgets showing them redraw only when a line really changed. Sections the node does not
provide yet (link, wallet, multiplier) read "not available yet".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from textual.content import Content

from tui.format import clock, date_time, duration, first, signed_omnit

JSON = Mapping[str, Any]


def uptime_short(seconds: float | None) -> str:
    """``<1m``, ``12m``, ``1h 05m``, ``3d 04h``: minute resolution, so it redraws rarely."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return "<1m"
    return duration(seconds - seconds % 60).removesuffix(" 00s")


def link_text(link: JSON | None) -> Content:
    """``connected to mqtt://...``, ``offline since HH:MM``, ``local network``, ``no network``.

    ``link`` is ``{"mode": "local" | "remote" | "none", "broker", "state": "connecting" |
    "connected" | "offline", "since_ts", "coordinator_online"}``.
    """
    if link is None:
        return Content.styled("network not available yet", "$text-muted")
    mode = str(link.get("mode", "remote"))
    state = str(first(link, "state", default="unknown"))
    broker = str(first(link, "broker", "broker_url", "url", default=""))
    since = first(link, "since_ts", "since", "offline_since")
    if mode == "none":
        return Content.styled("no network", "$text-muted")
    local = mode == "local" or bool(link.get("local"))
    where = "local network" if local else ""
    if state == "connected":
        text = (
            Content.assemble((where, "$success"))
            if local
            else Content.assemble(("connected", "$success"), f" to {broker}")
        )
        if link.get("coordinator_online") is False:
            text += Content.assemble(" · ", ("coordinator offline", "$warning"))
        return text
    if state == "offline":
        label = f"{where} offline" if local else "offline"
        return Content.assemble((label, "$error"), f" since {clock(since)}")
    if state == "connecting":
        target = where or broker
        return Content.assemble(("connecting", "$warning"), f" to {target}")
    return Content(f"{where} {state}".strip())


def node_line(snapshot: JSON, now: float | None = None) -> Content:
    """Name, short id, link state, backend and uptime."""
    now = time.time() if now is None else now
    node: JSON = snapshot.get("node") or {}
    backend: JSON = snapshot.get("backend") or {}
    started = node.get("started_ts")
    up = uptime_short(now - started) if started else "n/a"
    if backend.get("error"):
        engine = Content.styled(f"no backend: {backend['error']}", "$error")
    else:
        device = f" ({backend['device']})" if backend.get("device") else ""
        engine = Content(f"{backend.get('name', 'n/a')}{device}")
    return Content.assemble(
        (str(node.get("name", "?")), "bold"),
        " ",
        (str(node.get("short_id", "")), "$text-muted"),
        "  ·  ",
        link_text(snapshot.get("link")),
        "  ·  ",
        ("backend ", "$text-muted"),
        engine,
        "  ·  ",
        ("up ", "$text-muted"),
        up,
    )


def work_text(work: JSON | None, bench: JSON | None) -> Content:
    """What the node does now; live benchmark progress wins over the snapshot's."""
    if bench is not None and bench.get("fraction") is not None:
        return Content.assemble(
            ("benchmarking", "$accent"), f" {bench.get('stage', '')} {bench['fraction']:.0%}"
        )
    if not work:
        return Content("n/a")
    state = str(work.get("state", "unknown"))
    if state == "idle":
        return Content("idle")
    if state == "benchmarking":
        progress: JSON = work.get("progress") or {}
        detail = (
            f" {progress.get('stage', '')} {progress['fraction']:.0%}"
            if progress.get("fraction") is not None
            else ""
        )
        return Content.assemble(("benchmarking", "$accent"), detail)
    if state == "paused":
        reason = str(work.get("reason", "")).removeprefix("guard: ")
        return Content.assemble(("paused", "$warning"), f" ({reason})" if reason else "")
    detail = first(work, "detail", "task", "reason", default="")
    return Content.assemble((state, "$accent"), f" {detail}" if detail else "")


def work_line(snapshot: JSON, bench: JSON | None) -> Content:
    """Current work, today's earnings and the guard summary."""
    wallet = snapshot.get("wallet")
    if wallet is None:
        earned = Content.styled("not available yet", "$text-muted")
    else:
        today = wallet.get("earned_today")
        earned = Content(f"{signed_omnit(today)} OMNIT" if today is not None else "n/a")
    guard: JSON = snapshot.get("guard") or {}
    summary = str(guard.get("summary", "")).removeprefix("guard: ")
    status: JSON = (snapshot.get("telemetry") or {}).get("status") or {}
    driver = status.get("driver_version")
    return Content.assemble(
        ("work ", "$text-muted"),
        work_text(snapshot.get("work"), bench),
        "  ·  ",
        ("today ", "$text-muted"),
        earned,
        "  ·  ",
        ("guard ", "$text-muted"),
        summary or "n/a",
        *((("  ·  ", ("driver ", "$text-muted"), str(driver))) if driver else ()),
    )


def _events(multiplier: JSON, key: str) -> list[JSON]:
    events = multiplier.get(key)
    return [e for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []


def _factor(value: Any) -> str:
    return f"x{float(value):g}" if isinstance(value, int | float) else "x?"


def multiplier_banner(multiplier: JSON | None, now: float | None = None) -> Content | None:
    """The active multiplier with its end time; None when rewards are at the base rate."""
    if not multiplier:
        return None
    now = time.time() if now is None else now
    active = _events(multiplier, "active")
    factor = multiplier.get("factor")
    if not active and not (isinstance(factor, int | float) and factor > 1):
        return None
    if factor is None and active:
        factor = active[0].get("factor")
    names = ", ".join(str(first(e, "name", "title", "kind", default="event")) for e in active)
    ends = [first(e, "end_ts", "ends_ts", "ends", "end") for e in active]
    ends = [e for e in ends if isinstance(e, int | float)] or [
        first(multiplier, "end_ts", "ends_ts", "ends", "end")
    ]
    end = min((e for e in ends if isinstance(e, int | float)), default=None)
    until = f" until {date_time(end)} ({duration(end - now)} left)" if end else ""
    return Content.assemble(
        (f" {_factor(factor)} rewards ", "bold reverse"),
        f" {names}" if names else "",
        until,
    )


def upcoming_events(multiplier: JSON | None, now: float | None = None, limit: int = 3) -> Content:
    """The next multiplier events, soonest first."""
    if multiplier is None:
        return Content.assemble(("events ", "$text-muted"), ("not available yet", "$text-muted"))
    now = time.time() if now is None else now
    upcoming = sorted(
        _events(multiplier, "upcoming"),
        key=lambda e: first(e, "start_ts", "starts_ts", "starts", "start", default=0),
    )
    if not upcoming:
        return Content.assemble(("events ", "$text-muted"), "none announced")
    parts: list[Content | str | tuple[str, str]] = [("upcoming ", "$text-muted")]
    for i, event in enumerate(upcoming[:limit]):
        start = first(event, "start_ts", "starts_ts", "starts", "start")
        end = first(event, "end_ts", "ends_ts", "ends", "end")
        name = str(first(event, "name", "title", "kind", default="event"))
        when = f"{date_time(start)}" + (f"-{clock(end)}" if end else "")
        soon = f" (in {duration(start - now)})" if isinstance(start, int | float) else ""
        parts += [
            "  ·  " if i else "",
            (_factor(event.get("factor")), "bold"),
            f" {name} {when}{soon}",
        ]
    return Content.assemble(*parts)
