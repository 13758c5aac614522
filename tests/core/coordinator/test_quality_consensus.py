"""Consensus on the quality bank's unknown questions: trusted rounds only, one vote per node,
an agreement threshold; a bank written with the agreed answers loads as a bank. And the
operator's ``quality-consensus`` command over a real coordinator store."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from core.coordinator.quality_consensus import bank_with_answers, tally_unknown_votes
from core.coordinator.store import CoordinatorStore
from kernels.inference.quality import default_bank_path, load_bank
from tests.helpers.cli import run_cli

# Unknown questions of the shipped bank.
Q1, Q7, Q10 = "q0001", "q0007", "q0010"


async def _rounds(data_dir: Path, rows: list[tuple[str, float, int, int, object]]) -> None:
    """(node, issued_ts, known, correct, votes) as scored rounds; votes may be damaged text."""
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test's set-up
    async with CoordinatorStore(data_dir / "coordinator.db") as store, store.transaction() as db:
        for i, (node, ts, known, correct, votes) in enumerate(rows):
            answers = (
                votes if isinstance(votes, str) else json.dumps({"answers": [], "votes": votes})
            )
            await db.execute(
                "INSERT INTO quality_rounds (round_id, node_id, issued_ts, deadline_ts, questions,"
                " answers, known, correct, state) VALUES (?, ?, ?, ?, '[]', ?, ?, ?, 'scored')",
                (f"r{i}", node, ts, ts + 60, answers, known, correct),
            )


async def _network(data_dir: Path) -> None:
    trusted = [f"n{i}" for i in range(1, 7)]
    rows: list[tuple[str, float, int, int, object]] = [
        # q0001: five of six trusted nodes say 2: agreed.
        *(
            (node, 10.0, 6, 6 if i % 2 else 5, [[Q1, 2 if i < 5 else 3]])
            for i, node in enumerate(trusted)
        ),
        ("liar", 11.0, 6, 4, [[Q1, 3]] * 3),  # 4/6 on the known ones: not trusted
        # q0007: n1 changed its mind (its latest vote counts); three voters in all: too few.
        ("n1", 12.0, 6, 6, [[Q7, 1]]),
        ("n1", 13.0, 6, 6, [[Q7, 0]]),
        ("n2", 12.0, 6, 6, [[Q7, 0]]),
        ("n3", 12.0, 6, 6, [[Q7, 1]]),
        # q0010: five voters split 3 to 2: not three quarters.
        *((node, 14.0, 6, 6, [[Q10, 0 if i < 3 else 1]]) for i, node in enumerate(trusted[:5])),
        ("n6", 15.0, 6, 6, "{not json"),  # a damaged row: no votes, no crash
    ]
    await _rounds(data_dir, rows)


async def test_trusted_latest_votes_and_the_agreement_line(tmp_path: Path) -> None:
    await _network(tmp_path)
    tallies = {t.question_id: t for t in await tally_unknown_votes(tmp_path)}
    assert tallies[Q1].counts == {2: 5, 3: 1}  # the liar's three votes are not there
    assert tallies[Q1].agreed(5, Fraction(3, 4)) == 2
    assert tallies[Q1].agreed(7, Fraction(3, 4)) is None  # not enough voters
    assert tallies[Q7].counts == {0: 2, 1: 1} and tallies[Q7].agreed(5, Fraction(3, 4)) is None
    assert tallies[Q10].counts == {0: 3, 1: 2} and tallies[Q10].agreed(5, Fraction(3, 4)) is None
    assert tallies[Q10].agreed(5, Fraction(3, 5)) == 0


async def test_the_written_bank_adds_only_agreed_answers(tmp_path: Path) -> None:
    await _network(tmp_path)
    tallies = await tally_unknown_votes(tmp_path)
    agreed = {t.question_id: t for t in tallies if t.agreed(5, Fraction(3, 4)) is not None}
    raw = json.loads(default_bank_path().read_text("utf-8"))
    out = tmp_path / "bank.json"
    out.write_text(json.dumps(bank_with_answers(raw, agreed)), "utf-8")
    before = {q.id: q for q in load_bank()}
    after = {q.id: q for q in load_bank(out)}
    assert after[Q1].answer == 2 and before[Q1].answer is None
    assert after[Q7].answer is None and after[Q10].answer is None
    changed = [qid for qid in before if before[qid].answer != after[qid].answer]
    assert changed == [Q1]  # known answers untouched


async def test_the_operator_command(tmp_path: Path) -> None:
    data = tmp_path / "coordinator"
    await _network(data)
    out = tmp_path / "grown.json"
    done = run_cli("quality-consensus", "--data-dir", str(data), "--write-bank", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"{Q1}    6 voters  answer 2 (5/6)  agreed" in lines
    assert f"{Q7}    3 voters  answer 0 (2/3)  open" in lines
    assert "3 of 71 unknown questions voted on, 1 agreed" in done.stdout
    assert {q.id: q.answer for q in load_bank(out)}[Q1] == 2
    as_json = json.loads(run_cli("quality-consensus", "--data-dir", str(data), "--json").stdout)
    assert [q["agreed"] for q in as_json["questions"]] == [2, None, None]
    for args, why in (
        (["--data-dir", str(tmp_path / "none")], "no coordinator store at"),
        (["--data-dir", str(data), "--min-share", "two"], "bad --min-share 'two'"),
        (["--data-dir", str(data), "--min-share", "3/2"], "--min-share must be in (0, 1]"),
    ):
        bad = run_cli("quality-consensus", *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        [line] = bad.stderr.strip().splitlines()
        assert why in line, line
