"""The Governance screen: proposals and tallies from the node, live tallies, voting by keys.

The node asks a replayed coordinator (``networked_node``) whose ``proposals`` and ``vote``
answers are overridden here in the coordinator's shape (tests/core/coordinator/
test_governance_book.py checks that shape against the real desk).
"""

from __future__ import annotations

import time
from typing import Any

from core.api.commands import CastVote
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from core.protocol import ProposalTally
from core.protocol.governance import OptionTally
from tests.tui.console.conftest import (
    Messages,
    ReplayedCoordinator,
    screen_text,
    settle,
    wait_for_commands,
)
from tui.console.app import make_app
from tui.console.keys import SCREENS
from tui.console.messages import CommandFinished, SnapshotFetched
from tui.console.screens.dialogs import ChoiceScreen, ConfirmScreen
from tui.console.screens.governance import GovernanceScreen

NOW = time.time()


def answer(yes: int, no: int, your_vote: str | None) -> dict[str, Any]:
    """The coordinator's ``proposals`` answer: one open proposal, this node's weight 10."""
    return {
        "weight": 10,
        "proposals": [
            {
                "proposal_id": "gov-1",
                "title": "Halve the unit length",
                "text": "Double it next season.",
                "options": [
                    {"option": "Yes", "weight": yes, "voters": 1 if yes else 0},
                    {"option": "No", "weight": no, "voters": 1 if no else 0},
                ],
                "start_ts": NOW - 60,
                "end_ts": NOW + 7200,
                "created_ts": NOW - 60,
                "state": "open",
                "total_weight": yes + no,
                "voters": (1 if yes else 0) + (1 if no else 0),
                "final": False,
                "your_vote": your_vote,
            }
        ],
    }


async def test_governance_shows_tallies_live_and_votes_by_keys(
    networked_node: Node, replay: ReplayedCoordinator, messages: Messages
) -> None:
    assert ("governance", "Governance", "8") in SCREENS
    current = {"listing": answer(8, 0, None)}

    def vote(params: dict[str, Any]) -> Any:
        current["listing"] = answer(8, 10, params["option"])
        proposal = current["listing"]["proposals"][0]
        message = f"voted {params['option']!r} on gov-1 with weight 10"
        return {**params, "previous": None, "weight": 10, "message": message, "proposal": proposal}

    replay.overrides["proposals"] = lambda _params: current["listing"]
    replay.overrides["vote"] = vote
    link = networked_node.link
    assert link is not None
    link.game.refresh_soon()
    await settle_node(link)
    app = make_app(LocalNodeClient(networked_node), ssh=False)
    async with app.run_test(size=(120, 40), message_hook=messages) as pilot:
        await messages.wait(SnapshotFetched)
        await pilot.press("8")
        await settle(pilot, lambda: isinstance(app.screen, GovernanceScreen))
        await settle(pilot, lambda: "Halve the unit length" in screen_text(app))
        text = screen_text(app)
        assert "your governance weight: 10" in text and "1h 5" in text  # 1h 5xm left
        assert "weight 8  (1 voter)" in text and "weight 0  (0 voters)" in text

        # A tally the network publishes shows without asking the coordinator.
        link.game.on_proposal(published(yes=8, no=5))
        await settle(pilot, lambda: "weight 5  (1 voter)" in screen_text(app))

        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("2")  # No
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Vote 'No' on gov-1 'Halve the unit length' with weight 10?" in screen_text(app)
        await pilot.press("y")
        await wait_for_commands(app)
        done = await messages.wait(CommandFinished, lambda m: m.name == "vote")
        assert done.ok and done.request == CastVote(proposal_id="gov-1", option="No")
        assert done.summary() == "voted 'No' on gov-1 with weight 10"
        # The refreshed answer carries this node's vote.
        await settle(pilot, lambda: "● No" in screen_text(app))
    assert ("vote", {"proposal_id": "gov-1", "option": "No"}) in replay.calls


def published(*, yes: int, no: int) -> ProposalTally:
    return ProposalTally(
        proposal_id="gov-1",
        title="Halve the unit length",
        text="Double it next season.",
        options=[
            OptionTally(option="Yes", weight=yes, voters=1),
            OptionTally(option="No", weight=no, voters=1),
        ],
        start=NOW - 60,
        end=NOW + 7200,
        created_ts=NOW - 60,
        final=False,
        updated_ts=time.time(),
    )


async def settle_node(link: Any) -> None:
    import asyncio

    for _ in range(200):
        # The recording has its own proposals answer: wait for this test's.
        if link.game.proposals is not None and link.game.proposals.weight == 10:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the node never got the proposals")
