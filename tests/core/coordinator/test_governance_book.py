"""Governance on the coordinator's store: proposals, votes, weights from granted awards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from core.api.commands import CastVote, GetProposals, convert_result
from core.calendar import season_by_id
from core.coordinator.game_store import GameService
from core.coordinator.governance import GovernanceBook, GovernanceDesk
from core.coordinator.operator import NoCoordinatorStore, propose
from core.coordinator.state import CoordinatorSettings, CoordinatorState
from core.coordinator.store import CoordinatorStore
from core.game.governance import GovernanceError
from core.money import parse_omnit
from core.protocol import ProposalTally
from core.protocol.governance import VoteParams

Q3 = season_by_id("2026-Q3")
A, B, C = "a" * 64, "b" * 64, "c" * 64


async def award_season(game: GameService, amounts: dict[str, int]) -> list[int]:
    """Rank ``amounts`` on 2026-Q3's GPU board and roll the season over: the real awards
    (rank 1 holds weight 10, rank 2 weight 8: assets/game.toml). Their weights."""
    in_q3 = Q3.start + 86400
    await game.roll_over(in_q3)  # the coordinator's first start: Q3 is awarded at its end
    for node, amount in amounts.items():
        await game.store.upsert_node(node, name=node[:4])
        await game.store.add_entry(
            account=node,
            amount=parse_omnit(amount),
            kind="reward",
            reason="work",
            category="gpu-contributors",
            ts=in_q3,
        )
    awards = await game.roll_over(Q3.end + 1)
    return [a["governance_weight"] for a in awards if a["category"] == "gpu-contributors"]


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[GovernanceBook]:
    async with CoordinatorStore(tmp_path / "coordinator.db") as store:
        assert await award_season(GameService(store), {A: 300, B: 200}) == [10, 8]
        yield GovernanceBook(store)


async def test_a_proposal_from_votes_to_its_final_tally(book: GovernanceBook) -> None:
    start = Q3.end + 100
    p = await book.add_proposal(
        title="Raise the cap",
        text="Why",
        options=["Yes", "No"],
        start=start,
        end=start + 600,
        now=Q3.end,
    )
    assert p.proposal_id == "gov-1" and p.options == ("Yes", "No")
    with pytest.raises(GovernanceError, match="not opened yet"):
        await book.vote(A, p.proposal_id, "Yes", start - 1)
    at = start + 10
    assert (await book.vote(A, "gov-1", "yes", at))[1:] == ("Yes", None, 10)
    assert (await book.vote(B, "gov-1", "Yes", at))[1:] == ("Yes", None, 8)
    counts = await book.tally(p, None, at)
    assert [(o.weight, o.voters) for o in counts.options] == [(18, 2), (0, 0)]
    # B changes its mind: one vote per node, its latest.
    assert (await book.vote(B, "gov-1", "No", at + 1))[1:] == ("No", "Yes", 8)
    counts = await book.tally(p, None, at + 1)
    assert [(o.weight, o.voters) for o in counts.options] == [(10, 1), (8, 1)]
    for node, option, why in (
        (C, "Yes", "no governance weight"),
        (A, "Maybe", "unknown option 'Maybe'"),
    ):
        with pytest.raises(GovernanceError, match=why):
            await book.vote(node, "gov-1", option, at)
    with pytest.raises(GovernanceError, match="unknown proposal 'gov-9'"):
        await book.vote(A, "gov-9", "Yes", at)
    # Nothing refused was recorded.
    assert await book.votes("gov-1") == {A: "Yes", B: "No"}

    assert await book.close_due(start + 599) == []
    assert await book.close_due(start + 600) == ["gov-1"]
    assert await book.close_due(start + 700) == []  # written once
    with pytest.raises(GovernanceError, match="is closed"):
        await book.vote(A, "gov-1", "No", start + 600)
    found = await book.proposal("gov-1")
    assert found is not None and found[1] is not None
    assert [(o.option, o.weight, o.voters) for o in found[1].options] == [
        ("Yes", 10, 1),
        ("No", 8, 1),
    ]


async def test_a_window_that_closed_before_the_season_ended_counts_no_award_of_it(
    book: GovernanceBook,
) -> None:
    # The awards are for Q3 and count from its end: a vote inside Q3 has no weight, and a
    # final tally of a window ending in Q3 counts none of them, whenever it is computed.
    end = Q3.end - 10
    await book.add_proposal(
        title="Early", text="", options=["a", "b"], start=end - 1000, end=end, now=end - 2000
    )
    with pytest.raises(GovernanceError, match="no governance weight"):
        await book.vote(A, "gov-1", "a", end - 500)
    await book.store.db.execute(  # as if the weight had been there: still weighed at the end
        "INSERT INTO votes (proposal_id, node_id, option, ts) VALUES ('gov-1', ?, 'a', 0)", (A,)
    )
    await book.store.db.commit()
    await book.close_due(Q3.end + 3600)
    found = await book.proposal("gov-1")
    assert found is not None and found[1] is not None
    assert [(o.weight, o.voters) for o in found[1].options] == [(0, 1), (0, 0)]


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str, object, bool]] = []

    async def __call__(self, topic: str, kind: str, data: object, retain: bool) -> None:
        self.messages.append((topic, kind, data, retain))


async def test_the_desk_answers_in_the_apis_shapes_and_publishes_on_change(
    book: GovernanceBook, tmp_path: Path
) -> None:
    import time

    now = time.time()
    sent = Sent()
    state = CoordinatorState(
        settings=CoordinatorSettings(data_dir=tmp_path, broker_url="mqtt://127.0.0.1:1"),
        node_id="f" * 64,
        store=book.store,
        game=GameService(book.store),
        publish=sent,
        is_connected=lambda: True,
    )
    desk = GovernanceDesk(state)
    await book.add_proposal(
        title="T", text="", options=["Yes", "No"], start=now - 1, end=now + 3600, now=now
    )
    await desk.tick(now)
    await desk.tick(now)  # unchanged: not published again
    assert [(t.rsplit("/", 2)[-2:], k, r) for t, k, _d, r in sent.messages] == [
        (["governance", "gov-1"], ProposalTally.TYPE, True)
    ]
    cast = convert_result(CastVote, await desk.vote(A, VoteParams("gov-1", "no")), source="test")
    assert (cast.option, cast.weight, cast.previous) == ("No", 10, None)
    assert cast.proposal.your_vote == "No" and cast.proposal.total_weight == 10
    published = sent.messages[-1][2]
    assert isinstance(published, ProposalTally) and not published.final
    assert [(o.option, o.weight) for o in published.options] == [("Yes", 0), ("No", 10)]
    # Round trip on the wire: the payload validates.
    assert msgspec.json.decode(msgspec.json.encode(published), type=ProposalTally) == published
    listing = convert_result(GetProposals, await desk.proposals(A, None), source="test")
    assert listing.weight == 10
    [view] = listing.proposals
    assert (view.state, view.final, view.your_vote, view.voters) == ("open", False, "No", 1)
    other = convert_result(GetProposals, await desk.proposals(C, None), source="test")
    assert other.weight == 0 and other.proposals[0].your_vote is None


async def test_propose_goes_through_the_coordinators_store(tmp_path: Path) -> None:
    with pytest.raises(NoCoordinatorStore):
        await propose(tmp_path, title="T", text="", options=["a", "b"], start=0, hours=1)
    async with CoordinatorStore(tmp_path / "coordinator.db"):
        pass
    p = await propose(
        tmp_path, title="T", text="x", options=["a", "b"], start=1e9, hours=2, now=1e9
    )
    assert (p.proposal_id, p.end - p.start) == ("gov-1", 7200)
    with pytest.raises(GovernanceError, match="ends before it starts"):
        await propose(
            tmp_path, title="T", text="", options=["a", "b"], start=1e9, hours=-1, now=1e9
        )
    async with CoordinatorStore(tmp_path / "coordinator.db") as store:
        listed = await GovernanceBook(store).recent(1e9)
    assert [p.options for p, _final in listed] == [("a", "b")]
