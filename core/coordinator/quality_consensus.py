"""Consensus on the quality bank's unknown questions, from the votes of trusted rounds.

Every quality round carries two questions whose answer the coordinator does not know; the
node's answers to them are kept as votes, not scored. A vote counts only when its round
scored at least 5/6 on the known questions (that node's encoder demonstrably works), and
only a node's latest vote on a question counts (one node, one vote). A question is agreed
when at least ``min_votes`` nodes voted and at least ``min_share`` of them gave one answer.

The coordinator never promotes an answer by itself: a set of colluding nodes that pass the
known questions could otherwise teach it wrong answers. The operator reads the tally
(``omnitensor quality-consensus``) and may write a bank with the agreed answers filled in,
to run with ``--quality-bank``: a bigger private bank, grown from the network's own work.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.coordinator.operator import store_path
from core.coordinator.store import CoordinatorStore

__all__ = ["QuestionTally", "bank_with_answers", "tally_unknown_votes"]

TRUSTED_ACCURACY = Fraction(5, 6)  # the tier-2 line (quality.tier_for)


@dataclass(frozen=True)
class QuestionTally:
    """The trusted votes on one unknown question: candidate index -> voters."""

    question_id: str
    counts: dict[int, int] = field(default_factory=dict)

    @property
    def voters(self) -> int:
        return sum(self.counts.values())

    @property
    def top(self) -> tuple[int, int]:
        """(answer, voters) of the most chosen answer; the lowest index on a tie."""
        return min(self.counts.items(), key=lambda item: (-item[1], item[0]))

    def agreed(self, min_votes: int, min_share: Fraction) -> int | None:
        """The agreed answer, or None (too few voters, or no answer with enough of them)."""
        if self.voters < min_votes:
            return None
        answer, count = self.top
        return answer if Fraction(count, self.voters) >= min_share else None


async def tally_unknown_votes(data_dir: Path) -> list[QuestionTally]:
    """The trusted votes on every unknown question voted on, by question id."""
    latest: dict[tuple[str, str], int] = {}
    async with (
        CoordinatorStore(store_path(data_dir)) as store,
        store.db.execute(
            "SELECT node_id, answers, known, correct FROM quality_rounds"
            " WHERE state = 'scored' AND known > 0 AND answers IS NOT NULL"
            " ORDER BY issued_ts"
        ) as cur,
    ):
        async for node_id, answers, known, correct in cur:
            if Fraction(int(correct), int(known)) < TRUSTED_ACCURACY:
                continue
            for question_id, index in _votes(answers):
                latest[(str(node_id), question_id)] = index  # a later round replaces it
    counts: dict[str, Counter[int]] = {}
    for (_node, question_id), index in latest.items():
        counts.setdefault(question_id, Counter())[index] += 1
    return [QuestionTally(qid, dict(counts[qid])) for qid in sorted(counts)]


def _votes(answers: str) -> list[tuple[str, int]]:
    """The (question id, index) votes the coordinator stored with a scored round."""
    try:
        stored = json.loads(answers)
        return [(str(qid), int(index)) for qid, index in stored.get("votes", [])]
    except (ValueError, TypeError, AttributeError):
        return []  # written by this coordinator: unreadable only if damaged, then no votes


def bank_with_answers(bank: dict[str, Any], agreed: dict[str, QuestionTally]) -> dict[str, Any]:
    """A copy of a format-1 bank (its JSON) with the agreed unknown questions answered,
    each noting the consensus it came from. Answers already known are never changed."""
    questions = []
    for question in bank["questions"]:
        tally = agreed.get(question["id"])
        answered = question
        if question.get("answer") is None and tally is not None:
            answer, count = tally.top
            if 0 <= answer < len(question["candidates"]):
                consensus = {"voters": tally.voters, "agreeing": count}
                answered = {**question, "answer": answer, "consensus": consensus}
        questions.append(answered)
    return {**bank, "questions": questions}
