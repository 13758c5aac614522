"""Governance's pure rules: proposals checked, weights by award periods, integer tallies."""

from __future__ import annotations

import pytest

from core.calendar import season_by_id
from core.game.governance import (
    GovernanceError,
    HeldAward,
    Proposal,
    award_period_end,
    check_proposal,
    check_vote,
    resolve_option,
    tally,
    weights_at,
)

NOW = 1_800_000_000.0
A, B, C = "a" * 64, "b" * 64, "c" * 64


def proposal(start: float = NOW, end: float = NOW + 3600) -> Proposal:
    return Proposal("gov-1", "Raise the cap", "", ("Yes", "No", "Abstain"), start, end, NOW)


@pytest.mark.parametrize(
    ("title", "options", "start", "end", "why"),
    [
        ("", ["a", "b"], NOW, NOW + 1, "needs a title"),
        ("   ", ["a", "b"], NOW, NOW + 1, "needs a title"),
        ("T", [], NOW, NOW + 1, "at least 2 options (got 0)"),
        ("T", ["only"], NOW, NOW + 1, "at least 2 options (got 1)"),
        ("T", ["Yes", "yes"], NOW, NOW + 1, "duplicate option 'yes'"),
        ("T", ["a", "b"], NOW, NOW - 1, "ends before it starts"),
        ("T", ["a", "b"], NOW, NOW, "ends before it starts"),
        ("T", ["a", "b"], NOW - 100, NOW - 1, "already over"),
        ("T", ["a", ""], NOW, NOW + 1, "must not be empty"),
        ("T\x1b[2J", ["a", "b"], NOW, NOW + 1, "printable"),
        ("T", ["a", "b"], NOW, NOW + 91 * 86400, "longer than 90 days"),
    ],
)
def test_bad_proposals_are_refused_with_the_reason(
    title: str, options: list[str], start: float, end: float, why: str
) -> None:
    with pytest.raises(GovernanceError, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_proposal(title, "text", options, start=start, end=end, now=NOW)


def test_a_good_proposal_is_trimmed() -> None:
    got = check_proposal(" T ", " body\nmore ", [" Yes", "No "], start=NOW, end=NOW + 1, now=NOW)
    assert got == ("T", "body\nmore", ("Yes", "No"))


def test_options_ignore_case_and_near_misses_are_named() -> None:
    assert resolve_option(("Yes", "No"), " yES ") == "Yes"
    with pytest.raises(GovernanceError, match=r"unknown option 'Yse': one of Yes, No; did you"):
        resolve_option(("Yes", "No"), "Yse")
    with pytest.raises(GovernanceError, match=r"one of Yes, No$"):
        resolve_option(("Yes", "No"), "banana")


def test_weight_counts_awards_from_the_end_of_their_period() -> None:
    q3 = season_by_id("2026-Q3")
    assert award_period_end("2026-Q3") == q3.end
    assert award_period_end("2026-11") == season_by_id("2026-Q4").start + (31 + 30) * 86400
    held = [
        HeldAward(A, 10, q3.end),
        HeldAward(A, 3, q3.end + 100),  # a later period
        HeldAward(B, 8, q3.end),
        HeldAward(C, 0, q3.end),  # weight 0 is no weight
    ]
    assert weights_at(held, q3.end - 1) == {}
    assert weights_at(held, q3.end) == {A: 10, B: 8}
    assert weights_at(held, q3.end + 100) == {A: 13, B: 8}


def test_tally_sums_integer_weights_per_option_one_vote_per_node() -> None:
    votes = {A: "Yes", B: "No", C: "Yes"}
    result = tally(("Yes", "No", "Abstain"), votes, {A: 10, B: 8, C: 1})
    assert [(o.option, o.weight, o.voters) for o in result.options] == [
        ("Yes", 11, 2),
        ("No", 8, 1),
        ("Abstain", 0, 0),
    ]
    assert (result.total_weight, result.voters) == (19, 3)
    # B changes its vote: the mapping holds its latest option only, counted once.
    changed = tally(("Yes", "No", "Abstain"), {**votes, B: "Yes"}, {A: 10, B: 8, C: 1})
    assert [o.weight for o in changed.options] == [19, 0, 0] and changed.voters == 3
    assert all(isinstance(o.weight, int) for o in changed.options)


def test_votes_are_refused_outside_the_window_on_unknown_options_and_without_weight() -> None:
    p = proposal()
    assert check_vote(p, "yes", 10, NOW) == "Yes"
    with pytest.raises(GovernanceError, match="has not opened yet"):
        check_vote(p, "Yes", 10, NOW - 1)
    with pytest.raises(GovernanceError, match="is closed"):
        check_vote(p, "Yes", 10, NOW + 3600)
    with pytest.raises(GovernanceError, match="unknown option 'Maybe'"):
        check_vote(p, "Maybe", 10, NOW)
    with pytest.raises(GovernanceError, match="no governance weight"):
        check_vote(p, "Yes", 0, NOW)
