"""Quests as rows for the quests table: progress, rewards, time left and the next key."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from core.api.network import Quest
from core.game.quests import QuestStatus
from tui.format import NA, bar, duration, omnit_amount, time_left

Group = Literal["active", "offered", "completed"]
Verb = Literal["accept", "start", "claim"]
# Display order of the groups on first show: what the operator is working on first. After
# that the list keeps its order (a quest that completes stays where it is).
GROUPS: tuple[Group, ...] = ("active", "offered", "completed")
_GROUP_OF_STATE: dict[QuestStatus, Group] = {
    "offered": "offered",
    "accepted": "active",
    "in_progress": "active",
    "completed": "completed",
    "claimed": "completed",
    "expired": "completed",
}
# The key of each verb, as the screen binds it.
KEYS: dict[Verb, str] = {"accept": "a", "start": "s", "claim": "c"}


@dataclass(frozen=True)
class QuestRow:
    """One quest, as the table shows it."""

    id: str
    title: str
    state: str
    group: Group
    progress: str
    done: str
    """``current/target`` (``0.000894/0.4``), the same numbers the detail shows."""
    unit: str
    percent: str
    reward: str
    achievement: str
    left: str
    action: str | None
    description: str
    deadline_ts: float
    """The deadline once accepted, else the last moment to accept."""
    window_s: float | None
    """From acceptance to the deadline (None: the coordinator did not say)."""
    current: float = 0.0
    target: float = 0.0

    @property
    def count(self) -> str:
        """``0.000894/0.4 TFLOP-hours``."""
        return f"{self.done} {self.unit}" if self.unit else self.done

    def cells(self, title_width: int = 40) -> tuple[str, str, str, str, str, str]:
        """The table's cells: state, quest (cut to ``title_width``), progress, count,
        reward, left."""
        title = self.title
        if len(title) > title_width:
            title = title[: max(1, title_width - 1)] + "…"
        state = self.state.replace("_", " ")
        return (state, title, self.progress, self.done, self.reward, self.left)

    @property
    def verbs(self) -> tuple[Verb, ...]:
        """What can be done to it now: accept an offer, start an open quest's action,
        claim a completed one."""
        if self.state == "offered":
            return ("accept",)
        if self.state in ("accepted", "in_progress"):
            return ("start",) if self.action else ()
        if self.state == "completed":
            return ("claim",)
        return ()

    def next_step(self) -> str:
        """The key to press next (``a accept``), or what to wait for."""
        if self.verbs:
            verb = self.verbs[0]
            what = f"start {self.action}" if verb == "start" else verb
            return f"{KEYS[verb]} {what}"
        if self.state in ("accepted", "in_progress"):
            return "progresses by verified work"
        return "nothing to do"

    def deadline_if_accepted(self, now: float) -> float | None:
        """Its deadline if accepted at ``now`` (None: not an offer, or no window known)."""
        if self.state != "offered" or self.window_s is None:
            return None
        return now + self.window_s

    def window_shrinks(self, now: float) -> bool:
        """Accepting it now would end it sooner than the offer's deadline shown."""
        deadline = self.deadline_if_accepted(now)
        return deadline is not None and deadline < self.deadline_ts


def eta_text(first: tuple[float, float] | None, now: float, current: float, target: float) -> str:
    """Time to finish at the pace seen since ``first`` (when, progress); or why unknown."""
    if target <= 0 or current >= target:
        return ""
    if first is None or now - first[0] < 60 or current <= first[1]:
        return "time to finish: estimating (no progress seen yet)"
    rate = (current - first[1]) / (now - first[0])
    return f"about {duration((target - current) / rate)} to finish at this pace"


def number(value: float, significant: int = 3) -> str:
    """A progress count with ``significant`` digits, never in exponent form."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    digits = min(9, max(0, significant - 1 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(fraction: float) -> str:
    """``0.22%`` for small values, ``7.5%``, ``42%``; 100% only when done."""
    value = fraction * 100
    if fraction <= 0:
        return "0%"
    if fraction >= 1:
        return "100%"
    if value >= 10:
        return f"{min(99, math.floor(value))}%"
    if value >= 1:
        return f"{math.floor(value * 10) / 10:g}%"
    return f"{number(value, 2)}%"


def _progress(quest: Quest) -> tuple[str, str, str]:
    """The bar with its percentage, the percentage, the count (``1.5/2``)."""
    progress = quest.progress
    done = f"{number(progress.current)}/{number(progress.target)}"
    fraction = progress.fraction
    if fraction is None:
        return NA, NA, done
    share = percent(fraction)
    return f"{bar(fraction, 5)} {share:>8}", share, done


def quest_rows(
    quests: Iterable[Quest] | None, now: float | None = None, order: Sequence[str] = ()
) -> list[QuestRow]:
    """The quests: those in ``order`` (ids) as they were, then new ones, active first,
    then offered, then completed."""
    now = time.time() if now is None else now
    rows = []
    for quest in quests or ():
        group = _GROUP_OF_STATE[quest.state]
        progress, share, done = _progress(quest)
        rows.append(
            QuestRow(
                id=quest.id,
                title=quest.title,
                state=quest.state,
                group=group,
                progress=progress,
                done=done,
                unit=quest.progress.unit,
                percent=share,
                reward=f"{omnit_amount(quest.reward, exact=True)} OMNIT",
                achievement=quest.achievement or "",
                left=time_left(quest.deadline_ts, now) if group != "completed" else "",
                action=quest.action,
                # The coordinator's description is often its progress text ("0 of 0.4"):
                # shown once, as the count above, not twice with other rounding.
                description="" if quest.description == quest.progress_text else quest.description,
                deadline_ts=quest.deadline_ts,
                window_s=quest.duration_s,
                current=quest.progress.current,
                target=quest.progress.target,
            )
        )
    known = {quest_id: i for i, quest_id in enumerate(order)}
    groups = {g: i for i, g in enumerate(GROUPS)}
    rows.sort(key=lambda r: (known.get(r.id, len(known)), groups[r.group]))
    return rows
