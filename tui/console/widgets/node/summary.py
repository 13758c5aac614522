"""The dashboard's one-line summaries: node and link, work and earnings, multiplier, events.

Pure functions from snapshot sections to ``Content``: easy to test and cheap to compare, so
the widgets showing them redraw only when a line really changed. Sections the node does not
have yet (the network's wallet and multiplier) read "not available yet".
"""

from __future__ import annotations

import time
from fractions import Fraction

from textual.content import Content

from core.api.network import MultiplierEvent, MultiplierEvents
from core.api.views import (
    BenchProgressView,
    LinkView,
    NodeSnapshot,
    WorkBenchmarking,
    WorkIdle,
    WorkPaused,
    WorkState,
)
from core.textsafe import printable
from tui.format import clock, clock_seconds, date_time, duration, omnit_label, signed_omnit


def uptime_short(seconds: float | None) -> str:
    """``<1m``, ``12m``, ``1h 05m``, ``3d 04h``: minute resolution, so it redraws rarely."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return "<1m"
    return duration(seconds - seconds % 60).removesuffix(" 00s")


def link_text(link: LinkView | None) -> Content:
    """``connected to mqtt://...``, ``offline since HH:MM (mqtt://...) · why · retry HH:MM:SS``,
    ``local network``, ``no network``."""
    if link is None:
        return Content.styled("network not available yet", "$text-muted")
    if link.mode == "none":
        return Content.styled("no network", "$text-muted")
    state, broker = link.state, link.broker or ""
    local = link.mode == "local"
    where = "local network" if local else ""
    if state == "connected":
        text = (
            Content.assemble((where, "$success"))
            if local
            else Content.assemble(("connected", "$success"), f" to {broker}")
        )
        if link.coordinator_online is False:
            text += Content.assemble(" · ", ("coordinator offline", "$warning"))
        return text
    if state == "offline":
        label = f"{where} offline" if local else "offline"
        text = Content.assemble((label, "$error"), f" since {clock(link.since_ts)}")
        if not local and broker:
            # Which broker it cannot reach, as `status` says it (a remote one is configured).
            text += Content(f" ({broker})")
        if link.reason:
            text += Content(f" · {printable(link.reason, 80)}")
        if link.retry_ts is not None:
            text += Content.styled(f" · retry {clock_seconds(link.retry_ts)}", "$text-muted")
        return text
    if state == "connecting":
        target = where or broker
        return Content.assemble(("connecting", "$warning"), f" to {target}")
    return Content(f"{where} {state}".strip())


def node_line(snapshot: NodeSnapshot, now: float | None = None) -> Content:
    """Name, short id, link state, backend and uptime."""
    now = time.time() if now is None else now
    node, backend = snapshot.node, snapshot.backend
    started = node.started_ts
    up = uptime_short(now - started) if started else "n/a"
    if backend.error:
        engine = Content.styled(f"no backend: {backend.error}", "$error")
    else:
        device = f" ({backend.device})" if backend.device else ""
        engine = Content(f"{backend.name}{device}")
    return Content.assemble(
        (node.name, "bold"),
        " ",
        (node.short_id, "$text-muted"),
        "  ·  ",
        link_text(snapshot.link),
        "  ·  ",
        ("backend ", "$text-muted"),
        engine,
        "  ·  ",
        ("up ", "$text-muted"),
        up,
        *(("  ·  ", model_text(snapshot)) if snapshot.model is not None else ()),
    )


def model_text(snapshot: NodeSnapshot) -> Content:
    """The embedding model in a few words: its speed, ready, or how to get it."""
    model = snapshot.model
    if model is None or not model.installed:
        return Content.styled("no model: omnitensor model install", "$warning")
    last = snapshot.last_benchmark
    run = last.inference if last is not None else None
    work = snapshot.inference
    if work is not None and work.current:
        return Content.assemble(("model ", "$text-muted"), (work.current, "$accent"))
    speed = "ready"
    if run is not None and run.available and run.sentences_per_s is not None:
        speed = f"{run.sentences_per_s:,.0f} sent/s"
    if work is None or not (work.accepted or work.rejected):
        return Content.assemble(("model ", "$text-muted"), speed)
    verdicts = Content.assemble(
        "  ·  ",
        ("inference ", "$text-muted"),
        f"{work.accepted} accepted",
        *((", ", (f"{work.rejected} rejected", "$warning")) if work.rejected else ()),
    )
    return Content.assemble(("model ", "$text-muted"), speed, verdicts)


def work_text(work: WorkState | None, bench: BenchProgressView | None) -> Content:
    """What the node does now; live benchmark progress wins over the snapshot's."""
    if bench is not None:
        return Content.assemble(("benchmarking", "$accent"), f" {bench.stage} {bench.fraction:.0%}")
    if work is None:
        return Content("n/a")
    if isinstance(work, WorkIdle):
        return Content("idle")
    if isinstance(work, WorkBenchmarking):
        progress = work.progress
        detail = f" {progress.stage} {progress.fraction:.0%}" if progress is not None else ""
        return Content.assemble(("benchmarking", "$accent"), detail)
    assert isinstance(work, WorkPaused)
    reason = work.reason.removeprefix("guard: ")
    return Content.assemble(("paused", "$warning"), f" ({reason})" if reason else "")


