"""Quality rounds: the shipped bank, drawing, the public view, answering and scoring.

The real model must answer the bank's known questions (that is what makes them known):
a fixed quarter of them here, all of them in ``python -m tests.bench.make_quality_bank
--check``. Those tests skip only without the model package, as test_parity.py does.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from kernels.backend import numpy_backend
from kernels.inference import (
    InferenceError,
    ModelMissing,
    SentenceEncoder,
    find_model_dir,
    load_model,
)
from kernels.inference.quality import (
    BANK_NAME,
    BANK_PATHS,
    QUESTIONS_MAX_CHARS,
    BadQuestion,
    Question,
    answer_round,
    default_bank_path,
    draw_round,
    load_bank,
    public_view,
    question_from_public,
    score_round,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bank() -> list[Question]:
    return load_bank()


@pytest.fixture(scope="module")
def real_encoder() -> Iterator[SentenceEncoder]:
    try:
        model_dir = find_model_dir(None, {})
    except ModelMissing as err:
        pytest.skip(f"model package not installed ({err})")
    with SentenceEncoder(load_model(model_dir, numpy_backend())) as encoder:
        yield encoder


def test_shipped_bank_loads_with_known_answers_in_range(bank: list[Question]) -> None:
    assert default_bank_path() == ROOT / "assets" / BANK_NAME
    assert default_bank_path().stat().st_size < 200_000
    known = [q for q in bank if q.answer is not None]
    assert len(bank) >= 350 and len(known) >= 300 and len(bank) - len(known) >= 30
    assert len({q.id for q in bank}) == len(bank)
    for q in bank:
        assert len(q.candidates) == 4 and len(set(q.candidates)) == 4
        assert q.query not in q.candidates
        assert q.answer is None or 0 <= q.answer < 4
    # The shuffled order does not favour a position.
    positions = [sum(q.answer == k for q in known) for k in range(4)]
    assert min(positions) > len(known) // 8, positions


def test_wheel_carries_the_bank_where_the_loader_looks() -> None:
    """pyproject force-includes assets/ as core/_assets; kernels/ looks there by path."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    packaged = ROOT / mapping["assets"] / BANK_NAME
    assert packaged in BANK_PATHS


def test_draw_round_is_deterministic_mixed_and_seed_dependent(bank: list[Question]) -> None:
    first = draw_round(bank, b"seed-1")
    assert first == draw_round(list(bank), b"seed-1")
    assert len(first) == 8 and len({q.id for q in first}) == 8
    assert sum(q.answer is None for q in first) == 2
    rounds = [[q.id for q in draw_round(bank, bytes([i]))] for i in range(20)]
    assert len({tuple(r) for r in rounds}) == 20
    # Unknown questions are not always at the same places.
    places = {
        k for i in range(20) for k, q in enumerate(draw_round(bank, bytes([i]))) if q.answer is None
    }
    assert len(places) > 2
    assert [q.answer is None for q in draw_round(bank, b"x", known=3, unknown=0)] == [False] * 3
    with pytest.raises(ValueError, match="unknown"):
        draw_round(bank[:5], b"x", known=0, unknown=10)
    with pytest.raises(ValueError, match="at most 32"):
        draw_round(bank, b"x", known=30, unknown=3)
    with pytest.raises(ValueError, match="known"):
        draw_round([q for q in bank if q.answer is None], b"x")


def test_public_view_never_carries_the_answer(bank: list[Question]) -> None:
    for q in draw_round(bank, b"wire"):
        view = public_view(q)
        assert set(view) == {"id", "query", "candidates"}
        assert "answer" not in json.dumps(view)
        back = question_from_public(json.loads(json.dumps(view)))
        assert back == Question(q.id, q.query, q.candidates, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"id": "a", "query": "q", "candidates": ["x", "y"], "answer": 0}, "unexpected field"),
        ({"id": "a", "query": "q", "candidates": ["x"]}, "2..8 texts"),
        ({"id": "a", "query": "q", "candidates": "xy"}, "2..8 texts"),
        ({"id": "a", "query": "q", "candidates": ["x", "x"]}, "duplicate"),
        ({"id": "a", "query": " ", "candidates": ["x", "y"]}, "'query' must be"),
        ({"id": "a", "query": "q", "candidates": ["x", 3]}, "'candidate' must be"),
        ({"id": "a", "query": "q" * (QUESTIONS_MAX_CHARS + 1), "candidates": ["x", "y"]}, "more"),
    ],
)
def test_question_from_public_refuses_malformed(data: object, message: str) -> None:
    with pytest.raises(BadQuestion, match=message):
        question_from_public(data)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bank.json"
    path.write_text(text, encoding="utf-8")
    return path


def _bank_text(*questions: dict[str, Any]) -> str:
    return json.dumps({"format": 1, "questions": list(questions)})


