"""Proof of Inference: do several workers' sentence embeddings of one batch agree?

The network sends one batch of sentences to 2-3 workers; each commits to its packed
embeddings (:func:`commitment`, salted, bound to its node id and the task), then reveals
them. The coordinator (CPU, NumPy only) unpacks each reveal (:func:`unpack_embeddings`) and
:func:`judge` finds the largest group of workers that agree on every sentence.

Two workers agree when the per-sentence cosine of their embeddings is at least
``POI_THRESHOLD`` on EVERY sentence of the batch.

Why 0.9999: measured on the real all-MiniLM-L6-v2 with our encoder (``python -m
tests.bench.poi_calibration``, 300 generated sentences; ``docs/poi.md`` has the table and
``kernels/inference/data/poi_calibration.json`` the numbers; a test keeps the two in step),
as 1 - cosine per sentence against float32, batch 128:

* honest: batch size 1, 7 or another batch composition, 2 workers x 1 BLAS thread,
  sentence-transformers on PyTorch: all <= 3.4e-12; float16: worst 3.0e-6 (median 1.6e-6).
* dishonest, economically tempting (skip work or copy): last layer skipped, two layers
  swapped, input cut to half, last word dropped, another sentence's vector, random vectors:
  the best single sentence of all of these is 1.19e-3 (a long sentence minus its last word).
* gaussian noise of 1% of the weights' std on one layer: 8.9e-5 median, 2.45e-4 worst.

1e-4 sits 33x above the worst honest gap (room for GPU float16 / TF32 kernels, which
could not be measured here) and 12x below the best tempting cheat, so every sentence of
those is rejected; the 1% noise is rejected on 42% of sentences and on every batch of 64.
No honest sentence was rejected.

What no threshold can see: noise of 0.1% of one layer's weight spread moves embeddings by
2.5e-6 at worst, less than float16 rounding does (3.0e-6), so any threshold that passes
float16 workers accepts it. This threshold catches 1% but not 0.5% (6.2e-5 at worst); the
tightest threshold that still passes float16 would reach about 0.2% (9.9e-6).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.inference.errors import InferenceError

__all__ = [
    "DOMAIN",
    "EMBEDDING_DIM_MAX",
    "POI_THRESHOLD",
    "Judgement",
    "PoIError",
    "commitment",
    "cosines",
    "judge",
    "pack_embeddings",
    "unpack_embeddings",
]

EMBEDDING_DIM_MAX = 4096
POI_THRESHOLD = 0.9999
DOMAIN = b"omnitensor/poi/v1"
SALT_MIN = 16  # bytes: a commitment to a guessable answer must not be confirmable
_WIRE = np.dtype("<f4")


class PoIError(InferenceError):
    """A reveal or commitment input that cannot be used; ``str(err)`` is one line."""


def _check_shape(count: int, dim: int) -> None:
    if count < 1:
        raise PoIError(f"embedding count must be at least 1, got {count}")
    if not 1 <= dim <= EMBEDDING_DIM_MAX:
        raise PoIError(f"embedding dimension must be in 1..{EMBEDDING_DIM_MAX}, got {dim}")


def _check_values(e: npt.NDArray[Any]) -> None:
    finite = np.isfinite(e).all(axis=1)
    if not finite.all():
        raise PoIError(f"embedding {int(np.argmin(finite))} has a NaN or infinite value")
    zero = ~e.any(axis=1)
    if zero.any():
        raise PoIError(f"embedding {int(np.argmax(zero))} is the zero vector")


def pack_embeddings(e: npt.NDArray[Any]) -> bytes:
    """The canonical bytes of ``(count, dim)`` embeddings: float32 little-endian, C order.

    Raises :class:`PoIError` for a non-float or non-2-D array, an empty batch, a dimension
    past ``EMBEDDING_DIM_MAX``, NaN/inf or a zero vector (nothing a reveal could carry).
    """
    array = np.asarray(e)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise PoIError(f"embeddings must be a 2-D float array, got {array.ndim}-D {array.dtype}")
    _check_shape(*array.shape)
    wire = np.ascontiguousarray(array, dtype=_WIRE)
    _check_values(wire)
    return wire.tobytes(order="C")


def unpack_embeddings(raw: bytes, count: int, dim: int) -> npt.NDArray[np.float32]:
    """``(count, dim)`` float32 embeddings from :func:`pack_embeddings`' bytes.

    Raises :class:`PoIError` when the length is not ``count * dim * 4`` or a value is
    NaN/inf or a row is all zeros.
    """
    _check_shape(count, dim)
    want = count * dim * _WIRE.itemsize
    if len(raw) != want:
        raise PoIError(
            f"reveal is {len(raw)} bytes; {count} embeddings of {dim} float32 need {want}"
        )
    e = np.frombuffer(raw, dtype=_WIRE).reshape(count, dim).astype(np.float32)
    _check_values(e)
    return e


def commitment(node_id: str, task_id: str, salt: bytes, raw: bytes) -> str:
    """SHA-256 hex of ``DOMAIN``, node id, task id, salt and packed embeddings, each
    prefixed by its 8-byte big-endian length (so no two inputs share an encoding).

    The node id is bound in: a worker that copies another's commitment cannot open it with
    its own id, and must reveal (and so have computed) its own salt and bytes.
    """
    if len(salt) < SALT_MIN:
        raise PoIError(f"commitment salt must be at least {SALT_MIN} bytes, got {len(salt)}")
    digest = hashlib.sha256()
    for part in (DOMAIN, node_id.encode("utf-8"), task_id.encode("utf-8"), salt, raw):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def cosines(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Per-row cosine similarity of two ``(n, dim)`` arrays, accumulated in float64.

    A zero row has cosine 0 with anything (it agrees with nothing).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise PoIError(f"cannot compare embeddings of shapes {x.shape} and {y.shape}")
    dots = np.einsum("ij,ij->i", x, y)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", y, y))
    out = np.zeros(len(x), dtype=np.float64)
    np.divide(dots, norms, out=out, where=norms > 0)
    result: npt.NDArray[np.float64] = np.clip(out, -1.0, 1.0)
    return result


@dataclass(frozen=True)
class Judgement:
    """What :func:`judge` decided.

    ``agreed``: the workers in the strict-majority group (paid), sorted; empty on a tie.
    ``outliers``: worker -> why it is not paid (who it disagreed with, its lowest cosine and
    at which sentence, or what is wrong with its reveal). On a tie only broken reveals are
    outliers: who is wrong among valid ones is not known yet.
    ``similarity``: worker -> its lowest per-sentence cosine vs ``reference`` (for the
    reference itself: vs the other agreed workers). On a tie: vs the worker it came closest
    to. Workers with broken reveals have none.
    ``tie``: no strict majority; the caller sends the task to another worker.
    ``reference``: the agreed worker whose vectors are delivered (None on a tie).
    """

    agreed: tuple[str, ...]
    outliers: dict[str, str]
    similarity: dict[str, float]
    tie: bool
    reference: str | None


def _problem(e: npt.NDArray[Any]) -> str | None:
    """Why a reveal cannot be compared at all, or None."""
    if e.ndim != 2 or e.shape[0] < 1 or not 1 <= e.shape[1] <= EMBEDDING_DIM_MAX:
        return f"reveal has shape {e.shape}, not (sentences >= 1, 1..{EMBEDDING_DIM_MAX})"
    if not np.isfinite(e).all():
        return "reveal has NaN or infinite values"
    if not e.any(axis=1).all():
        return f"reveal row {int(np.argmin(e.any(axis=1)))} is the zero vector"
    return None


def judge(reveals: Mapping[str, npt.NDArray[Any]], threshold: float = POI_THRESHOLD) -> Judgement:
    """The largest group of mutually agreeing workers, paid if a strict majority of >= 2.

    Two workers agree when their per-sentence cosine is >= ``threshold`` on every sentence
    (same shape required). Among equally large groups the one with the highest lowest
    pairwise cosine wins, then the first by sorted worker ids; the reference is the group's
    medoid (highest sum of lowest cosines to the others). Deterministic for any input order.
    A single worker is never accepted on its own word (tie).
    """
    ids = sorted(reveals)
    arrays = {w: np.asarray(reveals[w]) for w in ids}
    broken = {w: p for w in ids if (p := _problem(arrays[w])) is not None}
    valid = [w for w in ids if w not in broken]
    # worst[(a, b)]: (lowest cosine, its sentence) for same-shape pairs; absent otherwise.
    worst: dict[tuple[str, str], tuple[float, int]] = {}
    for a, b in itertools.combinations(valid, 2):
        if arrays[a].shape == arrays[b].shape:
            cos = cosines(arrays[a], arrays[b])
            i = int(np.argmin(cos))
            worst[(a, b)] = worst[(b, a)] = (float(cos[i]), i)

    def agree(a: str, b: str) -> bool:
        pair = worst.get((a, b))
        return pair is not None and pair[0] >= threshold

    group: tuple[str, ...] = ()
    for size in range(len(valid), 1, -1):
        cliques = [
            c
            for c in itertools.combinations(valid, size)
            if all(agree(a, b) for a, b in itertools.combinations(c, 2))
        ]
        if cliques:
            group = max(
                cliques,
                key=lambda c: min(worst[(a, b)][0] for a, b in itertools.combinations(c, 2)),
            )  # max keeps the first (sorted ids) among equals
            break

    outliers = dict(broken)
    if len(group) < 2 or 2 * len(group) <= len(ids):
        similarity = {}
        for w in valid:
            scores = [worst[(w, o)][0] for o in valid if o != w and (w, o) in worst]
            if scores:
                similarity[w] = max(scores)
        return Judgement((), outliers, similarity, True, None)

    def closeness(w: str) -> float:
        return sum(worst[(w, o)][0] for o in group if o != w)

    reference = max(group, key=closeness)  # the medoid; the first by sorted ids among equals
    similarity = {w: worst[(w, reference)][0] for w in group if w != reference}
    similarity[reference] = min(worst[(reference, o)][0] for o in group if o != reference)
    ref_shape = arrays[reference].shape
    for w in valid:
        if w in group:
            continue
        if arrays[w].shape != ref_shape:
            outliers[w] = (
                f"shape {arrays[w].shape} differs from reference {reference}'s {ref_shape}"
            )
            continue
        lowest, at = worst[(w, reference)]
        similarity[w] = lowest
        outliers[w] = (
            f"disagrees with reference {reference}: lowest cosine {lowest:.6f} at sentence {at} "
            f"(threshold {threshold})"
        )
    return Judgement(group, outliers, similarity, False, reference)