def work_line(snapshot: NodeSnapshot, bench: BenchProgressView | None) -> Content:
    """Current work, today's earnings and the guard summary."""
    wallet = snapshot.wallet
    if wallet is None:
        earned = Content.styled("not available yet", "$text-muted")
    else:
        earned = Content(f"{signed_omnit(wallet.earned_today)} OMNIT")
    summary = snapshot.guard.summary.removeprefix("guard: ") if snapshot.guard else ""
    telemetry = snapshot.telemetry
    driver = telemetry.status.driver_version if telemetry is not None else None
    return Content.assemble(
        ("work ", "$text-muted"),
        work_text(snapshot.work, bench),
        "  ·  ",
        ("today ", "$text-muted"),
        earned,
        "  ·  ",
        ("guard ", "$text-muted"),
        summary or "n/a",
        *((("  ·  ", ("driver ", "$text-muted"), str(driver))) if driver else ()),
    )


def _factor(value: Fraction) -> str:
    return f"x{float(value):g}"


def multiplier_banner(
    multiplier: MultiplierEvents | None, now: float | None = None
) -> Content | None:
    """The active multiplier with its end time; None when rewards are at the base rate."""
    if multiplier is None:
        return None
    now = time.time() if now is None else now
    active = multiplier.active
    factor = multiplier.ratio
    if not active and not factor > 1:
        return None
    names = ", ".join(e.name for e in active)
    end = min((e.end_ts for e in active), default=None)
    until = f" until {date_time(end)} ({duration(end - now)} left)" if end else ""
    return Content.assemble(
        (f" {_factor(factor)} rewards ", "bold reverse"),
        f" {names}" if names else "",
        until,
    )


def upcoming_events(
    multiplier: MultiplierEvents | None, now: float | None = None, limit: int = 3
) -> Content:
    """The next multiplier events, soonest first."""
    if multiplier is None:
        return Content.assemble(("events ", "$text-muted"), ("not available yet", "$text-muted"))
    now = time.time() if now is None else now
    upcoming: list[MultiplierEvent] = sorted(multiplier.upcoming, key=lambda e: e.start_ts)
    if not upcoming:
        return Content.assemble(("events ", "$text-muted"), "none announced")
    parts: list[Content | str | tuple[str, str]] = [("upcoming ", "$text-muted")]
    for i, event in enumerate(upcoming[:limit]):
        when = f"{date_time(event.start_ts)}-{clock(event.end_ts)}"
        soon = f" (in {duration(event.start_ts - now)})"
        parts += [
            "  ·  " if i else "",
            (_factor(event.ratio), "bold"),
            f" {event.name} {when}{soon}",
        ]
    return Content.assemble(*parts)


def alerts_text(snapshot: NodeSnapshot, now: float | None = None) -> Content:
    """The alerts that hold now, one a line, with how long each has held."""
    now = time.time() if now is None else now
    lines: list[Content | str | tuple[str, str]] = []
    for i, alert in enumerate(snapshot.alerts):
        lines += [
            "\n" if i else "",
            ("alert ", "bold $error"),
            alert.message,
            (f"  (since {clock(alert.since_ts)}, {duration(now - alert.since_ts)})", "$text-muted"),
        ]
    return Content.assemble(*lines)


def overview_text(snapshot: NodeSnapshot, now: float | None = None) -> Content:
    """The rest of the dashboard, never empty: the CPU when there is no GPU, work done and
    acceptance, the account and its earning rate, active quests, the season's rank."""
    now = time.time() if now is None else now
    lines: list[Content] = []
    telemetry = snapshot.telemetry
    cpu = snapshot.cpu
    if cpu is not None and not (telemetry is not None and telemetry.gpus):
        load = " ".join(f"{p:.0f}%" for p in cpu.load_pct) or "n/a"
        temp = f"{cpu.temperature_c:.0f}°C" if cpu.temperature_c is not None else "n/a"
        power = f"{cpu.power_w:.0f} W" if cpu.power_w is not None else "n/a"
        last = snapshot.last_benchmark
        if last is not None:
            bench = f"fp32 {last.gemm.fp32.tflops:.3f} TFLOPS, {last.bandwidth.gbps:.1f} GB/s"
        elif isinstance(snapshot.work, WorkBenchmarking):
            # The first run (the work line shows its progress): b would only be refused.
            bench = "first run in progress"
        else:
            bench = "not run yet (b)"
        lines.append(
            Content.assemble(
                ("cpu      ", "$text-muted"),
                f"{cpu.name} · {cpu.cores} cores · load {load} · temperature {temp}"
                f" · power {power}",
            )
        )
        lines.append(Content.assemble(("bench    ", "$text-muted"), bench))
    lines.append(done_text(snapshot, now))
    lines.append(account_text(snapshot, now))
    lines.append(quests_text(snapshot))
    lines.append(season_text(snapshot))
    return Content("\n").join(lines)


