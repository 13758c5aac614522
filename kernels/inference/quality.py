"""Quality rounds: short semantic-similarity quizzes the coordinator sends a node's encoder.

A question is a query and K candidate sentences; the answer is the index of the candidate
closest in meaning. The coordinator (CPU only, possibly without the model) draws a round
from the shipped bank with :func:`draw_round`, sends each question's :func:`public_view`
(never the answer), and scores what comes back with :func:`score_round`: accuracy on the
*known* questions only. Unknown questions (``answer is None``) are the ones whose answer
the coordinator learns from the nodes' consensus; their answers are returned as votes.
The node parses a question with :func:`question_from_public` and answers the round with
:func:`answer_round` (one encode call, argmax cosine).

The bank (``assets/quality/questions.json``) is written by
``tests/bench/make_quality_bank.py``, which keeps as known only questions our encoder gets
right by a clear cosine margin. Everything here but :func:`answer_round` is plain Python:
a coordinator needs neither the model nor an encoder to draw and score rounds.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kernels.inference.errors import InferenceError

__all__ = [
    "BANK_FORMAT",
    "BANK_NAME",
    "BANK_PATHS",
    "ID_MAX_CHARS",
    "MAX_CANDIDATES",
    "MIN_CANDIDATES",
    "QUESTIONS_MAX_CHARS",
    "ROUND_MAX_QUESTIONS",
    "BadQuestion",
    "Question",
    "RoundScore",
    "TextEncoder",
    "answer_round",
    "default_bank_path",
    "draw_round",
    "load_bank",
    "public_view",
    "question_from_public",
    "score_round",
]

BANK_FORMAT = 1
BANK_NAME = "quality/questions.json"
# Longest query or candidate text, in characters (the bank's are far shorter).
QUESTIONS_MAX_CHARS = 300
ID_MAX_CHARS = 64
MIN_CANDIDATES = 2
MAX_CANDIDATES = 8
# Most questions in one round: bounds what a node encodes for one request.
ROUND_MAX_QUESTIONS = 32

_KERNELS_DIR = Path(__file__).resolve().parents[1]
# Like core/assets.py (which kernels/ must not import): a source checkout has assets/ at
# the repository root; a wheel carries it as core/_assets (pyproject's force-include),
# beside this package in site-packages.
BANK_PATHS: tuple[Path, ...] = (
    _KERNELS_DIR.parent / "core" / "_assets" / BANK_NAME,
    _KERNELS_DIR.parent / "assets" / BANK_NAME,
)


class BadQuestion(InferenceError):
    """A question bank or a question from the wire is malformed; ``str(err)`` is one line."""


@dataclass(frozen=True)
class Question:
    """A query, its candidates and the index of the right one (``None``: unknown)."""

    id: str
    query: str
    candidates: tuple[str, ...]
    answer: int | None


@dataclass(frozen=True)
class RoundScore:
    """The score of one round's answers.

    ``accuracy`` is ``correct / known`` exactly (0 when there is nothing to score, or when
    ``reason`` says why the answers were refused). ``votes`` holds the answers given to the
    unknown questions, ``(id, index)``, for the coordinator's consensus (empty if refused).
    """

    correct: int
    known: int
    accuracy: Fraction
    reason: str | None = None
    votes: tuple[tuple[str, int], ...] = ()

    @property
    def refused(self) -> bool:
        """True when the answers were malformed and scored 0."""
        return self.reason is not None


class TextEncoder(Protocol):
    """What :func:`answer_round` needs: ``SentenceEncoder.encode``."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def default_bank_path() -> Path:
    """The shipped bank; :class:`BadQuestion` when it is not installed."""
    for path in BANK_PATHS:
        if path.is_file():
            return path
    searched = ", ".join(str(path) for path in BANK_PATHS)
    raise BadQuestion(f"question bank {BANK_NAME} not found (looked in {searched})")


