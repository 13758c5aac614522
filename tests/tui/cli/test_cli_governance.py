"""``propose``, ``proposals`` and ``vote`` from the shell: refusals are one line each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.api.commands import CastVote, GetProposals, Request
from core.api.governance import ProposalList, VoteCast
from core.coordinator.store import CoordinatorStore
from core.errors import CommandError
from tui.cli import governance
from tui.cli.main import main

NOW = time.time()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def coordinator_dir(tmp_path: Path) -> Path:
    async def create() -> None:
        async with CoordinatorStore(tmp_path / "coordinator.db"):
            pass

    asyncio.run(create())
    return tmp_path


def propose_args(data_dir: Path, *extra: str) -> list[str]:
    return ["propose", "--data-dir", str(data_dir), "--hours", "24", *extra]


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--title", "T"], "at least 2 options (got 0)"),
        (["--title", "T", "--option", "Yes"], "at least 2 options (got 1)"),
        (["--title", "T", "--option", "Yes", "--option", "YES"], "duplicate option 'YES'"),
        (["--title", " ", "--option", "a", "--option", "b"], "a proposal needs a title"),
        (["--title", "T", "--option", "a", "--option", "b", "--hours", "-2"], "ends before it"),
        (["--title", "T", "--option", "a", "--option", "b", "--start", "soon"], "bad --start"),
    ],
)
def test_propose_refuses_bad_arguments_with_one_line(
    coordinator_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], why: str
) -> None:
    code, out, err = run(propose_args(coordinator_dir, *extra), capsys)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("omnitensor: error: propose") and why in line


def test_propose_needs_the_coordinators_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = propose_args(tmp_path, "--title", "T", "--option", "a", "--option", "b")
    code, _out, err = run(args, capsys)
    assert code == 2 and "no coordinator store at" in err and "(use --data-dir)" in err


def test_propose_stores_a_proposal(
    coordinator_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--title", "Cap", "--option", "Yes", "--option", "No"]
    code, out, _err = run(propose_args(coordinator_dir, *args), capsys)
    assert code == 0 and out.startswith("proposed gov-1 'Cap': Yes / No; voting ")


def proposal(pid: str, **fields: Any) -> dict[str, Any]:
    return {
        "proposal_id": pid,
        "title": f"Title {pid}",
        "text": "",
        "options": [
            {"option": "Yes", "weight": 10, "voters": 1},
            {"option": "No", "weight": 0, "voters": 0},
        ],
        "start_ts": NOW - 60,
        "end_ts": 4e9,
        "created_ts": NOW - 60,
        "state": "open",
        "total_weight": 10,
        "voters": 1,
        "final": False,
        **fields,
    }


class FakeNode:
    """A node session answering ``proposals`` from a list and recording votes."""

    def __init__(self, listing: ProposalList) -> None:
        self.listing = listing
        self.sent: list[Request[Any]] = []
        self.refusal: str | None = None

    async def command(self, request: Request[Any]) -> Any:
        self.sent.append(request)
        if isinstance(request, GetProposals):
            return self.listing
        assert isinstance(request, CastVote)
        if self.refusal:
            raise CommandError(self.refusal)
        [found] = [p for p in self.listing.proposals if p.proposal_id == request.proposal_id]
        return VoteCast(
            proposal_id=request.proposal_id,
            option=request.option,
            previous=None,
            weight=10,
            message=f"voted {request.option!r} on {request.proposal_id} with weight 10",
            proposal=found,
        )


@pytest.fixture
def fake_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeNode:
    listing = msgspec.convert(
        {
            "weight": 10,
            "proposals": [proposal("gov-10"), proposal("gov-2"), proposal("gov-1")],
        },
        ProposalList,
    )
    fake = FakeNode(listing)

    @contextlib.asynccontextmanager
    async def session(_config: object) -> AsyncIterator[FakeNode]:
        yield fake

    monkeypatch.setattr(governance, "node_session", session)
    monkeypatch.setenv("OMNITENSOR_HOME", str(tmp_path / "node"))
    return fake


def test_vote_takes_a_number_or_prefix_and_an_option_in_any_case(
    fake_node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run(["vote", "2", "yes"], capsys)
    assert code == 0 and out == "voted 'Yes' on gov-2 with weight 10\n"
    assert fake_node.sent[-1] == CastVote(proposal_id="gov-2", option="Yes")
    # An exact id wins over the prefix it is of (gov-1 against gov-10).
    run(["vote", "gov-1", "NO"], capsys)
    assert fake_node.sent[-1] == CastVote(proposal_id="gov-1", option="No")


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["vote", "gov-7", "Yes"], "unknown proposal 'gov-7'; did you mean 'gov-2'?"),
        (["vote", "gov", "Yes"], "proposal 'gov' is ambiguous: gov-10, gov-2, gov-1"),
        (["vote", "2", "Yse"], "gov-2: unknown option 'Yse': one of Yes, No; did you mean 'Yes'?"),
    ],
)
def test_vote_refuses_what_it_cannot_resolve_before_sending(
    fake_node: FakeNode, capsys: pytest.CaptureFixture[str], argv: list[str], why: str
) -> None:
    code, _out, err = run(argv, capsys)
    assert code == 1 and err.splitlines() == [f"omnitensor: error: {why}"]
    assert not [r for r in fake_node.sent if isinstance(r, CastVote)]


def test_the_coordinators_refusal_is_one_line(
    fake_node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_node.refusal = "voting on gov-1 is closed"
    code, _out, err = run(["vote", "1", "Yes"], capsys)
    assert code == 1 and err == "omnitensor: error: voting on gov-1 is closed\n"


def test_proposals_as_text_and_json(
    fake_node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run(["proposals"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "your governance weight: 10"
    assert lines[2].startswith("gov-10  open     Title gov-10  ·  ") and "left" in lines[2]
    assert "Yes  ████████████████████ 100%  weight 10 (1 voter)" in lines[3]
    code, out, _err = run(["proposals", "--json"], capsys)
    assert code == 0 and json.loads(out)["proposals"][2]["proposal_id"] == "gov-1"