def done_text(snapshot: NodeSnapshot, now: float) -> Content:
    counters = snapshot.counters
    accepted = counters.acknowledged - counters.rejected
    minutes = max(snapshot.node.uptime_s / 60, 1e-9)
    rate = f"{accepted / minutes:.1f}/min" if snapshot.node.uptime_s >= 60 else "n/a"
    share = f"{accepted / counters.acknowledged:.0%}" if counters.acknowledged else "n/a"
    work = snapshot.inference
    inference = (
        f" · inference {work.accepted} accepted, {work.rejected} rejected"
        if work is not None and (work.accepted or work.rejected)
        else ""
    )
    return Content.assemble(
        ("done     ", "$text-muted"),
        f"{accepted} verified · {counters.rejected} rejected (acceptance {share}) · {rate}"
        f" · {counters.outbox_pending} to send{inference}",
    )


def account_text(snapshot: NodeSnapshot, now: float) -> Content:
    wallet = snapshot.wallet
    if wallet is None:
        return Content.assemble(("account  ", "$text-muted"), ("not available yet", "$text-muted"))
    hourly = wallet.work_hourly
    if len(hourly) == 24:  # the coordinator's ledger, whole (a page of entries is minutes)
        hour, day_total, covers_day = hourly[-1], sum(hourly), hourly[0] > 0
    else:  # an older coordinator: the newest page of entries
        earned = [e for e in wallet.entries if e.amount > 0 and e.kind in ("reward", "job-fee")]
        hour = sum(e.amount for e in earned if e.ts >= now - 3600)
        day_total = sum(e.amount for e in earned if e.ts >= now - 86400)
        covers_day = bool(earned) and min(e.ts for e in earned) <= now - 86400
    per_hour_day = f"{omnit_label(day_total // 24, exact=False)}/h" if covers_day else "n/a"
    return Content.assemble(
        ("account  ", "$text-muted"),
        f"available {omnit_label(wallet.available, exact=False)} · staked "
        f"{omnit_label(wallet.staked, exact=False)} · last hour {omnit_label(hour, exact=False)}"
        f" · 24 h average {per_hour_day}",
        *(("  ", (spark, "$accent")) if (spark := sparkline(snapshot.earnings_hourly)) else ()),
    )


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: tuple[int, ...]) -> str:
    """A one-line chart of ``values`` (empty when all are 0): earnings per hour, 24 h."""
    top = max(values, default=0)
    if top <= 0:
        return ""
    return "".join(SPARKS[min(len(SPARKS) - 1, v * len(SPARKS) // (top + 1))] for v in values)


def quests_text(snapshot: NodeSnapshot) -> Content:
    quests = snapshot.quests
    if quests is None:
        return Content.assemble(("quests   ", "$text-muted"), ("not available yet", "$text-muted"))
    active = [q for q in quests if q.state in ("accepted", "in_progress", "completed")]
    if not active:
        offered = sum(q.state == "offered" for q in quests)
        return Content.assemble(
            ("quests   ", "$text-muted"), f"none accepted · {offered} on offer (2: Quests)"
        )
    parts = []
    for quest in active[:3]:
        if quest.state == "completed":
            parts.append(f"{quest.title} complete: claim it (c)")
        else:
            fraction = (
                quest.progress.current / quest.progress.target if quest.progress.target else 0
            )
            parts.append(f"{quest.title} {fraction:.0%}")
    more = f" · +{len(active) - 3} more" if len(active) > 3 else ""
    return Content.assemble(("quests   ", "$text-muted"), " · ".join(parts) + more)


def season_text(snapshot: NodeSnapshot) -> Content:
    season = snapshot.season
    if season is None:
        return Content.assemble(("season   ", "$text-muted"), ("not available yet", "$text-muted"))
    ranked = [
        f"#{standing.rank} {category}"
        for category, standing in season.ranks.items()
        if standing.rank is not None
    ]
    where = " · ".join(ranked) if ranked else "not ranked yet"
    return Content.assemble(
        ("season   ", "$text-muted"), f"{season.id} · {where} · {season.days_left} days left"
    )
