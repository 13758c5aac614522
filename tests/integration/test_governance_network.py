"""Governance over a real Mosquitto: a proposal from the operator to its final tally."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.api.commands import CastVote, GetProposals
from core.calendar import season_by_id
from core.coordinator.game_store import GameService
from core.coordinator.governance import GovernanceBook
from core.coordinator.operator import propose
from core.coordinator.store import CoordinatorStore
from core.datadir import prepare_data_dir
from core.errors import CommandError
from core.identity import load_or_create_identity
from core.money import parse_omnit
from core.node.service import Node
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_network import node_for, running_coordinator, wait_until

pytestmark = pytest.mark.broker

WINDOW_S = 5.0


async def awarded_store(coord_dir: Path, amounts: dict[str, int]) -> None:
    """A coordinator store in which ``amounts`` rank on 2026-Q3's GPU board, not yet
    awarded: the coordinator's own season roll-over grants the awards when it starts (rank
    1 holds governance weight 10, rank 2 holds 8: assets/game.toml)."""
    q3 = season_by_id("2026-Q3")
    prepare_data_dir(coord_dir)
    async with CoordinatorStore(coord_dir / "coordinator.db") as store:
        game = GameService(store)
        await game.roll_over(q3.start + 86400)  # as if it first ran in Q3
        for node, amount in amounts.items():
            await store.upsert_node(node, name=node[:6])
            await store.add_entry(
                account=node,
                amount=parse_omnit(amount),
                kind="reward",
                reason="work",
                category="gpu-contributors",
                ts=q3.start + 86400,
            )


def identity_in(data_dir: Path) -> str:
    prepare_data_dir(data_dir)
    return load_or_create_identity(data_dir)[0].node_id


def published(node: Node, proposal_id: str) -> list[tuple[str, int, int]] | None:
    """The tally the node last received on net/governance/<id> (final or not)."""
    assert node.link is not None
    tally = node.link.game.published.get(proposal_id)
    return None if tally is None else [(o.option, o.weight, o.voters) for o in tally.options]


async def test_a_proposal_from_creation_to_its_final_tally(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    coord_dir = tmp_path / "coord"
    a_id, b_id = identity_in(tmp_path / "a"), identity_in(tmp_path / "b")
    await awarded_store(coord_dir, {a_id: 300, b_id: 200})
    url = mosquitto.url
    async with (
        running_coordinator(coord_dir, url) as coordinator,
        node_for(tmp_path / "a", url, name="alice", first_benchmark=False) as a,
        node_for(tmp_path / "b", url, name="bob", first_benchmark=False) as b,
        node_for(tmp_path / "c", url, name="carol", first_benchmark=False) as c,
    ):
        assert (a.node_id, b.node_id) == (a_id, b_id)
        links = [node.link for node in (a, b, c)]
        await wait_until(lambda: all(k is not None and k.state == "connected" for k in links))
        proposal = await propose(
            coord_dir,
            title="Raise the stake cap",
            text="Double it for the next season.",
            options=["Yes", "No"],
            start=time.time(),
            hours=WINDOW_S / 3600,
        )
        pid = proposal.proposal_id
        # The running coordinator noticed it and published it, retained: every node sees it.
        await wait_until(lambda: published(c, pid) == [("Yes", 0, 0), ("No", 0, 0)])
        assert (await a.command(GetProposals())).weight == 10
        assert (await b.command(GetProposals())).weight == 8

        cast = await a.command(CastVote(proposal_id=pid, option="yes"))
        assert (cast.option, cast.weight, cast.previous) == ("Yes", 10, None)
        await b.command(CastVote(proposal_id=pid, option="Yes"))
        changed = await b.command(CastVote(proposal_id=pid, option="No"))
        assert changed.previous == "Yes" and "changed the vote" in changed.message
        # Refused, each with its reason, and nothing recorded for them.
        for node, option, why in (
            (c, "Yes", "no governance weight"),
            (a, "Maybe", "unknown option 'Maybe': one of Yes, No"),
        ):
            with pytest.raises(CommandError, match=why):
                await node.command(CastVote(proposal_id=pid, option=option))
        with pytest.raises(CommandError, match="unknown proposal 'gov-99'"):
            await a.command(CastVote(proposal_id="gov-99", option="Yes"))
        await wait_until(lambda: published(c, pid) == [("Yes", 10, 1), ("No", 8, 1)])
        listing = await b.command(GetProposals())
        [view] = listing.proposals
        assert (view.your_vote, view.total_weight, view.voters) == ("No", 18, 2)

        # The window closes: the final tally is published, retained, and votes are refused.
        await wait_until(
            lambda: a.link is not None and a.link.game.published[pid].final,
            within=WINDOW_S + 10,
            what="the final tally",
        )
        assert published(a, pid) == [("Yes", 10, 1), ("No", 8, 1)]
        with pytest.raises(CommandError, match="is closed"):
            await a.command(CastVote(proposal_id=pid, option="No"))
        [final] = (await a.command(GetProposals())).proposals
        assert (final.state, final.final, final.your_vote) == ("closed", True, "Yes")
        # One vote per node on record: the changed one replaced, the refused ones absent.
        assert coordinator.store is not None
        assert await GovernanceBook(coordinator.store).votes(pid) == {a_id: "Yes", b_id: "No"}
