"""Validate a contributed dataset: integrity, duplicates, near duplicates, label outliers.

A validator receives ``(hash, label, bytes)`` per record and answers a
:class:`ValidationReport`; the network has two validators check the same contribution and
compares their reports with :func:`reports_agree`, then pays for :func:`accepted_records`.

Everything that decides pay exactly (integrity, exact duplicates, label counts) is computed
from bytes and integers, so it is the same on every machine. Near duplicates and outliers
come from similarities compared with thresholds: they run on the backend's array module
(CuPy on a rig, NumPy here) in row blocks, and a pair right at a threshold may land on
either side on different hardware; :func:`reports_agree` tolerates a few such flips.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from kernels.backend_base import Array, Backend, numpy_backend
from kernels.data.image_hash import image_signs, phash
from kernels.data.records import (
    IMAGE_KIND,
    KINDS,
    TEXT_KIND,
    integrity_problem,
    label_problem,
    sha256_hex,
)

__all__ = [
    "BLOCK_ROWS",
    "IMAGE_NEAR_BITS",
    "OUTLIER_MARGIN",
    "OUTLIER_MIN_RECORDS",
    "TEXT_NEAR_COSINE",
    "Encode",
    "ValidationReport",
    "accepted_records",
    "agreement_tolerance",
    "normalized_text",
    "phash",
    "reports_agree",
    "validate_records",
]

# Two images are near duplicates when their 64-bit perceptual hashes differ in at most
# this many bits. Calibrated (`python -m tests.bench.data_bench --calibrate`): resized
# (0.5x-2x) and re-encoded (JPEG quality 30-95) copies of smooth random 64x64 images, of
# random noise and of 27 real screenshots and diagrams differ in at most 8 bits (mean 1-3);
# distinct images in 12 or more (smooth random pairs: 12 at the least, mean 31; noise: 20;
# the real ones: 14). Rare chance pairs remain: among 2,000 smooth random images (2M pairs)
# 5 distinct pairs fell within 10 bits. Crops, rotations and flips are not caught.
IMAGE_NEAR_BITS = 10
# Two texts are near duplicates when they are equal once case, punctuation and spacing
# are dropped (``normalized_text``: exact, so the same on every machine), or when their
# all-MiniLM-L6-v2 cosine is at least TEXT_NEAR_COSINE. Calibrated on hand-made pairs
# (`python -m tests.bench.data_bench --calibrate`): punctuation edits alone score as low
# as 0.92 on short sentences ("... morning." / "... morning!!!"), which is why they are
# matched after normalizing instead; synonym or small-word edits score 0.95-0.999 ("film"
# for "movie" 0.954, "20" for "twenty" 0.971); sentences that differ in meaning score
# 0.62-0.94 ("price went up" / "down" 0.927, "turn left" / "right" 0.938). The model
# cannot see some one-word flips: "long" / "short battery life" scores 0.995 and is
# flagged, a limit of embedding similarity at any threshold.
TEXT_NEAR_COSINE = 0.95
# A text is a label outlier when some other label's centroid is closer to it than its own
# label's centroid (without itself) by more than this cosine. Calibrated on five-sentence
# topical labels (sports / cooking / weather): members come out at -0.10 or lower, a
# sentence about another label's topic at +0.31 to +0.60. The model groups texts by topic,
# not sentiment: on positive / negative reviews members reach +0.20 and a flipped review
# only +0.08 to +0.16, so the margin sits above that to keep false alarms down; sentiment
# mislabels are not found.
OUTLIER_MARGIN = 0.25
# Centroids of fewer records say too little about a label to call a member an outlier.
OUTLIER_MIN_RECORDS = 3
# Rows of the similarity matrix computed at once: a (BLOCK_ROWS, n) float32 block, so
# 10,000 records take 40 MB at a time instead of 400 MB.
BLOCK_ROWS = 1024

_T = TypeVar("_T")
_WORD = re.compile(r"\w+")

Encode = Callable[[list[str]], npt.NDArray[np.floating[Any]]]


@dataclass(frozen=True)
class ValidationReport:
    """What a validator found in one contribution; records are named by hash.

    - ``invalid``: hash -> why it failed integrity (or its hash does not match its bytes,
      or its label is not allowed). Excluded from every later check.
    - ``duplicates``: hash -> hash of the earlier identical record, for hashes sent more
      than once. Identical bytes have identical hashes, so the value is the key itself:
      the first occurrence is kept, the later copies are dropped (:func:`accepted_records`
      does this; do not drop every hash listed here).
    - ``near_duplicates``: hash -> hash of the earliest earlier record it is a near copy of.
    - ``outliers``: texts closer to another label than to their own (sorted); reported,
      still accepted: a mislabel is for a reviewer, not grounds to refuse pay.
    - ``label_counts``: label -> number of valid records, once per hash. Near duplicates
      are counted: this must match exactly between validators, and near duplicates can
      differ at a threshold.
    - ``total``: the number of records received.
    """

    invalid: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)
    near_duplicates: dict[str, str] = field(default_factory=dict)
    outliers: tuple[str, ...] = ()
    label_counts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form with sorted keys (the same report gives the same JSON)."""
        return {
            "duplicates": dict(sorted(self.duplicates.items())),
            "invalid": dict(sorted(self.invalid.items())),
            "label_counts": dict(sorted(self.label_counts.items())),
            "near_duplicates": dict(sorted(self.near_duplicates.items())),
            "outliers": sorted(self.outliers),
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        """The report from :meth:`to_dict`'s form; ValueError when it is malformed (it may
        come from the network)."""
        if not isinstance(data, Mapping):
            raise ValueError("a validation report must be an object")
        total = data.get("total", 0)
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise ValueError("report total must be a non-negative integer")
        outliers = data.get("outliers", [])
        if not isinstance(outliers, list) or not all(isinstance(h, str) for h in outliers):
            raise ValueError("report outliers must be a list of strings")
        counts = _mapping(data, "label_counts", int)
        if any(isinstance(v, bool) or v < 0 for v in counts.values()):
            raise ValueError("report label_counts must be non-negative integers")
        return cls(
            invalid=_mapping(data, "invalid", str),
            duplicates=_mapping(data, "duplicates", str),
            near_duplicates=_mapping(data, "near_duplicates", str),
            outliers=tuple(sorted(outliers)),
            label_counts=counts,
            total=total,
        )


def _mapping(data: Mapping[str, Any], key: str, kind: type[_T]) -> dict[str, _T]:
    value = data.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, kind) for k, v in value.items()
    ):
        raise ValueError(f"report {key} must map strings to {kind.__name__}")
    return dict(sorted(value.items()))


