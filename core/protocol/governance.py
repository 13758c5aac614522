"""Governance on the wire: a proposal with its tally (retained), and the vote's parameters.

The coordinator publishes each proposal on ``net/governance/<proposal id>``, retained and
signed, whenever its tally or its state changes, and once more, ``final``, when its window
closes. A vote is an ordinary signed ``request`` (method ``vote``): the envelope's
signature and replay checks are the vote's.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.errors import ProtocolError
from core.protocol.envelope import Payload, register_message_type
from core.protocol.fields import Count, Ident, Name, NonNegFloat

# The same bounds as core.game.governance (the protocol does not import the game).
ProposalText = Annotated[str, msgspec.Meta(max_length=2000)]
ProposalId = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_-]{0,63}$")]
Weight = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class VoteParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``vote``: this node's one vote on a proposal (cast again to change it)."""

    proposal_id: Ident
    option: Name


class OptionTally(msgspec.Struct, frozen=True, kw_only=True):
    option: Name
    weight: Weight
    voters: Count


@register_message_type
class ProposalTally(Payload, frozen=True, kw_only=True):
    """A proposal, its voting window and its tally now (``final`` once the window closed)."""

    TYPE = "gov.proposal"
    TOPIC_KINDS = frozenset({"net.governance"})

    proposal_id: ProposalId
    title: Name
    text: ProposalText
    options: Annotated[list[OptionTally], msgspec.Meta(min_length=2, max_length=16)]
    start: NonNegFloat
    end: NonNegFloat
    created_ts: NonNegFloat
    final: bool
    updated_ts: NonNegFloat

    def validate(self) -> None:
        names = [o.option.casefold() for o in self.options]
        if len(set(names)) != len(names):
            raise ProtocolError("bad-payload", f"proposal {self.proposal_id}: duplicate options")
        if self.end <= self.start:
            raise ProtocolError("bad-payload", f"proposal {self.proposal_id}: bad window")
