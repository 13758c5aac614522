"""What the command line prints: the node's views as text lines, or as JSON with ``--json``.

Text forms are the documented ones (``Top 3 Contributors:`` then ``1. user123 - 1200
OMNIT``): amounts without thousands separators, whole OMNIT unless exact.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from core.api.network import (
    LeaderboardPage,
    MultiplierEvents,
    QuestList,
    Season,
    StakeResult,
    Wallet,
)
from core.api.views import BenchmarkResult, GpuView, LastBenchmark, NodeSnapshot, WorkerView
from core.game.boards import BOARD_COUNTS, NOT_COUNTED
from core.textsafe import printable
from tui.format import (
    NO_FP16_BACKENDS,
    clock_seconds,
    date,
    date_time,
    date_time_seconds,
    days_or_hours_left,
    fp16_rate,
    na,
    omnit_amount,
    omnit_label,
    signed_omnit,
    uptime,
)


def print_json(value: Any) -> None:
    """``value`` (views, or plain data holding them) as indented JSON on stdout."""
    print(json.dumps(msgspec.to_builtins(value), indent=2))


def _omnit(base_units: int, *, exact: bool = False) -> str:
    return omnit_amount(base_units, exact=exact, grouped=False)


# -- the node -----------------------------------------------------------------------------


def format_status(snap: NodeSnapshot) -> str:
    node, backend = snap.node, snap.backend
    lines = [
        f"node       {node.name} ({node.short_id})  pid {node.pid}  up {uptime(node.uptime_s)}",
        f"id         {node.id}",
        "backend    "
        + (f"none: {backend.error}" if backend.error else f"{backend.name} ({backend.device})"),
    ]
    if backend.note:
        lines.append(f"devices    {backend.note}")
    if snap.model is not None:
        lines.append("model      " + format_model(snap))
    for alert in snap.alerts:
        since = date_time_seconds(alert.since_ts)
        lines.append(printable(f"alert      {alert.message} (since {since})"))
    work = snap.inference
    if work is not None and (work.current or work.tasks or work.rounds):
        line = (
            f"inference  {work.current or 'idle'}; {work.tasks} task(s) committed, "
            f"{work.accepted} accepted, {work.rejected} rejected, {work.rounds} quality round(s)"
        )
        if work.last_rejection:
            line += f"; last rejection: {work.last_rejection}"
        lines.append(printable(line))
    telemetry = snap.telemetry
    if telemetry is None or not telemetry.status.available:
        reason = telemetry.status.reason if telemetry is not None else "unknown"
        lines.append(f"gpus       none: {reason}")
    for gpu in telemetry.gpus if telemetry is not None else ():
        lines.append(f"gpu {gpu.index}      " + format_gpu(gpu))
    link = snap.link
    if link.state == "offline":
        since = date_time_seconds(link.since_ts or 0)
        line = f"link       offline since {since} ({link.broker})"
        if link.reason:
            line += f": {link.reason}"
        if link.retry_ts is not None:
            line += f"; next retry {clock_seconds(link.retry_ts)}"
        lines.append(printable(line))
    elif link.broker:
        where = "local network" if link.mode == "local" else link.broker
        lines.append(f"link       {link.state}: {where}")
    else:
        lines.append("link       no network")
    counters = snap.counters
    lines.append(
        f"work units {counters.submitted} submitted, "
        f"{counters.acknowledged} acknowledged, "
        f"{counters.outbox_pending} pending"
    )
    summary = snap.guard.summary if snap.guard is not None else "unknown"
    lines.append(f"guard      {summary.removeprefix('guard: ')}")
    lines.append(f"work       {snap.work.state}")
    for worker in snap.workers:
        lines.append(f"worker {worker.index}   " + format_worker(worker))
    if snap.last_benchmark is not None:
        lines.append("last bench " + format_bench_line(snap.last_benchmark))
    else:
        lines.append("last bench none yet (run `omnitensor bench`)")
    return "\n".join(lines)


def format_model(snap: NodeSnapshot) -> str:
    """The sentence-embedding model: its measured speed, or how to get it."""
    model = snap.model
    assert model is not None
    if not model.installed:
        return f"{model.model} not installed ({model.reason}); get it: {model.hint}"
    last = snap.last_benchmark
    run = last.inference if last is not None else None
    if run is not None and run.available and run.sentences_per_s is not None:
        tokens = f", {run.tokens_per_s:,.0f} tokens/s" if run.tokens_per_s else ""
        kernels = f", {run.kernels}" if run.kernels else ""
        return (
            f"{model.model}: {run.sentences_per_s:,.0f} sentences/s{tokens} (last bench{kernels})"
        )
    return f"{model.model} installed (`omnitensor bench` measures it)"


def format_worker(worker: WorkerView) -> str:
    """One device's work: ``GPU 1: computing u1a2b (12 done, last 21.3 TFLOPS)``."""
    doing = f"computing {worker.unit}" if worker.state == "computing" else worker.state
    rate = "" if worker.last_tflops is None else f", last {worker.last_tflops:.3g} TFLOPS"
    return f"{worker.label}: {doing} ({worker.done} done{rate})"


def format_gpu(gpu: GpuView) -> str:
    if gpu.error:
        return f"{gpu.name or '?'}: error: {gpu.error}"
    used, total = gpu.memory_used_bytes, gpu.memory_total_bytes
    mem = (
        f"{used / 2**30:.1f}/{total / 2**30:.1f} GiB"
        if used is not None and total is not None
        else "n/a"
    )
    power = na(gpu.power_w, "{:.0f}")
    limit = na(gpu.power_limit_w, "{:.0f}")
    return (
        f"{gpu.name}  util {na(gpu.utilization_pct, '{}%')}  mem {mem}  "
        f"{na(gpu.temperature_c, '{}°C')}  {power}/{limit} W  "
        f"sm {na(gpu.clock_sm_mhz, '{} MHz')}  fan {na(gpu.fan_pct, '{}%')}"
    )