def validate_records(
    kind: str,
    records: Sequence[tuple[str, str, bytes]],
    *,
    encode: Encode | None = None,
    backend: Backend | None = None,
) -> ValidationReport:
    """Check ``(hash, label, bytes)`` records, in the dataset's order.

    ``encode`` turns texts into unit-length embeddings (``SentenceEncoder.encode``); text
    needs it (ValueError without). Similarities run on ``backend`` (NumPy by default).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}")
    if kind == TEXT_KIND and encode is None:
        raise ValueError("validating texts needs an encoder (encode=SentenceEncoder.encode)")
    backend = backend or numpy_backend()
    invalid: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    first: dict[str, int] = {}  # hash -> index of its first occurrence
    kept: list[int] = []  # valid first occurrences, in order
    features: list[npt.NDArray[np.float32]] = []  # image signs; texts are encoded below
    texts: list[str] = []
    for index, (digest, label, data) in enumerate(records):
        # The first occurrence of a hash decides its fate; later ones are copies (of the
        # same bytes, or a forgery claiming a hash already sent: either way not paid twice).
        if digest in first:
            if digest not in invalid:
                duplicates[digest] = digest
            continue
        first[digest] = index
        problem = _problem(kind, digest, label, data)
        if problem is None and kind == IMAGE_KIND:
            # Decoding is the integrity check and gives the pixels to hash: done once.
            signs = image_signs(data)
            if isinstance(signs, str):
                problem = signs
            else:
                features.append(signs)
        if problem is not None:
            invalid[digest] = problem
            continue
        if kind == TEXT_KIND:
            texts.append(data.decode("utf-8"))
        kept.append(index)

    hashes = [records[i][0] for i in kept]
    labels = [records[i][1] for i in kept]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    near: dict[str, str] = {}
    outliers: tuple[str, ...] = ()
    if kept:
        if kind == IMAGE_KIND:
            # ±1 per bit: a dot product of two hashes is 64 - 2 * (Hamming distance).
            vectors = np.stack(features)
            threshold = float(vectors.shape[1] - 2 * IMAGE_NEAR_BITS)
            pairs: dict[int, int] = {}
        else:
            assert encode is not None
            vectors = _unit_rows(np.asarray(encode(texts), dtype=np.float32))
            threshold = TEXT_NEAR_COSINE
            pairs = _same_normalized(texts)
        with backend.activate():
            matrix = backend.asarray(vectors)
            for later, earlier in _near_pairs(backend, matrix, threshold):
                pairs[later] = min(earlier, pairs.get(later, earlier))
            if kind == TEXT_KIND:
                outliers = tuple(sorted(hashes[i] for i in _outliers(backend, matrix, labels)))
        near = {hashes[later]: hashes[earlier] for later, earlier in pairs.items()}
    return ValidationReport(
        invalid=dict(sorted(invalid.items())),
        duplicates=dict(sorted(duplicates.items())),
        near_duplicates=dict(sorted(near.items())),
        outliers=outliers,
        label_counts=dict(sorted(counts.items())),
        total=len(records),
    )


def _problem(kind: str, digest: str, label: str, data: bytes) -> str | None:
    """Hash and label problems, and a text's integrity (an image's is checked where it is
    decoded for hashing)."""
    if sha256_hex(data) != digest:
        return "hash mismatch"
    problem = label_problem(label)
    if problem is None and kind == TEXT_KIND:
        problem = integrity_problem(kind, data)
    return problem


def normalized_text(text: str) -> str:
    """``text`` without case, punctuation or spacing differences (NFKC, casefolded, its
    words joined by single spaces)."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def _same_normalized(texts: list[str]) -> dict[int, int]:
    """``later -> earliest`` for texts whose normalized forms are equal (and not empty:
    texts with no word characters, say emoji only, are left to the encoder)."""
    first: dict[str, int] = {}
    pairs: dict[int, int] = {}
    for index, text in enumerate(texts):
        key = normalized_text(text)
        if not key:
            continue
        if key in first:
            pairs[index] = first[key]
        else:
            first[key] = index
    return pairs


