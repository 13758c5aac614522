"""Quests as rows for the quests table: grouped, with progress bars, rewards and time left."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from core.api.network import Quest
from core.game.quests import QuestStatus
from tui.format import NA, bar, omnit_amount, time_left

Group = Literal["active", "offered", "completed"]
# Display order of the groups: what the operator is working on first.
GROUPS: tuple[Group, ...] = ("active", "offered", "completed")
_GROUP_OF_STATE: dict[QuestStatus, Group] = {
    "offered": "offered",
    "accepted": "active",
    "in_progress": "active",
    "completed": "completed",
    "claimed": "completed",
    "expired": "completed",
}


@dataclass(frozen=True)
class QuestRow:
    """One quest, as the table shows it."""

    id: str
    title: str
    state: str
    group: Group
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


def _progress(quest: Quest) -> tuple[str, str]:
    """The bar with its percentage, and the count behind it (``1.5/2 TFLOP-h``)."""
    progress = quest.progress
    unit = f" {progress.unit}" if progress.unit else ""
    count = f"{progress.current:g}/{progress.target:g}{unit}"
    fraction = progress.fraction
    if fraction is None:
        return NA, count
    return f"{bar(fraction, 8)} {fraction:4.0%}", count


def quest_rows(quests: Iterable[Quest] | None, now: float | None = None) -> list[QuestRow]:
    """The quests, active first, then offered, then completed."""
    now = time.time() if now is None else now
    rows = []
    for quest in quests or ():
        group = _GROUP_OF_STATE[quest.state]
        progress, count = _progress(quest)
        rows.append(
            QuestRow(
                id=quest.id,
                title=quest.title,
                state=quest.state,
                group=group,
                progress=progress,
                count=count,
                reward=f"{omnit_amount(quest.reward, exact=True)} OMNIT",
                achievement=quest.achievement or "",
                left=time_left(quest.deadline_ts, now) if group != "completed" else "",
                action=quest.action,
                description=quest.description,
            )
        )
    order = {g: i for i, g in enumerate(GROUPS)}
    rows.sort(key=lambda r: order[r.group])
    return rows
