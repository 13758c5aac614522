"""Alerts a rig owner wants to hear about once, not discover later.

Each condition is checked every telemetry tick against thresholds from the config
(``[alerts]``): a GPU too hot, the guard holding work back too long, the network unreachable
too long, earnings well below their own 24 h average, an accepted quest about to expire. An
alert is raised once when its condition starts, stays listed while it holds, and is cleared
(once) when it ends. Raising writes a warning to the node's log and, when configured, runs
the owner's command with the alert as JSON on stdin (``[alerts] command``, e.g. a script
that sends it to a phone); the command runs in the background and never holds the node up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from core.api.network import Quest, Wallet
from core.config import AlertConfig
from core.node.frames import TelemetryFrame
from core.node.guard import GuardState

log = logging.getLogger("omnitensor.node")

COMMAND_TIMEOUT_S = 30.0
HOUR = 3600.0


@dataclass(frozen=True)
class Alert:
    id: str  # stable while the condition holds: "gpu-hot:0", "offline", "quest:<id>"
    kind: str
    message: str
    since_ts: float


@dataclass
class AlertInputs:
    """What the node knows now; the monitor reads only this."""

    now: float
    frame: TelemetryFrame | None = None
    guard: GuardState | None = None
    paused_since: float | None = None  # when the guard last started holding work
    offline_since: float | None = None  # None while connected (or on no network)
    broker: str = ""
    wallet: Wallet | None = None
    quests: Iterable[Quest] = ()
    up_since: float = 0.0


@dataclass
class AlertMonitor:
    config: AlertConfig
    active: dict[str, Alert] = field(default_factory=dict)
    _commands: set[asyncio.Task[None]] = field(default_factory=set)

    def evaluate(self, inputs: AlertInputs) -> tuple[list[Alert], list[Alert]]:
        """(raised now, cleared now); ``active`` holds what is still on."""
        found = {a.id: a for a in self._conditions(inputs)}
        raised = [a for key, a in found.items() if key not in self.active]
        cleared = [a for key, a in self.active.items() if key not in found]
        for alert in raised:
            self.active[alert.id] = alert
        for alert in cleared:
            del self.active[alert.id]
        return raised, cleared

    def _conditions(self, x: AlertInputs) -> Iterable[Alert]:
        cfg, now = self.config, x.now
        if cfg.gpu_temp_c > 0 and x.frame is not None:
            for gpu in x.frame.gpus:
                temp = gpu.temperature_c
                if temp is not None and temp >= cfg.gpu_temp_c:
                    yield self._keep(
                        f"gpu-hot:{gpu.index}",
                        "gpu-hot",
                        f"GPU {gpu.index} at {temp:.0f}°C (alert at {cfg.gpu_temp_c:g}°C)",
                        now,
                    )
        if cfg.paused_minutes > 0 and x.paused_since is not None:
            held = now - x.paused_since
            if held >= cfg.paused_minutes * 60:
                reason = x.guard.summary() if x.guard is not None else "guard"
                yield self._keep(
                    "paused",
                    "paused",
                    f"work held back for {held / 60:.0f} min ({reason})",
                    now,
                )
        if cfg.offline_minutes > 0 and x.offline_since is not None:
            away = now - x.offline_since
            if away >= cfg.offline_minutes * 60:
                yield self._keep(
                    "offline",
                    "offline",
                    f"offline for {away / 60:.0f} min (broker {x.broker or 'unknown'})",
                    now,
                )
        drop = self._earnings_drop(x)
        if drop is not None:
            yield self._keep("earnings-low", "earnings-low", drop, now)
        if cfg.quest_hours > 0:
            for quest in x.quests:
                if quest.state not in ("accepted", "in_progress"):
                    continue
                left = quest.deadline_ts - now
                if 0 < left <= cfg.quest_hours * HOUR:
                    yield self._keep(
                        f"quest:{quest.id}",
                        "quest-expiring",
                        f"quest {quest.title} ends in {left / HOUR:.1f} h at {quest.progress_text}",
                        now,
                    )

    def _earnings_drop(self, x: AlertInputs) -> str | None:
        """The last hour's pay for work against its 24 h hourly average (the ledger's
        ``work_hourly``: a busy node has thousands of entries a day, more than a page)."""
        pct = self.config.earnings_drop_percent
        if pct <= 0 or x.wallet is None or x.now - x.up_since < 2 * HOUR:
            return None
        hourly = x.wallet.work_hourly
        if len(hourly) < 24 or hourly[0] <= 0:
            return None  # not a day of earning in view (or an older coordinator): no baseline
        hour, average = hourly[-1], sum(hourly) / len(hourly)
        if average <= 0 or hour * 100 >= pct * average:
            return None
        return f"earned {hour / average:.0%} of the 24 h hourly average in the last hour"

    def _keep(self, key: str, kind: str, message: str, now: float) -> Alert:
        """An alert keeps the time it started while its condition holds."""
        before = self.active.get(key)
        return Alert(key, kind, message, before.since_ts if before is not None else now)

    def run_command(self, alert: Alert, state: str) -> None:
        """Run the owner's command with the alert as JSON on stdin, in the background."""
        if not self.config.command:
            return
        task = asyncio.get_running_loop().create_task(self._run(alert, state))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _run(self, alert: Alert, state: str) -> None:
        command = self.config.command
        assert command is not None
        payload = json.dumps({**asdict(alert), "state": state, "ts": time.time()}).encode()
        try:
            proc = await asyncio.create_subprocess_shell(
                command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await asyncio.wait_for(proc.communicate(payload), COMMAND_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            log.warning("alert command timed out after %.0f s: %s", COMMAND_TIMEOUT_S, command)
            return
        except OSError as exc:
            log.warning("alert command failed to start (%s): %s", exc, command)
            return
        if proc.returncode != 0:
            log.warning(
                "alert command exited %s: %s", proc.returncode, err.decode(errors="replace")[:200]
            )