GOOD = {"id": "q1", "query": "a", "candidates": ["b", "c", "d", "e"], "answer": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"format": 2, "questions": []}', "not a format 1 question bank"),
        ('{"format": 1, "questions": []}', "non-empty list"),
        (_bank_text(GOOD, GOOD), "duplicate id 'q1'"),
        (_bank_text({**GOOD, "answer": 4}), r"question 0: q1: answer 4 outside 0\.\.3"),
        (_bank_text({**GOOD, "answer": True}), "integer or null"),
        (_bank_text({**GOOD, "margin": "big"}), "'margin' must be a number"),
    ],
)
def test_load_bank_refuses_bad_files_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadQuestion, match=message) as caught:
        load_bank(_write(tmp_path, text))
    assert "\n" not in str(caught.value) and "bank.json" in str(caught.value)
    assert isinstance(caught.value, InferenceError)


def test_load_bank_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadQuestion, match="cannot read question bank"):
        load_bank(tmp_path / "nothing.json")


class _Lookup:
    """A fake encoder: each text's vector is given; counts encode calls."""

    def __init__(self, vectors: dict[str, Sequence[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_answer_round_picks_the_closest_by_cosine_in_one_call() -> None:
    encoder = _Lookup(
        {"q": [1, 0], "far": [0, 1], "near": [10, 1], "opp": [-1, 0], "p": [0, 1], "same": [0, 5]}
    )
    questions = [
        Question("a", "q", ("far", "near", "opp"), None),
        Question("b", "p", ("near", "same"), 1),
        Question("c", "q", ("near", "far"), 0),
    ]
    assert answer_round(encoder, questions) == [1, 1, 0]
    assert len(encoder.calls) == 1 and sorted(encoder.calls[0]) == sorted(set(encoder.calls[0]))
    assert answer_round(encoder, []) == [] and len(encoder.calls) == 1


def test_answer_round_refuses_an_encoder_that_drops_rows() -> None:
    class Short(_Lookup):
        def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return super().encode(texts)[:-1]

    with pytest.raises(InferenceError, match="2 rows for 3 texts"):
        answer_round(Short({"q": [1], "a": [1], "b": [1]}), [Question("x", "q", ("a", "b"), 0)])


def test_real_model_answers_the_known_questions(
    bank: list[Question], real_encoder: SentenceEncoder
) -> None:
    # A fixed quarter (about 80) keeps this under 2 s on two cores; the generator's
    # --check re-encodes the whole bank and compares it byte for byte.
    known = [q for q in bank if q.answer is not None][::4]
    assert len(known) >= 75
    answers = answer_round(real_encoder, known)
    wrong = [q.id for q, a in zip(known, answers, strict=True) if a != q.answer]
    score = score_round(known, answers)
    assert score.known == len(known) and score.reason is None
    assert score.accuracy >= Fraction(95, 100), f"wrong on {wrong}"


def test_real_model_answers_a_drawn_round(
    bank: list[Question], real_encoder: SentenceEncoder
) -> None:
    questions = draw_round(bank, b"round")
    wire = [question_from_public(public_view(q)) for q in questions]  # what the node gets
    score = score_round(questions, answer_round(real_encoder, wire))
    assert (score.correct, score.known, score.accuracy) == (6, 6, Fraction(1))
    assert [i for i, _ in score.votes] == [q.id for q in questions if q.answer is None]


def test_a_random_answerer_scores_about_a_quarter(bank: list[Question]) -> None:
    rng = random.Random(7)
    known = [q for q in bank if q.answer is not None]
    score = score_round(known, [rng.randrange(len(q.candidates)) for q in known])
    assert score.reason is None
    assert Fraction(15, 100) <= score.accuracy <= Fraction(35, 100), float(score.accuracy)


def test_score_round_counts_known_only_and_keeps_votes() -> None:
    questions = [
        Question("a", "q", ("x", "y"), 0),
        Question("u", "q", ("x", "y", "z"), None),
        Question("b", "q", ("x", "y"), 1),
        Question("c", "q", ("x", "y"), 1),
    ]
    score = score_round(questions, [0, 2, 0, 1])
    assert (score.correct, score.known, score.accuracy) == (2, 3, Fraction(2, 3))
    assert score.votes == (("u", 2),) and not score.refused
    empty = score_round([Question("u", "q", ("x", "y"), None)], [1])
    assert (empty.known, empty.accuracy, empty.reason) == (0, Fraction(0), None)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([0, 1], "2 answers for 3 questions"),
        ([0, 1, 0, 0], "4 answers for 3 questions"),
        ([0, 2, 0], "answer 1 is 2, outside 0..1"),
        ([0, -1, 0], "answer 1 is -1"),
        ([0, 1, True], "answer 2 is not an integer"),
        ([0, 1.0, 0], "answer 1 is not an integer"),
        ([0, "1", 0], "answer 1 is not an integer"),
        ("010", "answers must be a list"),
        (None, "answers must be a list"),
    ],
)
def test_score_round_refuses_malformed_answers(answers: Any, reason: str) -> None:
    questions = [Question(k, "q", ("x", "y"), 0) for k in "abc"]
    score = score_round(questions, answers)
    assert score.refused and score.reason is not None and reason in score.reason
    assert (score.correct, score.known, score.accuracy, score.votes) == (0, 3, Fraction(0), ())
