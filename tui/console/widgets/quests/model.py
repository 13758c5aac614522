"""Quests as rows for the quests table: the section's shape, read tolerantly.

The node's ``snapshot["quests"]`` is either a list of quests, each with a ``state``, or a
dict of lists keyed ``offered`` / ``active`` / ``completed``. A quest::

    {"id": "q-bench-1", "title": "Run the benchmark suite", "kind": "bench",
     "state": "offered" | "accepted" | "in_progress" | "completed" | "claimed" | "expired",
     "progress": 0.4 | {"current": 2, "target": 5, "unit": "TFLOP-h"},
     "deadline_ts": 1.7e9, "reward": <base units>, "achievement": "Benchmarker",
     "action": "bench" | None, "description": "..."}
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tui.format import NA, bar, first, fraction_of, omnit, time_left

# Display order of the groups: what the operator is working on first.
GROUPS = ("active", "offered", "completed")
_GROUP_OF_STATE = {
    "offered": "offered",
    "available": "offered",
    "accepted": "active",
    "in_progress": "active",
    "active": "active",
    "started": "active",
    "completed": "completed",
    "claimable": "completed",
    "claimed": "completed",
    "expired": "completed",
    "failed": "completed",
}


@dataclass(frozen=True)
class QuestRow:
    """One quest, as the table shows it."""

    id: str
    title: str
    state: str
    group: str
    progress: str
    count: str
    reward: str
    achievement: str
    left: str
    action: str | None
    description: str

    def cells(self, title_width: int = 40) -> tuple[str, str, str, str, str]:
        """The table's cells: state, quest (cut to ``title_width``), progress, reward, left."""
        title = self.title
        if len(title) > title_width:
            title = title[: max(1, title_width - 1)] + "…"
        return (self.state.replace("_", " "), title, self.progress, self.reward, self.left)


def _progress(quest: Mapping[str, Any]) -> tuple[str, str]:
    """The bar with its percentage, and the count behind it (``1.5/2 TFLOP-h``)."""
    fraction = fraction_of(quest)
    progress = quest.get("progress")
    source: Mapping[str, Any] = progress if isinstance(progress, Mapping) else quest
    current, target = source.get("current"), source.get("target")
    unit = source.get("unit") or ""
    count = ""
    if isinstance(current, int | float) and isinstance(target, int | float):
        count = f"{current:g}/{target:g}{' ' + unit if unit else ''}"
    if fraction is None:
        return NA, count
    return f"{bar(fraction, 8)} {fraction:4.0%}", count


def _reward(quest: Mapping[str, Any]) -> tuple[str, str]:
    """The OMNIT reward and the achievement it unlocks (either may be empty)."""
    amount = first(quest, "reward_base_units", "reward")
    badge = first(quest, "achievement", "badge")
    if isinstance(amount, Mapping):
        badge = badge or first(amount, "achievement", "badge")
        amount = first(amount, "base_units", "omnit_base_units", "amount")
    omnit_text = f"{omnit(amount, exact=True)} OMNIT" if isinstance(amount, int) else ""
    return omnit_text, str(badge) if badge else ""


def _quests(section: Any) -> list[tuple[Mapping[str, Any], str | None]]:
    """(quest, state given by its list) pairs from either shape of the section."""
    if isinstance(section, list):
        return [(q, None) for q in section if isinstance(q, Mapping)]
    if isinstance(section, Mapping):
        out: list[tuple[Mapping[str, Any], str | None]] = []
        for key, quests in section.items():
            if isinstance(quests, list):
                out += [(q, key) for q in quests if isinstance(q, Mapping)]
        return out
    return []


def quest_rows(section: Any, now: float | None = None) -> list[QuestRow]:
    """The quests of a snapshot section, active first, then offered, then completed."""
    now = time.time() if now is None else now
    rows = []
    for quest, listed_as in _quests(section):
        state = str(first(quest, "state", "status", default=listed_as or "offered"))
        group = _GROUP_OF_STATE.get(state, listed_as if listed_as in GROUPS else "offered")
        deadline = first(quest, "deadline_ts", "deadline", "ends_ts", "end_ts", "expires_ts")
        progress, count = _progress(quest)
        reward, achievement = _reward(quest)
        rows.append(
            QuestRow(
                id=str(quest.get("id", "")),
                title=str(first(quest, "title", "name", "id", default="quest")),
                state=state,
                group=group or "offered",
                progress=progress,
                count=count,
                reward=reward or (achievement and "badge") or NA,
                achievement=achievement,
                left=time_left(deadline, now) if group != "completed" else "",
                action=first(quest, "action", "start_action"),
                description=str(first(quest, "description", "detail", default="")),
            )
        )
    order = {g: i for i, g in enumerate(GROUPS)}
    rows.sort(key=lambda r: order.get(r.group, len(GROUPS)))
    return rows
