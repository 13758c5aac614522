"""Parity with sentence-transformers: every embedding of the committed reference sentences
(short, past 256 tokens, non-ASCII, emoji, code, empty after stripping) within 0.9999 cosine.

The reference was written by ``data/make_reference.py`` with sentence-transformers (PyTorch)
in a throwaway environment; here only our encoder runs. Skips only without the model package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kernels.backend import numpy_backend
from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model

REFERENCE = Path(__file__).parent / "data" / "reference.json"


@pytest.fixture(scope="module")
def real_model_dir() -> Path:
    try:
        return find_model_dir(None, {})
    except ModelMissing as err:
        pytest.skip(f"model package not installed ({err})")


@pytest.mark.parametrize(("workers", "fused"), [(1, True), (2, True), (2, False)])
def test_embeddings_match_sentence_transformers(
    real_model_dir: Path, workers: int, fused: bool
) -> None:
    reference = json.loads(REFERENCE.read_text("utf-8"))
    sentences: list[str] = reference["sentences"]
    expected = np.array(reference["embeddings"], dtype=np.float64)
    model = load_model(real_model_dir, numpy_backend())
    with SentenceEncoder(model, batch_size=4, workers=workers, fused=fused) as encoder:
        ours = encoder.encode(sentences).astype(np.float64)
        assert encoder.truncated == 2  # the two long sentences
    assert ours.shape == expected.shape == (len(sentences), 384)
    cosines = (ours * expected).sum(axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(expected, axis=1)
    )
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.9999, f"{sentences[worst]!r}: cosine {cosines[worst]:.6f}"