def format_bench_line(last: LastBenchmark) -> str:
    return (
        f"{date_time(last.ts)}  fp32 {last.gemm.fp32.tflops:.3f} TFLOPS  "
        f"fp16 {fp16_rate(last.backend, last.gemm.fp16.tflops)}  "
        f"{last.bandwidth.gbps:.1f} GB/s  "
        f"{'verified' if last.verified else 'NOT verified'}"
    )


def format_bench(result: BenchmarkResult) -> str:
    gemm, bw = result.gemm, result.bandwidth
    lines = [
        f"backend    {result.backend} ({result.device})",
        f"gemm fp32  {gemm.fp32.tflops:.3f} TFLOPS  (n={gemm.fp32.n})",
        f"gemm fp16  {fp16_rate(result.backend, gemm.fp16.tflops)}"
        + ("" if result.backend in NO_FP16_BACKENDS else f"  (n={gemm.fp16.n})"),
        f"bandwidth  {bw.gbps:.1f} GB/s  ({bw.kernel}, {bw.array_bytes / 2**20:.0f} MiB)",
    ]
    if result.blas_peak_tflops is not None and result.gemm_efficiency is not None:
        lines.append(
            f"blas peak  {result.blas_peak_tflops:.3f} TFLOPS  "
            f"(efficiency {result.gemm_efficiency:.0%})"
        )
    fr = result.freivalds
    lines.append(
        f"verified   {'yes' if result.verified else 'NO'} (Freivalds, {fr.rounds} rounds"
        + (f": {fr.reason}" if fr.reason else "")
        + ")"
    )
    return "\n".join(lines)


# -- the network --------------------------------------------------------------------------


def format_leaderboard(board: LeaderboardPage) -> str:
    """The documented form: ``Top 3 Contributors:`` then ``1. user123 - 1200 OMNIT``."""
    if not board.entries:
        return f"No contributors yet on {board.category} ({board.season})."
    lines = [f"Top {len(board.entries)} Contributors:"]
    lines += [
        f"{e.rank}. {printable(e.name, 64)} - {_omnit(e.amount)} OMNIT" for e in board.entries
    ]
    lines.append(board_counts(board.category, board.season))
    return "\n".join(lines)


def board_counts(category: str, period: str) -> str:
    """What a board adds up (``(counts: ...)``), so a 0 or a missing quest reward is clear."""
    counts = BOARD_COUNTS.get(category, "OMNIT earned on this board")
    return f"({category} {period}: {counts}; {NOT_COUNTED})"


def format_wallet(wallet: Wallet) -> str:
    balance = wallet.balance
    lines = [
        f"balance   {_omnit(balance, exact=True)} OMNIT",
        # As the console's wallet shows it: what can be staked or spent, and what cannot.
        f"available {_omnit(wallet.available, exact=True)} OMNIT"
        f" · staked {_omnit(wallet.staked, exact=True)} OMNIT",
        f"today     +{_omnit(wallet.earned_today, exact=True)} OMNIT earned (since 00:00 UTC)",
        f"work      {wallet.work.accepted} verified, {wallet.work.rejected} rejected",
        f"entries   {len(wallet.entries)} (newest first)",
    ]
    for entry in wallet.entries[:20]:
        lines.append(
            f"  {date_time_seconds(entry.ts)}  {signed_omnit(entry.amount, grouped=False)} OMNIT  "
            + printable(f"{entry.kind}: {entry.reason}", 200)
        )
    if wallet.rejected:
        lines.append("rejected work")
        for item in wallet.rejected[:20]:
            lines.append(
                f"  {date_time_seconds(item.ts)}  " + printable(f"{item.work_id}: {item.reason}")
            )
    return "\n".join(lines)


def format_stake(answer: StakeResult) -> str:
    return (
        f"staked {omnit_label(answer.staked, grouped=False)}; "
        f"available {omnit_label(answer.balance, grouped=False)}"
    )


def format_quests(answer: QuestList) -> str:
    if not answer.quests:
        return "No quests right now."
    lines = []
    for q in answer.quests:
        lines.append(
            f"{printable(q.id):<32} {q.state:<11} {printable(q.title)}\n{'':<32} "
            + printable(f"{q.progress_text}; reward {q.reward_text}; ")
            + days_or_hours_left(q.deadline_ts)
            + (f"; action: {printable(q.action)}" if q.action else "")
        )
    return "\n".join(lines)


def format_season(season: Season) -> str:
    lines = [f"season {season.id}: {season.days_left} days left"]
    for board, standing in season.ranks.items():
        rank = f"#{standing.rank} of {standing.total}" if standing.rank else "not ranked"
        lines.append(f"  {board:<26} {rank}  {_omnit(standing.amount)} OMNIT")
    for award in season.awards:
        lines.append("  award: " + printable(f"{award.name} ({award.detail})"))
    badges = ", ".join(f"{printable(a.name)} ({date(a.earned_ts)})" for a in season.achievements)
    lines.append("achievements: " + (badges or "none yet"))
    return "\n".join(lines)


def format_events(events: MultiplierEvents) -> str:
    lines = [f"multiplier now: {events.factor}x (events combine to at most 3x)"]
    for label, listed in (("active", events.active), ("upcoming", events.upcoming)):
        for e in listed:
            lines.append(
                f"  {label:<8} {printable(e.name)} ({printable(e.kind)}) x{e.factor}  "
                f"{date_time_seconds(e.start_ts)} .. {date_time_seconds(e.end_ts)}"
            )
    if len(lines) == 1:
        lines.append("  no events announced")
    return "\n".join(lines)
