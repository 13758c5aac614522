"""Governance as front ends see it: proposals with their tallies, this node's vote and weight.

The coordinator's ``proposals`` and ``vote`` answers decode into these (its fields, in its
order, so ``--json`` prints what the network said). Weights are integers (docs/governance.md).
``resolve_proposal`` turns what a user typed into one proposal.
"""

from __future__ import annotations

import difflib
from typing import Literal

import msgspec

from core.errors import CommandError

ProposalState = Literal["upcoming", "open", "closed"]


class OptionTally(msgspec.Struct, frozen=True, kw_only=True):
    """One option: the total weight of its voters and how many they are."""

    option: str
    weight: int
    voters: int


class Proposal(msgspec.Struct, frozen=True, kw_only=True):
    """A proposal, its window, its tally (``final`` once the window closed) and this node's
    vote (None: not voted)."""

    proposal_id: str
    title: str
    text: str
    options: tuple[OptionTally, ...]
    start_ts: float
    end_ts: float
    created_ts: float
    state: ProposalState
    """As of the answer; ``state_at`` says it for another time."""
    total_weight: int
    voters: int
    final: bool
    your_vote: str | None = None

    def state_at(self, now: float) -> ProposalState:
        if now < self.start_ts:
            return "upcoming"
        return "open" if now < self.end_ts else "closed"

    @property
    def leading(self) -> OptionTally | None:
        """The option with the most weight (None: no weight cast yet, or a tie at the top)."""
        ranked = sorted(self.options, key=lambda o: -o.weight)
        if not ranked or ranked[0].weight == 0:
            return None
        if len(ranked) > 1 and ranked[1].weight == ranked[0].weight:
            return None
        return ranked[0]


class ProposalList(msgspec.Struct, frozen=True, kw_only=True):
    """``proposals``: this node's governance weight now, and the proposals, newest first."""

    weight: int
    proposals: tuple[Proposal, ...]


class VoteCast(msgspec.Struct, frozen=True, kw_only=True):
    """``vote``: the option recorded, the one it replaced, the weight it counts with now."""

    proposal_id: str
    option: str
    previous: str | None
    weight: int
    message: str
    proposal: Proposal


def resolve_proposal(proposals: tuple[Proposal, ...], given: str) -> Proposal:
    """The proposal ``given`` names: its id, its number (``3`` for ``gov-3``) or a unique
    prefix of its id; CommandError listing the candidates, or the closest id."""
    ids = [p.proposal_id for p in proposals]
    key = given.strip().lower()
    for wanted in (key, f"gov-{key}"):
        exact = [p for p in proposals if p.proposal_id == wanted]
        if exact:
            return exact[0]
    prefix = [p for p in proposals if p.proposal_id.startswith(key)]
    if len(prefix) == 1:
        return prefix[0]
    if prefix:
        raise CommandError(
            f"proposal {given!r} is ambiguous: {', '.join(p.proposal_id for p in prefix)}"
        )
    close = difflib.get_close_matches(key, ids, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean {close[0]!r}?"
    elif ids:
        hint = f"; known: {', '.join(ids[:10])}"
    else:
        hint = " (there are no proposals)"
    raise CommandError(f"unknown proposal {given!r}{hint}")
