"""Governance by season-earned weight: proposals, votes and tallies (docs/governance.md).

Pure rules, like the rest of ``core.game``: no clock (every time is an argument), no store.
Weights are integers, and so is every tally: nothing is rounded.

The weight formula: a node's weight at time ``t`` is the sum of ``governance_weight`` over
the awards it holds whose period (season or month) ended at or before ``t``. A vote carries
no weight of its own: every tally recomputes each voter's weight at the tally's time (now
while the window is open; the window's end for the final tally). Awards only accumulate, so
a weight never shrinks between a vote and its tally.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from core.calendar import month_by_id, season_by_id
from core.game.errors import GameError
from core.textsafe import check_display_name, is_unsafe_char

MIN_OPTIONS: Final = 2
MAX_OPTIONS: Final = 16
MAX_TITLE: Final = 64
MAX_OPTION: Final = 64
MAX_TEXT: Final = 2000
MAX_WINDOW_S: Final = 90 * 86_400  # one season: a vote longer than that outlives its voters

WindowState = Literal["upcoming", "open", "closed"]


class GovernanceError(GameError):
    """A proposal or a vote was refused; ``reason`` says why."""


@dataclass(frozen=True)
class Proposal:
    """A question the network's operator put to the nodes, open for votes in [start, end)."""

    proposal_id: str
    title: str
    text: str
    options: tuple[str, ...]
    start: float
    end: float
    created_ts: float

    def state(self, now: float) -> WindowState:
        if now < self.start:
            return "upcoming"
        return "open" if now < self.end else "closed"


@dataclass(frozen=True)
class OptionCount:
    option: str
    weight: int
    voters: int


@dataclass(frozen=True)
class Tally:
    """Per option, in the proposal's order: the total weight and the number of voters."""

    options: tuple[OptionCount, ...]

    @property
    def total_weight(self) -> int:
        return sum(o.weight for o in self.options)

    @property
    def voters(self) -> int:
        return sum(o.voters for o in self.options)


@dataclass(frozen=True)
class HeldAward:
    """What weight needs of an award: its holder, its weight and when its period ended."""

    node_id: str
    weight: int
    period_end: float


def check_proposal(
    title: str, text: str, options: Sequence[str], *, start: float, end: float, now: float
) -> tuple[str, str, tuple[str, ...]]:
    """(title, text, options) trimmed, or GovernanceError naming what is wrong."""
    title = title.strip()
    if not title:
        raise GovernanceError("a proposal needs a title")
    try:
        check_display_name(title, MAX_TITLE)
    except ValueError as exc:
        raise GovernanceError(f"title: {str(exc).replace('a display name', 'it')}") from None
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise GovernanceError(f"the text is {len(text)} characters; at most {MAX_TEXT}")
    if any(is_unsafe_char(c) and c != "\n" for c in text):
        raise GovernanceError("the text must be printable (newlines allowed)")
    cleaned = tuple(o.strip() for o in options)
    if len(cleaned) < MIN_OPTIONS:
        raise GovernanceError(
            f"a proposal needs at least {MIN_OPTIONS} options (got {len(cleaned)})"
        )
    if len(cleaned) > MAX_OPTIONS:
        raise GovernanceError(f"at most {MAX_OPTIONS} options (got {len(cleaned)})")
    seen: dict[str, str] = {}
    for option in cleaned:
        try:
            check_display_name(option, MAX_OPTION)
        except ValueError as exc:
            why = str(exc).replace("a display name", "it")
            raise GovernanceError(f"option {option!r}: {why}") from None
        key = option.casefold()
        if key in seen:
            raise GovernanceError(f"duplicate option {option!r} (options ignore case)")
        seen[key] = option
    if end <= start:
        raise GovernanceError("the voting window ends before it starts")
    if end - start > MAX_WINDOW_S:
        raise GovernanceError(f"the voting window is longer than {MAX_WINDOW_S // 86_400} days")
    if end <= now:
        raise GovernanceError("the voting window is already over")
    return title, text, cleaned


def resolve_option(options: Sequence[str], given: str) -> str:
    """The option ``given`` names (ignoring case and surrounding spaces); GovernanceError
    listing the options, with the closest one when it looks like a typo."""
    key = given.strip().casefold()
    for option in options:
        if option.casefold() == key:
            return option
    close = difflib.get_close_matches(key, [o.casefold() for o in options], n=1, cutoff=0.6)
    hint = ""
    if close:
        hint = f"; did you mean {next(o for o in options if o.casefold() == close[0])!r}?"
    raise GovernanceError(f"unknown option {given!r}: one of {', '.join(options)}{hint}")


def award_period_end(period: str) -> float:
    """When an award's period ended: ``2026-Q4`` (a season) or ``2026-11`` (a month)."""
    if "-Q" in period:
        return season_by_id(period).end
    return month_by_id(period).end


def weights_at(awards: Iterable[HeldAward], at: float) -> dict[str, int]:
    """Every node's governance weight at ``at`` (nodes with none are left out)."""
    weights: dict[str, int] = {}
    for award in awards:
        if award.period_end <= at and award.weight > 0:
            weights[award.node_id] = weights.get(award.node_id, 0) + award.weight
    return weights


def check_vote(proposal: Proposal, option: str, weight: int, now: float) -> str:
    """The canonical option a vote may be cast for now; GovernanceError saying why not."""
    state = proposal.state(now)
    if state == "upcoming":
        raise GovernanceError(f"voting on {proposal.proposal_id} has not opened yet")
    if state == "closed":
        raise GovernanceError(f"voting on {proposal.proposal_id} is closed")
    canonical = resolve_option(proposal.options, option)
    if weight <= 0:
        raise GovernanceError(
            "this node has no governance weight: it is earned with season awards "
            "(the top of each leaderboard when a season ends)"
        )
    return canonical


def tally(options: Sequence[str], votes: Mapping[str, str], weights: Mapping[str, int]) -> Tally:
    """Each option's weight (the sum of its voters' weights) and voter count.

    ``votes`` maps a node to its one current vote: a changed vote counts once, for its
    latest option. A vote for an option the proposal does not have counts for nothing.
    """
    weight = dict.fromkeys(options, 0)
    voters = dict.fromkeys(options, 0)
    for node_id, option in votes.items():
        if option in weight:
            weight[option] += weights.get(node_id, 0)
            voters[option] += 1
    return Tally(tuple(OptionCount(o, weight[o], voters[o]) for o in options))