def _unit_rows(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # The encoder's output is unit length already; this guards any other ``encode``.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = vectors / np.maximum(norms, np.float32(1e-12))
    return unit


def _near_pairs(backend: Backend, matrix: Array, threshold: float) -> Iterable[tuple[int, int]]:
    """``(later, earlier)`` for each row similar to an earlier row: the earliest such."""
    xp = backend.xp
    n = int(matrix.shape[0])
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        # Only earlier rows matter: columns [0, stop), masked to column < row below.
        scores = matrix[start:stop] @ matrix[:stop].T
        rows = xp.arange(start, stop)[:, None]
        hits = (scores >= threshold) & (xp.arange(stop)[None, :] < rows)
        found = backend.to_host(hits.any(axis=1))
        earliest = backend.to_host(hits.argmax(axis=1))  # the first True in each row
        for offset in np.flatnonzero(found):
            yield start + int(offset), int(earliest[offset])


def _outliers(backend: Backend, matrix: Array, labels: list[str]) -> list[int]:
    """Rows whose own label's centroid (without them) is further than another label's
    centroid by more than ``OUTLIER_MARGIN``; only labels of ``OUTLIER_MIN_RECORDS`` or more."""
    tally = Counter(labels)
    names = sorted(tally)
    sizes = np.array([tally[name] for name in names])
    big = sizes >= OUTLIER_MIN_RECORDS
    if big.sum() < 2:  # nothing to be closer to
        return []
    xp = backend.xp
    column = {name: i for i, name in enumerate(names)}
    own = np.array([column[label] for label in labels])
    onehot = np.zeros((len(labels), len(names)), dtype=np.float32)
    onehot[np.arange(len(labels)), own] = 1
    sums = backend.asarray(onehot).T @ matrix  # (labels, dim): per-label sums
    dots = matrix @ sums.T  # (rows, labels): each row against each label's sum
    sum_norms = xp.sqrt(xp.maximum((sums * sums).sum(axis=1), 1e-12))
    # Cosine to another label's centroid: the centroid is sum / size; its direction is sum's.
    other = dots / sum_norms[None, :]
    # Cosine to the own centroid without the row itself: e·(S - e) / |S - e|, with |e| = 1.
    own_idx = backend.asarray(own)
    rows = xp.arange(len(labels))
    own_dot = dots[rows, own_idx]
    own_sq = (sum_norms[own_idx] ** 2) - 2 * own_dot + 1
    own_cos = (own_dot - 1) / xp.sqrt(xp.maximum(own_sq, 1e-12))
    # Only labels big enough compete; the row's own label is not "another".
    mask = backend.asarray(np.where(big, 0.0, -np.inf).astype(np.float32))
    other = other + mask[None, :]
    other[rows, own_idx] = -np.inf
    flagged = (other.max(axis=1) - own_cos > OUTLIER_MARGIN) & backend.asarray(big[own])
    return [int(i) for i in np.flatnonzero(backend.to_host(flagged))]


def agreement_tolerance(total: int) -> int:
    """How many near-duplicate or outlier calls two honest validators may differ in."""
    return max(1, (2 * total) // 100)


def reports_agree(a: ValidationReport, b: ValidationReport) -> bool:
    """Whether two validators' reports on one contribution agree.

    Exact for what comes from bytes and integers (the total, which hashes are invalid,
    duplicates, label counts): two honest validators always compute the same. Invalid
    reasons may differ (decoder messages change between Pillow versions). Near-duplicate
    hashes and outliers may differ by ``agreement_tolerance(total)`` each (symmetric
    difference): they compare float similarities with thresholds, and different hardware
    (cuBLAS vs OpenBLAS summation order, TF32) rounds a borderline pair either way.
    """
    if a.total != b.total:
        return False
    if set(a.invalid) != set(b.invalid) or a.duplicates != b.duplicates:
        return False
    if a.label_counts != b.label_counts:
        return False
    tolerance = agreement_tolerance(a.total)
    if len(set(a.near_duplicates) ^ set(b.near_duplicates)) > tolerance:
        return False
    return len(set(a.outliers) ^ set(b.outliers)) <= tolerance


def accepted_records(report: ValidationReport, hashes: Iterable[str]) -> list[str]:
    """The records a contributor is paid for, in order: each hash once (its first
    occurrence), neither invalid nor a near duplicate."""
    accepted: list[str] = []
    seen: set[str] = set()
    for digest in hashes:
        if digest in seen:
            continue
        seen.add(digest)
        if digest not in report.invalid and digest not in report.near_duplicates:
            accepted.append(digest)
    return accepted
