"""Proof of Inference: canonical bytes, commitments, the judge, and the committed calibration.

Synthetic vectors only (fast); the real model's numbers are in the calibration JSON, which
is checked against ``POI_THRESHOLD`` here so the two cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from kernels.inference.errors import InferenceError
from kernels.inference.poi import (
    EMBEDDING_DIM_MAX,
    POI_THRESHOLD,
    PoIError,
    commitment,
    cosines,
    judge,
    pack_embeddings,
    unpack_embeddings,
)

CALIBRATION = Path(__file__).parents[3] / "kernels" / "inference" / "data" / "poi_calibration.json"
SALT = bytes(range(16))


def unit(n: int = 64, dim: int = 384, seed: int = 0) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).standard_normal((n, dim))
    out: npt.NDArray[np.float32] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def fp16_like(e: npt.NDArray[np.float32], seed: int = 1) -> npt.NDArray[np.float32]:
    """``e`` plus relative noise of 1e-4 per component (float16-sized), renormalised."""
    noisy = e * (1 + 1e-4 * np.random.default_rng(seed).standard_normal(e.shape))
    out: npt.NDArray[np.float32] = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(
        np.float32
    )
    return out


def test_pack_round_trip_is_float32_little_endian() -> None:
    e = unit(5, 8)
    raw = pack_embeddings(e)
    assert raw == e.astype("<f4").tobytes() and len(raw) == 5 * 8 * 4
    back = unpack_embeddings(raw, 5, 8)
    assert back.dtype == np.float32 and np.array_equal(back, e)
    back[0, 0] = 2.0  # a writable copy, not a view of the bytes
    assert pack_embeddings(e.astype(np.float64)) == raw  # canonical whatever the input dtype
    assert pack_embeddings(np.asfortranarray(e)) == raw


@pytest.mark.parametrize(
    ("raw_len", "count", "dim", "words"),
    [
        (5 * 8 * 4 - 1, 5, 8, "bytes"),
        (5 * 8 * 4 + 4, 5, 8, "bytes"),
        (5 * 8 * 4, 8, 5 * 4, "bytes"),
        (0, 0, 8, "at least 1"),
        (4, 1, EMBEDDING_DIM_MAX + 1, "dimension"),
    ],
)
def test_unpack_refuses_wrong_sizes(raw_len: int, count: int, dim: int, words: str) -> None:
    with pytest.raises(PoIError, match=words):
        unpack_embeddings(bytes(raw_len), count, dim)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_unpack_refuses_non_finite(bad: float) -> None:
    e = unit(4, 8)
    raw = bytearray(pack_embeddings(e))
    raw[2 * 32 + 4 : 2 * 32 + 8] = np.array([bad], dtype="<f4").tobytes()
    with pytest.raises(PoIError, match="embedding 2 has a NaN or infinite"):
        unpack_embeddings(bytes(raw), 4, 8)
    with pytest.raises(PoIError):
        pack_embeddings(np.frombuffer(bytes(raw), dtype="<f4").reshape(4, 8))


def test_unpack_refuses_zero_vectors_and_error_is_an_inference_error() -> None:
    e = unit(4, 8)
    e[3] = 0.0
    raw = e.astype("<f4").tobytes()
    with pytest.raises(InferenceError, match="embedding 3 is the zero vector"):
        unpack_embeddings(raw, 4, 8)


def test_commitment_binds_every_field() -> None:
    raw = pack_embeddings(unit(3, 8))
    base = commitment("node-a", "task-1", SALT, raw)
    assert len(base) == 64 and base == commitment("node-a", "task-1", SALT, raw)
    others = {
        commitment("node-b", "task-1", SALT, raw),
        commitment("node-a", "task-2", SALT, raw),
        commitment("node-a", "task-1", bytes(16), raw),
        # length prefixes: moving a byte between fields changes the hash
        commitment("node-at", "ask-1", SALT, raw),
        commitment("node-a", "task-1", SALT + raw[:1], raw[1:]),
    }
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        others.add(commitment("node-a", "task-1", SALT, bytes(flipped)))
    assert base not in others and len(others) == 5 + len(raw)


def test_commitment_needs_a_real_salt() -> None:
    with pytest.raises(PoIError, match="salt"):
        commitment("node-a", "task-1", b"short", b"")


def test_cosines_per_row_in_float64() -> None:
    a = unit(10, 16)
    b = a.copy()
    b[3] = -a[3]
    b[4] = a[4] * 7  # scale does not matter
    cos = cosines(a, b)
    assert cos.dtype == np.float64 and cos.shape == (10,)
    assert cos[3] == pytest.approx(-1.0) and cos[4] == pytest.approx(1.0)
    assert np.delete(cos, 3) == pytest.approx(1.0)
    zero = a.copy()
    zero[0] = 0
    assert cosines(a, zero)[0] == 0.0
    with pytest.raises(PoIError, match="shapes"):
        cosines(a, a[:5])


def test_three_honest_workers_all_agree() -> None:
    e = unit()
    verdict = judge({"c": e.copy(), "a": fp16_like(e), "b": e.copy()})
    assert verdict.agreed == ("a", "b", "c") and not verdict.tie and verdict.outliers == {}
    assert verdict.reference in ("b", "c")  # the exact pair is closest to everyone
    assert set(verdict.similarity) == {"a", "b", "c"}
    assert min(verdict.similarity.values()) > 0.99999


def test_random_worker_is_the_outlier_with_a_reason() -> None:
    e = unit()
    verdict = judge({"honest-1": e, "honest-2": fp16_like(e), "cheat": unit(seed=9)})
    assert verdict.agreed == ("honest-1", "honest-2") and not verdict.tie
    assert verdict.reference in verdict.agreed
    reason = verdict.outliers["cheat"]
    assert verdict.reference in reason and "sentence" in reason and "cosine" in reason
    assert verdict.similarity["cheat"] < 0.5


def test_copied_rows_in_another_order_are_an_outlier() -> None:
    e = unit()
    rolled = np.roll(e, 1, axis=0)  # every sentence gets another sentence's embedding
    verdict = judge({"a": e, "b": fp16_like(e), "copycat": rolled})
    assert verdict.agreed == ("a", "b") and "copycat" in verdict.outliers
    # one swapped pair is enough
    swapped = e.copy()
    swapped[[10, 20]] = swapped[[20, 10]]
    verdict = judge({"a": e, "b": fp16_like(e), "copycat": swapped})
    assert "copycat" in verdict.outliers and "at sentence 10" in verdict.outliers["copycat"]


def test_two_disagreeing_workers_tie() -> None:
    verdict = judge({"a": unit(seed=1), "b": unit(seed=2)})
    assert verdict.tie and verdict.agreed == () and verdict.reference is None
    assert verdict.outliers == {}  # who is wrong is not known yet


def test_one_worker_alone_is_a_tie() -> None:
    verdict = judge({"only": unit()})
    assert verdict.tie and verdict.agreed == () and verdict.reference is None
    assert judge({}).tie


def test_three_all_disagreeing_tie() -> None:
    verdict = judge({w: unit(seed=s) for s, w in enumerate("abc")})
    assert verdict.tie and verdict.agreed == () and verdict.outliers == {}


def test_two_agreeing_of_four_is_no_majority() -> None:
    e = unit()
    verdict = judge({"a": e, "b": e, "c": unit(seed=3), "d": unit(seed=4)})
    assert verdict.tie


def test_wrong_shapes_and_broken_reveals_are_outliers() -> None:
    e = unit()
    nan = e.copy()
    nan[5, 5] = np.nan
    for cheat, words in ((e[:-1], "shape (63, 384) differs"), (nan, "NaN"), (e[0], "shape")):
        verdict = judge({"a": e, "b": fp16_like(e), "cheat": cheat})
        assert verdict.agreed == ("a", "b") and not verdict.tie
        assert words in verdict.outliers["cheat"]
    # broken reveals still count as workers: 2 of 5 is no majority
    verdict = judge({"a": e, "b": e.copy(), "short": e[:-1], "nan": nan, "flat": e[0]})
    assert verdict.tie and set(verdict.outliers) == {"nan", "flat"}
    # a broken reveal cannot make a single worker's answer count
    verdict = judge({"a": e, "nan": nan})
    assert verdict.tie and set(verdict.outliers) == {"nan"}


def test_judge_is_deterministic_in_input_order() -> None:
    e = unit()
    reveals = {"z": e, "m": fp16_like(e), "a": fp16_like(e, seed=5), "q": unit(seed=7)}
    first = judge(reveals)
    again = judge(dict(reversed(list(reveals.items()))))
    assert first == again and first.agreed == ("a", "m", "z")


def test_threshold_is_applied_to_the_lowest_sentence() -> None:
    e = unit(8, 16)
    f = e.copy()
    f[7] = (e[7] + 0.2 * e[6]) / np.linalg.norm(e[7] + 0.2 * e[6])
    lowest = float(cosines(e, f).min())
    assert not judge({"a": e, "b": f}, threshold=lowest + 1e-9).agreed
    assert judge({"a": e, "b": f}, threshold=lowest).agreed == ("a", "b")


def test_committed_calibration_supports_the_threshold() -> None:
    data = json.loads(CALIBRATION.read_text("utf-8"))
    assert data["threshold"] == POI_THRESHOLD
    cases = {c["case"]: c for c in data["cases"]}
    honest = [c for c in cases.values() if c["kind"] == "honest"]
    dishonest = [c for c in cases.values() if c["kind"] == "dishonest"]
    assert {"float16", "batch1", "workers2"} <= {c["case"] for c in honest}
    assert {"random", "shuffled", "half_tokens", "drop_last_word"} <= set(cases)
    for case in honest:
        assert case["min"] >= POI_THRESHOLD, case["case"]
        assert case["sentences_below"] == 0 and case["batches64_below"] == 0
    for case in dishonest:
        assert case["min"] < POI_THRESHOLD, case["case"]
        assert case["batches64_below"] == 1.0, case["case"]  # every batch of 64 is caught
        if not case["case"].startswith("noise"):  # skipping work is caught on every sentence
            assert case["sentences_below"] == 1.0, case["case"]
    assert data["rates"]["false_reject_per_sentence"] == 0.0
