"""Season-end (and month-end) awards for the top N of each leaderboard.

Ranking is the ledger's: amount descending, ties by node id, so the awards match the board a
user saw. Each award has an id derived only from (period, category, rank, node): computing the
awards twice gives the same ids, and the ledger's unique ``(kind, account, ref)`` index turns
a second credit of the same award into a no-op.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.calendar import Period
from core.game.errors import GameError
from core.game.rules import GameRules
from core.game.rules_file import default_rules

AWARD_DOMAIN = "omnitensor-award/v1"


@dataclass(frozen=True)
class Award:
    """One award: bonus OMNIT, a collectible and governance weight for one ranked node."""

    award_id: str  # unique and deterministic; the ledger ref and the collectible's id
    period: str  # "2026-Q4", or "2026-11" for the monthly board
    category: str
    rank: int
    node_id: str
    amount: int  # the node's board total (base units)
    bonus: int  # base units to credit (ledger kind "award")
    governance_weight: int
    collectible: str  # display name, e.g. "2026-Q4 Season Top GPU Contributor #1"

    def record(self) -> dict[str, Any]:
        """The award as a plain dict (for the store and the wire)."""
        return asdict(self)

    def signing_bytes(self) -> bytes:
        """Canonical bytes for the coordinator to sign (sorted keys, no whitespace)."""
        return json.dumps(
            {"domain": AWARD_DOMAIN, **self.record()}, sort_keys=True, separators=(",", ":")
        ).encode()

    @property
    def reason(self) -> str:
        """The ledger entry's reason."""
        return f"season award: {self.collectible} ({self.category}, {self.period})"


def award_id(period: str, category: str, rank: int, node_id: str) -> str:
    """The deterministic id of an award (a hash of what it is for)."""
    digest = hashlib.sha256(
        "\x00".join((AWARD_DOMAIN, period, category, str(rank), node_id)).encode()
    ).hexdigest()
    return f"aw-{digest[:32]}"


def rank_board(rows: Sequence[tuple[str, int]]) -> list[tuple[int, str, int]]:
    """(rank, node, amount) in the ledger's order; nodes with nothing to show are left out."""
    seen: set[str] = set()
    for node_id, amount in rows:
        if node_id in seen:
            raise GameError(f"node {node_id[:12]} appears twice on one board")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("board amounts are integers in base units")
        seen.add(node_id)
    ordered = sorted((row for row in rows if row[1] > 0), key=lambda r: (-r[1], r[0]))
    return [(rank, node, amount) for rank, (node, amount) in enumerate(ordered, start=1)]


def period_awards(
    boards: Mapping[str, Sequence[tuple[str, int]]],
    period: Period,
    now: float,
    rules: GameRules | None = None,
) -> list[Award]:
    """Awards for every board of ``period``'s kind that ``boards`` holds, once it has ended.

    ``boards`` maps a category to its final (node id, amount) rows for that period.
    """
    rules = default_rules() if rules is None else rules
    if now < period.end:
        raise GameError(f"{period.kind} {period.id} has not ended yet: no awards before its end")
    awards: list[Award] = []
    for category, rows in sorted(boards.items()):
        try:
            board = rules.board(category)
        except KeyError:
            raise GameError(f"no award rules for the {category!r} board") from None
        if board.period != period.kind:
            raise GameError(
                f"the {category} board is awarded per {board.period}, not per {period.kind}"
            )
        for rank, node_id, amount in rank_board(rows)[: board.top_n]:
            awards.append(
                Award(
                    award_id=award_id(period.id, category, rank, node_id),
                    period=period.id,
                    category=category,
                    rank=rank,
                    node_id=node_id,
                    amount=amount,
                    bonus=board.bonus[rank - 1],
                    governance_weight=board.governance_weight[rank - 1],
                    collectible=f"{period.id} {board.collectible} #{rank}",
                )
            )
    return awards


def season_awards(
    boards: Mapping[str, Sequence[tuple[str, int]]],
    rules: GameRules | None,
    season: Period,
    now: float,
) -> list[Award]:
    """Season-end awards: the top N of each seasonal board (gpu-contributors, ...)."""
    if season.kind != "season":
        raise GameError(f"{season.id} is not a season")
    return period_awards(boards, season, now, rules)


def monthly_awards(
    boards: Mapping[str, Sequence[tuple[str, int]]],
    rules: GameRules | None,
    month: Period,
    now: float,
) -> list[Award]:
    """Month-end awards: the Data Validators of the Month."""
    if month.kind != "month":
        raise GameError(f"{month.id} is not a month")
    return period_awards(boards, month, now, rules)


def seasonal_categories(rules: GameRules | None = None, kind: str = "season") -> list[str]:
    """The board categories awarded per ``kind`` ("season" or "month")."""
    rules = default_rules() if rules is None else rules
    return [b.category for b in rules.boards if b.period == kind]
