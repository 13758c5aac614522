"""The encoder on the tiny random-weight BERT: against a float64 textbook forward pass,
float16 against float32, padded attention against unpadded, order and batching."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kernels.backend import numpy_backend
from kernels.inference import Encoder, SentenceEncoder, load_model
from kernels.inference.encoder import gelu_scaled, plan_groups
from kernels.inference.runner import MAX_BATCH_TOKENS, plan_batches
from tests.kernels.inference.tiny import MAX_TOKENS, reference_embedding

TEXTS = [
    "a man is playing guitar",
    "the cat eats an apple in the park",
    "dog",
    "",
    "def f(x): return x * 2",
    "Ünïcödé café 😀 naïve",
    "music " * 40,  # past the tiny model's 24-token limit
    "a woman runs",
    "a man is playing guitar",
]


@pytest.mark.parametrize("fused", [True, False], ids=["numba", "numpy"])
def test_matches_textbook_forward_pass(tiny_dir: Path, fused: bool) -> None:
    model = load_model(tiny_dir, numpy_backend())
    with SentenceEncoder(model, batch_size=3, workers=2, fused=fused) as encoder:
        assert encoder.kernels.startswith("numba" if fused else "numpy")
        ours = encoder.encode(TEXTS)
    ids = model.tokenizer.encode(TEXTS)
    assert max(len(a) for a in ids) == MAX_TOKENS  # truncation reached
    for row, token_ids in zip(ours, ids, strict=True):
        ref = reference_embedding(tiny_dir, token_ids.tolist())
        assert float(row @ ref) / float(np.linalg.norm(row)) > 0.99999
        assert np.abs(row - ref).max() < 1e-5


def test_embeddings_are_unit_length_and_in_input_order(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, numpy_backend())
    with SentenceEncoder(model, batch_size=2, workers=2) as encoder:
        together = encoder.encode(TEXTS)
        one_by_one = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(together, one_by_one, atol=2e-6)
    np.testing.assert_array_equal(together[0], together[-1])  # same text, same vector
    assert float(together[0] @ together[1]) < 0.999  # different texts differ


def test_float16_tracks_float32(tiny_dir: Path) -> None:
    f32 = load_model(tiny_dir, numpy_backend(), dtype="float32")
    f16 = load_model(tiny_dir, numpy_backend(), dtype="float16")
    assert f16.layers[0].w_qkv.dtype == np.float16
    with SentenceEncoder(f32, workers=1) as a, SentenceEncoder(f16, workers=1) as b:
        e32, e16 = a.encode(TEXTS), b.encode(TEXTS)
    assert e16.dtype == np.float32
    cosines = (e32 * e16).sum(axis=1)
    assert cosines.min() > 0.999
    assert np.abs(e32 - e16).max() > 0  # really computed in another precision


def test_padded_attention_with_mask_matches_unpadded(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, numpy_backend())
    batch = sorted(model.tokenizer.encode(TEXTS), key=len)
    packed = Encoder(model, pad_attention=False).embed(batch)
    padded = Encoder(model, pad_attention=True).embed(batch)
    np.testing.assert_allclose(packed, padded, atol=2e-6)


def test_plan_groups() -> None:
    assert [(g.first, g.count, g.row, g.length) for g in plan_groups([2, 2, 3, 5], pad=False)] == [
        (0, 2, 0, 2),
        (2, 1, 4, 3),
        (3, 1, 7, 5),
    ]
    [group] = plan_groups([2, 2, 3], pad=True)
    assert (group.count, group.length, group.padded) == (3, 3, True)
    assert not plan_groups([4, 4], pad=True)[0].padded


def test_gelu_is_the_exact_erf_gelu() -> None:
    x = np.linspace(-12, 12, 20001).astype(np.float32)
    u = x / np.float32(math.sqrt(2.0))
    with np.errstate(over="ignore"):  # e^(u^2) overflows far out, by design
        gelu_scaled(u, np.empty_like(u), np.empty_like(u), np.empty_like(u), np)
    assert np.isfinite(u).all()
    ours = u / math.sqrt(2.0)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    assert np.abs(ours - exact).max() < 5e-6


@pytest.mark.parametrize("fused", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_batch_size_does_not_change_results(tiny_dir: Path, batch_size: int, fused: bool) -> None:
    model = load_model(tiny_dir, numpy_backend())
    with SentenceEncoder(model, batch_size=8, workers=1, fused=fused) as base:
        expected = base.encode(TEXTS)
    with SentenceEncoder(model, batch_size=batch_size, workers=2, fused=fused) as encoder:
        np.testing.assert_allclose(encoder.encode(TEXTS), expected, atol=2e-6)


@pytest.mark.parametrize("fused", [True, False], ids=["numba", "numpy"])
def test_stream_yields_in_order_and_counts_truncation(tiny_dir: Path, fused: bool) -> None:
    model = load_model(tiny_dir, numpy_backend())
    chunks: list[int] = []
    with SentenceEncoder(model, batch_size=2, workers=2, fused=fused) as encoder:
        pairs = list(encoder.encode_stream(iter(TEXTS), chunk_size=4, on_chunk=chunks.append))
        assert encoder.truncated == 1
        expected = encoder.encode(TEXTS)
    assert [text for text, _ in pairs] == TEXTS
    np.testing.assert_allclose(np.stack([v for _, v in pairs]), expected, atol=2e-6)
    assert chunks == [4, 4, 1]


@pytest.mark.parametrize("length", [2, 13, 64, 100])
def test_softmax_short_and_long_rows(tiny_dir: Path, length: int) -> None:
    encoder = Encoder(load_model(tiny_dir, numpy_backend()))
    rng = np.random.default_rng(length)
    scores = (rng.standard_normal((3, 4, length, length)) * 30).astype(np.float32)
    expected = np.exp(scores - scores.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    encoder._softmax(scores)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-7)


def test_batches_are_length_sorted_and_capped() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 257, size=500).tolist()
    batches = plan_batches(lengths, 64)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(500))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) * max(lengths[i] for i in batch) <= MAX_BATCH_TOKENS
    assert len(plan_batches([12] * 300, 128)) == 3