def load_bank(path: Path | None = None) -> list[Question]:
    """Every question of the bank at ``path`` (default: the shipped one), validated.

    Raises :class:`BadQuestion` naming the file and the first problem.
    """
    bank = default_bank_path() if path is None else path
    try:
        data = json.loads(bank.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadQuestion(f"cannot read question bank {bank}: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadQuestion(f"question bank {bank} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format") != BANK_FORMAT:
        raise BadQuestion(f"question bank {bank}: not a format {BANK_FORMAT} question bank")
    items = data.get("questions")
    if not isinstance(items, list) or not items:
        raise BadQuestion(f"question bank {bank}: 'questions' must be a non-empty list")
    questions: list[Question] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        try:
            question = _parse(item, with_answer=True)
        except BadQuestion as err:
            raise BadQuestion(f"question bank {bank}: question {position}: {err}") from None
        if question.id in seen:
            raise BadQuestion(f"question bank {bank}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    return questions


def public_view(question: Question) -> dict[str, object]:
    """The plain-data form sent to a node: id, query and candidates, never the answer."""
    return {"id": question.id, "query": question.query, "candidates": list(question.candidates)}


def question_from_public(data: object) -> Question:
    """A question received from the coordinator (:func:`public_view`'s form), validated;
    its answer is ``None``. Raises :class:`BadQuestion`."""
    return _parse(data, with_answer=False)


def draw_round(
    bank: Sequence[Question], seed: bytes, known: int = 6, unknown: int = 2
) -> list[Question]:
    """``known`` known and ``unknown`` unknown questions of ``bank``, in a mixed order.

    The same bank and seed always give the same round, on any machine and Python (the
    choice and the order rank questions by SHA-256 of the seed and the id). Raises
    ValueError when the bank has too few of either kind.
    """
    if known < 0 or unknown < 0 or known + unknown == 0:
        raise ValueError(f"a round needs questions, got known={known}, unknown={unknown}")
    if known + unknown > ROUND_MAX_QUESTIONS:
        raise ValueError(f"a round has at most {ROUND_MAX_QUESTIONS} questions")
    known_pool = [q for q in bank if q.answer is not None]
    unknown_pool = [q for q in bank if q.answer is None]
    if len(known_pool) < known or len(unknown_pool) < unknown:
        raise ValueError(
            f"the bank has {len(known_pool)} known and {len(unknown_pool)} unknown questions; "
            f"the round wants {known} and {unknown}"
        )

    def rank(tag: bytes, question: Question) -> bytes:
        return hashlib.sha256(tag + b"\0" + seed + b"\0" + question.id.encode()).digest()

    chosen = sorted(known_pool, key=lambda q: rank(b"known", q))[:known]
    chosen += sorted(unknown_pool, key=lambda q: rank(b"unknown", q))[:unknown]
    return sorted(chosen, key=lambda q: rank(b"order", q))


def answer_round(encoder: TextEncoder, questions: Sequence[Question]) -> list[int]:
    """For each question, the index of the candidate most similar to the query (cosine).

    One encode call for every distinct text of the round; ties go to the lower index.
    """
    if not questions:
        return []
    index: dict[str, int] = {}
    for question in questions:
        for text in (question.query, *question.candidates):
            index.setdefault(text, len(index))
    vectors = np.asarray(encoder.encode(list(index)), dtype=np.float64)
    if vectors.shape[0] != len(index):
        raise InferenceError(f"encoder returned {vectors.shape[0]} rows for {len(index)} texts")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    answers: list[int] = []
    for question in questions:
        query = unit[index[question.query]]
        candidates = unit[[index[text] for text in question.candidates]]
        answers.append(int(np.argmax(candidates @ query)))
    return answers


def score_round(questions: Sequence[Question], answers: Sequence[int]) -> RoundScore:
    """Score ``answers`` (from the wire: anything) against the known questions.

    A wrong number of answers, or any answer that is not an index into its question's
    candidates, refuses the whole round: score 0 with the reason.
    """
    known = sum(1 for q in questions if q.answer is not None)
    if not isinstance(answers, Sequence) or isinstance(answers, str | bytes):
        return _refused(known, f"answers must be a list, got {type(answers).__name__}")
    if len(answers) != len(questions):
        return _refused(known, f"{len(answers)} answers for {len(questions)} questions")
    correct = 0
    votes: list[tuple[str, int]] = []
    for position, (question, given) in enumerate(zip(questions, answers, strict=True)):
        if isinstance(given, bool) or not isinstance(given, int):
            return _refused(known, f"answer {position} is not an integer: {given!r:.40}")
        if not 0 <= given < len(question.candidates):
            return _refused(
                known,
                f"answer {position} is {given}, outside 0..{len(question.candidates) - 1}",
            )
        if question.answer is None:
            votes.append((question.id, given))
        elif given == question.answer:
            correct += 1
    accuracy = Fraction(correct, known) if known else Fraction(0)
    return RoundScore(correct=correct, known=known, accuracy=accuracy, votes=tuple(votes))


def _refused(known: int, reason: str) -> RoundScore:
    return RoundScore(correct=0, known=known, accuracy=Fraction(0), reason=reason)


def _parse(data: object, *, with_answer: bool) -> Question:
    if not isinstance(data, Mapping):
        raise BadQuestion(f"a question must be an object, got {type(data).__name__}")
    # "consensus": where an answer came from when the network's votes supplied it (a note).
    allowed = {"id", "query", "candidates"} | (
        {"answer", "margin", "consensus"} if with_answer else set()
    )
    extra = sorted(str(key) for key in data if key not in allowed)
    if extra:
        raise BadQuestion(f"unexpected field {extra[0]!r}")
    ident = _text(data, "id", ID_MAX_CHARS)
    query = _text(data, "query", QUESTIONS_MAX_CHARS)
    raw = data.get("candidates")
    if not isinstance(raw, list) or not MIN_CANDIDATES <= len(raw) <= MAX_CANDIDATES:
        raise BadQuestion(
            f"{ident}: 'candidates' must be a list of {MIN_CANDIDATES}..{MAX_CANDIDATES} texts"
        )
    candidates = tuple(
        _text({"candidate": text}, "candidate", QUESTIONS_MAX_CHARS, ident) for text in raw
    )
    if len(set(candidates)) != len(candidates):
        raise BadQuestion(f"{ident}: duplicate candidates")
    answer: int | None = None
    if with_answer:
        value = data.get("answer")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadQuestion(f"{ident}: 'answer' must be an integer or null")
            if not 0 <= value < len(candidates):
                raise BadQuestion(f"{ident}: answer {value} outside 0..{len(candidates) - 1}")
            answer = value
        margin = data.get("margin")
        if margin is not None and (
            isinstance(margin, bool)
            or not isinstance(margin, int | float)
            or not math.isfinite(margin)
        ):
            raise BadQuestion(f"{ident}: 'margin' must be a number")
    return Question(id=ident, query=query, candidates=candidates, answer=answer)


def _text(data: Mapping[object, object], key: str, limit: int, owner: str = "") -> str:
    where = f"{owner}: " if owner else ""
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadQuestion(f"{where}{key!r} must be a non-empty string")
    if len(value) > limit:
        raise BadQuestion(f"{where}{key!r} is {len(value)} characters, more than {limit}")
    return value
